// The dashboard: sign in with the token, then refresh every panel every few seconds.

import { ApiError, api, forgetToken, setToken, takeToken } from "./api.js";
import { el, fill } from "./dom.js";
import { renderDetail, renderInvocations } from "./invocations.js";
import { renderCharts, renderDeadLetters, renderFunctions, renderUsage } from "./panels.js";

const EVERY = 5000; // ms between refreshes
const $ = (id) => document.getElementById(id);
const state = { function: "", outcome: "", detail: null, timer: null, round: 0 };

function windowChoice() {
  const [seconds, buckets] = $("window").value.split(",").map(Number);
  return { seconds, buckets };
}

function selectFunction(name) {
  state.function = name;
  $("function-filter").value = name;
  refresh();
}

function openInvocation(id) {
  state.detail = id;
  refreshDetail();
}

function updateFunctionFilter(functions) {
  const select = $("function-filter");
  const names = functions.map((f) => f.name);
  const known = [...select.options].slice(1).map((o) => o.value);
  if (names.join() !== known.join()) {
    fill(select, el("option", { value: "" }, "All functions"),
      names.map((name) => el("option", { value: name }, name)));
  }
  select.value = names.includes(state.function) ? state.function : "";
  state.function = select.value;
}

async function refreshDetail() {
  if (state.detail) await renderDetail($("detail"), state.detail);
}

async function refresh() {
  clearTimeout(state.timer);
  const round = ++state.round; // a refresh started meanwhile schedules the next one
  try {
    const [health, functions] = await Promise.all([api("/health"), api("/functions")]);
    $("app-name").textContent = health.app ? `— ${health.app}` : "";
    updateFunctionFilter(functions);
    const { seconds, buckets } = windowChoice();
    await Promise.all([
      renderFunctions($("functions"), functions, selectFunction),
      renderCharts($("charts"), seconds, buckets, state.function),
      renderInvocations($("invocations"), state.function, state.outcome, openInvocation),
      renderDeadLetters($("dead-letters"), refresh),
      renderUsage($("usage"), seconds),
      refreshDetail(),
    ]);
    $("problem").hidden = true;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut("The platform did not accept the token: " + error.message);
      return;
    }
    $("problem").textContent = `Could not refresh: ${error.message}`;
    $("problem").hidden = false;
  }
  if (round === state.round) state.timer = setTimeout(refresh, EVERY);
}

function signOut(problem) {
  forgetToken();
  clearTimeout(state.timer);
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-problem").textContent = problem;
}

function start() {
  $("login").hidden = true;
  $("main").hidden = false;
  refresh();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("token").value);
  $("token").value = "";
  start();
});
$("refresh").addEventListener("click", refresh);
$("window").addEventListener("change", refresh);
$("function-filter").addEventListener("change", (e) => selectFunction(e.target.value));
$("outcome-filter").addEventListener("change", (e) => {
  state.outcome = e.target.value;
  refresh();
});

window.addEventListener("hashchange", () => { // a new link opened in this tab
  if (location.hash && takeToken()) start();
});
if (takeToken()) start();
else signOut("");
