// Line charts as inline SVG: one line per series over the window's buckets, a gap where a
// bucket has no value (no invocation: no duration), a y axis from 0 to a round maximum.

import { el, svg, time } from "./dom.js";

const WIDTH = 460;
const HEIGHT = 170;
const PAD = { left: 48, right: 10, top: 10, bottom: 24 };
export const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777",
  "#0891b2", "#65a30d"];

/** A round top for the y axis at or above `value`: 2, 4, 6, 8 or 10 times a power of ten
 * (at least 2, so that the middle line of a count is a whole number). */
function roundUp(value) {
  if (!(value > 2)) return 2;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 4, 6, 8, 10].map((m) => m * power).find((candidate) => candidate >= value);
}

/**
 * A chart: `times` are the buckets' start times (epoch seconds), each series is
 * {name, values, color} with one value (or null) per bucket; `format` labels the y axis and
 * `summary` says in words what the chart holds (its caption, and what a screen reader reads).
 */
export function lineChart({ title, times, step, series, format = String, summary = "" }) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const values = series.flatMap((s) => s.values).filter((v) => v !== null);
  const top = roundUp(Math.max(0, ...values));
  const x = (i) => PAD.left + (times.length > 1 ? (i / (times.length - 1)) * plotW : plotW / 2);
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const grid = [0, 0.5, 1].map((f) =>
    svg("g", { class: "grid" },
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top * f), y2: y(top * f) }),
      svg("text", { x: PAD.left - 6, y: y(top * f) + 4, "text-anchor": "end" }, format(top * f))),
  );
  const ticks = [[0, "start"], [Math.floor((times.length - 1) / 2), "middle"],
    [times.length - 1, "end"]].map(([i, anchor]) =>
    svg("text", { class: "tick", x: x(i), y: HEIGHT - 6, "text-anchor": anchor },
      time(times[i] + step / 2)),
  );
  const lines = series.map((s) => {
    const paths = [];
    let run = [];
    s.values.forEach((v, i) => {
      if (v === null) {
        if (run.length) paths.push(run);
        run = [];
      } else run.push([x(i), y(v)]);
    });
    if (run.length) paths.push(run);
    return svg("g", { class: "series", "data-name": s.name },
      paths.map((points) => points.length === 1
        ? svg("circle", { cx: points[0][0], cy: points[0][1], r: 2.5, fill: s.color })
        : svg("polyline", {
          points: points.map((p) => p.join(",")).join(" "),
          fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round",
        })));
  });
  const legend = el("ul", { class: "legend" }, series.map((s) =>
    el("li", {}, el("span", { class: "swatch", "data-color": s.color }), s.name)));
  for (const swatch of legend.querySelectorAll(".swatch")) {
    swatch.style.backgroundColor = swatch.dataset.color; // CSSOM: allowed by the page's CSP
  }
  return el("figure", { class: "chart" },
    el("figcaption", {}, el("strong", {}, title), summary ? ` — ${summary}` : ""),
    svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title },
      svg("title", {}, title), grid, ticks,
      svg("line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + plotH }),
      svg("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: PAD.top + plotH,
        y2: PAD.top + plotH }),
      lines),
    legend);
}
