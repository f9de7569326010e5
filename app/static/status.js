// The fleet status page (app/templates/status.html): fetch status.json, draw one row per process, repeat.
// Served as a file, not inline: nginx's Content-Security-Policy allows only same-origin scripts. Plain DOM calls,
// no framework; every value is set as text, never parsed as HTML.
"use strict";
const REFRESH_MS = Number(document.body.dataset.refreshMs) || 2000;
// A lag above this (ms) is highlighted: the watchdog's stall threshold, FLEET_WATCHDOG_MS, sent in status.json.
let lagHotMs = 300;

function uptime(seconds) {
  if (seconds == null) return "—";
  const s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${String(m).padStart(2, "0")} m`;
  if (m) return `${m} m ${String(s % 60).padStart(2, "0")} s`;
  return `${s} s`;
}

function pool(stats) {
  if (!stats) return "—";
  // Motor's pool does not tell how many of its threads are busy.
  const active = stats.active == null ? "–" : stats.active;
  return `${active} · ${stats.queued} / ${stats.size}`;
}

function lag(ms) {
  if (ms == null) return ["—", false];
  return [`${ms.toFixed(1)} ms`, ms >= lagHotMs];
}

// port -> {pid, mode} as last seen answering: a stuck or dead process's row still says which one it was.
const lastSeen = new Map();

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;  // text only: nothing from the JSON is ever parsed as HTML
  if (className) td.className = className;
  return td;
}

function render(report) {
  const body = document.getElementById("processes");
  body.replaceChildren();
  for (const p of report.processes) {
    const row = body.insertRow();
    row.dataset.port = p.port;
    row.dataset.state = p.state;
    row.dataset.mode = p.mode || "";
    row.dataset.pid = p.pid || "";
    cell(row, p.port, "port");
    const state = cell(row, "", "");
    const pill = document.createElement("span");
    pill.className = "state";
    pill.textContent = p.state;
    state.append(pill);
    if (p.detail) {
      const detail = document.createElement("div");
      detail.className = "detail";
      detail.textContent = p.detail;
      state.append(detail);
    }
    if (p.pid) lastSeen.set(p.port, {pid: p.pid, mode: p.mode});
    const seen = p.pid ? null : lastSeen.get(p.port);
    const mode = cell(row, p.mode || (seen ? seen.mode : "—"), seen ? "mode stale" : "mode");
    const pid = cell(row, p.pid || (seen ? seen.pid : "—"), seen ? "num pid stale" : "num pid");
    if (seen) mode.title = pid.title = "last seen; not answering now";
    cell(row, uptime(p.uptime_s), "num");
    cell(row, p.requests_per_s == null ? "—" : p.requests_per_s.toFixed(1), "num");
    cell(row, p.in_flight == null ? "—" : p.in_flight, "num");
    // Requests answered 503 + Retry-After by overload protection since the process started (app/admission.py).
    cell(row, p.refused_total == null ? "—" : p.refused_total, p.refused_total ? "num hot" : "num");
    const loop = p.loop || {};
    for (const value of [loop.lag_ms, loop.max_lag_ms]) {
      const [text, hot] = lag(value);
      cell(row, text, hot ? "num hot" : "num");
    }
    cell(row, loop.stalls == null ? "—" : loop.stalls, "num");
    const pools = p.pools || {};
    cell(row, pool(pools.db), "num");
    cell(row, pool(pools.blocking), "num");
  }
  const s = report.summary;
  const summary = document.getElementById("summary");
  summary.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = `${s.ready} of ${s.processes} processes ready`;
  summary.append(strong);
  const others = ["draining", "not_ready", "not_responding", "down"].filter(k => s[k]).map(k => `${s[k]} ${k.replace("_", " ")}`);
  summary.append(others.length ? ` · ${others.join(" · ")}` : "");
  const when = new Date(report.generated_at * 1000).toLocaleTimeString();
  document.getElementById("served-by").textContent =
    `served by :${report.served_by.port} (pid ${report.served_by.pid}) at ${when}`;
  document.getElementById("error").textContent = "";
  document.body.dataset.updated = report.generated_at;
}

async function refresh() {
  // Bounded: if the process nginx picked is stuck, give up and ask again (nginx then picks another).
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(5000, 2 * REFRESH_MS));
  try {
    const response = await fetch("status.json", {cache: "no-store", signal: controller.signal});
    if (!response.ok) throw new Error(`status.json answered ${response.status}`);
    const report = await response.json();
    if (report.stall_threshold_ms) lagHotMs = report.stall_threshold_ms;
    render(report);
  } catch (error) {
    document.getElementById("error").textContent = `Could not refresh: ${error.message}; retrying.`;
  } finally {
    clearTimeout(timer);
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
