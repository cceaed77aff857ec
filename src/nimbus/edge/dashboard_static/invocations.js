// The invocation list (filtered by function and outcome) and one invocation's record, logs
// and trace.

import { ApiError, api, optional } from "./api.js";
import { dateTime, el, fill, ms, table } from "./dom.js";

const READ = 1000; // the latest records read to filter by outcome (the API's largest page)
const SHOWN = 100;

export async function renderInvocations(node, only, outcome, open) {
  const query = new URLSearchParams({ limit: outcome ? READ : SHOWN });
  if (only) query.set("function", only);
  const records = await api(`/invocations?${query}`);
  const shown = records.filter((r) => !outcome || r.outcome === outcome).slice(0, SHOWN);
  fill(node, table(
    ["Started", "Function", "Trigger", "Outcome", "Duration", "Cold", "Request id"],
    shown,
    (r) => el("tr", { class: `outcome-${r.outcome}`, "data-id": r.id },
      el("td", {}, dateTime(r.started_at)),
      el("td", {}, r.function),
      el("td", {}, r.trigger),
      el("td", {}, el("span", { class: `badge ${r.outcome}` }, r.outcome),
        r.error ? ` ${r.error.type}: ${r.error.message}` : ""),
      el("td", { class: "num" }, ms(r.duration_ms)),
      el("td", {}, r.cold_start ? "cold" : ""),
      el("td", {}, el("button", { class: "link", onclick: () => open(r.id) }, r.id))),
    outcome ? `No ${outcome} invocations among the latest ${READ}.` : "No invocations yet.",
  ));
}

export async function renderDetail(node, id) {
  const [record] = await api(`/invocations?id=${encodeURIComponent(id)}&limit=1`);
  if (!record) {
    fill(node, el("p", { class: "empty" }, `No invocation ${id}.`));
    return;
  }
  const logs = await api(`/logs?request_id=${encodeURIComponent(id)}&limit=1000`);
  const facts = [
    ["Function", record.function], ["Trigger", record.trigger],
    ["Started", dateTime(record.started_at)], ["Outcome", record.outcome],
    ["Duration", ms(record.duration_ms)], ["Billed", `${record.billed_ms} ms`],
    ["Memory", `${record.peak_memory_mb.toFixed(1)} of ${record.memory_mb} MB`],
    ["Cold start", record.cold_start ? `yes (init ${ms(record.init_ms)})` : "no"],
    ["Job", record.job_id || "–"],
  ];
  const error = record.error;
  fill(node,
    el("h3", {}, `Invocation ${record.id}`),
    el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    error ? el("section", { class: "error" }, el("h4", {}, "Error"),
      el("pre", {}, [`${error.type}: ${error.message}`, ...(error.traceback || [])].join("\n")))
      : null,
    el("h4", {}, "Logs"),
    logs.length
      ? el("pre", { class: "logs" }, logs.map((line) =>
        `${dateTime(line.time)} ${line.level.padEnd(7)} ${line.message}\n`).join(""))
      : el("p", { class: "empty" }, "It logged nothing."),
    el("h4", {}, "Trace"),
    await traceOf(record));
}

/** The invocation's trace as a tree of spans, when its spans were recorded. */
async function traceOf(record) {
  const note = (text) => el("p", { class: "empty" }, text);
  if (!record.trace_id) {
    return note("Not traced: tracing is off, or sampling left this trace out (nimbus up "
      + "--traces-per-second, --trace-ratio).");
  }
  let trace;
  try {
    trace = await optional(`/traces/${record.trace_id}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) return note(error.message); // off
    throw error;
  }
  if (!trace) return note("No trace of it is kept.");
  return el("div", {}, el("p", { class: "muted" }, `trace ${record.trace_id}`),
    spanTree(record.trace_id, trace.spans, trace.linked || []));
}

/** The spans under their parents; `linked`: spans of other traces (a batch that processed one
 * of this trace's messages, and what it did), each of their roots under the span it links to. */
function spanTree(traceId, spans, linked) {
  const all = [...spans, ...linked];
  const start = (s) => s.start;
  const end = (s) => s.start + s.duration_ms / 1000;
  const first = Math.min(...all.map(start));
  const length = Math.max(...all.map(end)) - first || 1;
  const key = (trace, span) => `${trace}/${span}`;
  const kept = new Set(all.map((s) => key(s.trace_id, s.span_id)));
  const parentOf = (span) => {
    const candidates = [key(span.trace_id, span.parent_id)];
    if (span.trace_id !== traceId) {
      for (const link of span.links || []) {
        if (link.trace_id === traceId) candidates.push(key(traceId, link.span_id));
      }
    }
    return candidates.find((k) => kept.has(k)) || null;
  };
  const children = new Map();
  for (const span of all) {
    const parent = parentOf(span);
    children.set(parent, [...(children.get(parent) || []), span]);
  }
  const rows = [];
  const walk = (parent, depth) => {
    for (const span of (children.get(parent) || []).sort((a, b) => start(a) - start(b))) {
      const bar = el("span", { class: "bar" });
      bar.style.marginLeft = `${((start(span) - first) / length) * 100}%`;
      bar.style.width = `${Math.max(((end(span) - start(span)) / length) * 100, 0.5)}%`;
      const linkedRoot = span.trace_id !== traceId
        && !kept.has(key(span.trace_id, span.parent_id));
      const label = el("span", { class: "span-name", title: span.message || span.kind },
        span.name, span.status === "error" ? " ✗" : "",
        linkedRoot ? ` (linked, in trace ${span.trace_id})` : "");
      label.style.paddingLeft = `${depth * 1.2}em`;
      rows.push(el("li", { class: span.status === "error" ? "span error" : "span" },
        label, el("span", { class: "span-time" }, ms((end(span) - start(span)) * 1000)),
        el("span", { class: "track" }, bar)));
      walk(key(span.trace_id, span.span_id), depth + 1);
    }
  };
  walk(null, 0);
  return el("ol", { class: "trace" }, rows);
}
