// The overview panels: functions, their charts, dead letters, usage and cost.

import { api, optional } from "./api.js";
import { PALETTE, lineChart } from "./charts.js";
import { dateTime, el, fill, ms, table } from "./dom.js";

export async function renderFunctions(node, functions, select) {
  fill(node, table(
    ["Function", "Triggers", "Instances (busy)", "Cold starts", "Concurrency", "Limits"],
    functions,
    (f) => el("tr", { "data-function": f.name },
      el("td", {}, el("button", { class: "link", onclick: () => select(f.name) }, f.name)),
      el("td", {}, f.trigger_labels.length
        ? el("ul", { class: "plain" }, f.trigger_labels.map((t) => el("li", {}, t)))
        : el("span", { class: "muted" }, "invoke only")),
      el("td", { class: "num" }, `${f.instances} (${f.busy})`),
      el("td", { class: "num" }, f.cold_starts),
      el("td", { class: "num" }, `${f.concurrency} × ${f.max_instances ?? "∞"}`),
      el("td", {}, `${f.timeout} s, ${f.memory_mb} MB`)),
    "No functions are deployed.",
  ));
}

function sum(lists) {
  return lists[0].map((_, i) => lists.reduce((total, list) => total + list[i], 0));
}

function total(values) {
  return values.reduce((a, v) => a + (v ?? 0), 0);
}

export async function renderCharts(node, windowSeconds, buckets, only) {
  const query = new URLSearchParams({ window: windowSeconds, buckets });
  if (only) query.set("function", only);
  const found = await api(`/series?${query}`);
  const active = (f) => f.invocations.some((n) => n) || f.throttles.some((n) => n);
  const names = Object.keys(found.functions).filter((n) => active(found.functions[n]));
  const times = Array.from({ length: found.buckets }, (_, i) => found.start + i * found.step);
  const color = (i) => PALETTE[i % PALETTE.length];
  const zero = times.map(() => 0);
  const idle = [{ name: "no invocations", values: zero, color: PALETTE[0] }];
  const perFunction = (metric) => names.length ? names.map((name, i) =>
    ({ name, values: found.functions[name][metric], color: color(i) })) : idle;
  const kinds = [...new Set(names.flatMap((n) => Object.keys(found.functions[n].errors)))];
  const errors = kinds.map((kind, i) => ({
    name: kind,
    values: sum([zero, ...names.map((n) => found.functions[n].errors[kind] || zero)]),
    color: PALETTE[(i + 1) % PALETTE.length],
  }));
  const throttles = sum([zero, ...names.map((n) => found.functions[n].throttles)]);
  if (total(throttles)) errors.push({ name: "throttled", values: throttles, color: "#6b7280" });
  const durations = names.length ? names.flatMap((name, i) => [
    { name: `${name} p50`, values: found.functions[name].p50_ms, color: color(2 * i) },
    { name: `${name} p99`, values: found.functions[name].p99_ms, color: color(2 * i + 1) },
  ]) : idle;
  const count = (metric) => total(names.flatMap((n) => found.functions[n][metric]));
  const worst = Math.max(0, ...names.flatMap((n) => found.functions[n].p99_ms));
  const peak = Math.max(0, ...names.flatMap((n) => found.functions[n].peak_concurrency));
  const common = { times, step: found.step };
  fill(node,
    found.complete ? null : el("p", { class: "warning" },
      "This window holds more invocations than a chart reads: only the latest are counted."),
    el("div", { class: "charts" },
      lineChart({ ...common, title: "Invocations", series: perFunction("invocations"),
        summary: `${count("invocations")} in the window` }),
      lineChart({ ...common, title: "Errors",
        series: errors.length ? errors : [{ name: "errors", values: zero, color: PALETTE[1] }],
        summary: `${total(errors.flatMap((e) => e.values))} in the window` }),
      lineChart({ ...common, title: "Duration p50 / p99", series: durations, format: ms,
        summary: `worst p99 ${ms(worst || null)}` }),
      lineChart({ ...common, title: "Cold starts", series: perFunction("cold_starts"),
        summary: `${count("cold_starts")} in the window` }),
      lineChart({ ...common, title: "Concurrency", series: perFunction("peak_concurrency"),
        summary: `peak ${peak}` })));
}

export async function renderDeadLetters(node, refresh) {
  const letters = (await api("/dlq?limit=200")).reverse(); // the latest first
  const status = el("p", { class: "status", role: "status" }, lastRedrive);
  const redrive = async (letter, button) => {
    button.disabled = true;
    try {
      const result = await api(`/dlq/${encodeURIComponent(letter.id)}/redrive`, { method: "POST" });
      lastRedrive = result.queue
        ? `Re-drove ${letter.id} back into queue ${result.queue}.`
        : `Re-drove ${letter.id} as job ${result.id}.`;
    } catch (error) {
      lastRedrive = `Could not re-drive ${letter.id}: ${error.message}`;
    }
    await refresh();
  };
  const show = async (letter, row) => {
    const shown = row.nextElementSibling;
    if (shown && shown.classList.contains("letter-detail")) {
      opened.delete(letter.id);
      return shown.remove();
    }
    opened.add(letter.id);
    row.after(await letterDetail(letter.id));
  };
  fill(node, status, table(
    ["Dead letter", "Source", "Function", "Error", "Attempts", "Failed", ""],
    letters,
    (letter) => {
      const row = el("tr", { "data-letter": letter.id });
      const again = el("button", { class: "redrive" }, "Re-drive");
      again.addEventListener("click", () => redrive(letter, again));
      return fill(row,
        el("td", {}, el("button", { class: "link", onclick: () => show(letter, row) }, letter.id)),
        el("td", {}, letter.source),
        el("td", {}, letter.function),
        el("td", {}, letter.error ? `${letter.error.type}: ${letter.error.message}` : ""),
        el("td", { class: "num" }, letter.attempts),
        el("td", {}, dateTime(letter.failed_at)),
        el("td", {}, again));
    },
    "No dead letters.",
  ));
  for (const letter of letters.filter((l) => opened.has(l.id))) { // stay open across refreshes
    node.querySelector(`tr[data-letter="${CSS.escape(letter.id)}"]`).after(
      await letterDetail(letter.id));
  }
}

const opened = new Set(); // the dead letters whose details are shown
let lastRedrive = ""; // what the last re-drive did, shown until the next one

async function letterDetail(id) {
  const full = await api(`/dlq/${encodeURIComponent(id)}`);
  const error = full.error;
  return el("tr", { class: "letter-detail" }, el("td", { colspan: 7 },
    el("h4", {}, "Event"), el("pre", {}, full.payload),
    error ? [el("h4", {}, "Error"), el("pre", {},
      [`${error.type}: ${error.message}`, ...(error.traceback || [])].join("\n"))] : null,
    Object.keys(full.attributes || {}).length
      ? [el("h4", {}, "Attributes"), el("pre", {}, JSON.stringify(full.attributes, null, 2))]
      : null));
}

export async function renderUsage(node, windowSeconds) {
  const report = await optional(`/usage?since=${windowSeconds}s`);
  if (report === null) {
    fill(node, el("p", { class: "empty" },
      "Usage and cost are not available on this platform yet."));
    return;
  }
  const money = (amount) => `${amount.toFixed(6)} ${report.currency}`;
  const amounts = (values) => Object.entries(values).filter(([, v]) => v)
    .map(([name, v]) => `${name} ${Number(v.toPrecision(6))}`).join(", ") || "–";
  fill(node,
    el("p", {}, el("strong", {}, `Total ${money(report.total)}`),
      ` from ${dateTime(report.since)} to ${dateTime(report.until)}, priced by `,
      el("code", {}, report.price_sheet)),
    table(["Kind", "Name", "Usage", "Requests", "Cost"], report.rows,
      (row) => el("tr", { "data-usage": `${row.kind}:${row.name}` },
        el("td", {}, row.kind), el("td", {}, row.name), el("td", {}, amounts(row.usage)),
        el("td", {}, amounts(row.operations)), el("td", { class: "num" }, money(row.cost))),
      "Nothing was used in this window."),
    report.budgets.length ? [el("h4", {}, "Budgets"), table(
      ["Budget", "Spent", "Period", "Action", ""], report.budgets,
      (b) => el("tr", { class: b.exceeded ? "outcome-error" : "" },
        el("td", {}, `${b.target}: ${b.amount} ${b.currency}`),
        el("td", { class: "num" }, `${b.spent.toFixed(6)} ${b.currency}`),
        el("td", {}, `${b.period} from ${dateTime(b.period_start)}`), el("td", {}, b.action),
        el("td", {}, b.exceeded ? el("span", { class: "badge" }, "exceeded") : "")),
      "")] : null);
}
