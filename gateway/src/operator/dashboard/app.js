// The operator dashboard: polls the admin API with the bearer token and draws what
// it answers. The token comes from the URL fragment (#token=…, never sent to the
// server, removed from the address bar at once) or a prompt, and is kept in this
// tab's sessionStorage only. Every value drawn is also written to a data attribute
// so a test can read what the page shows. Text from the API (source keys carry
// client-chosen fingerprints) is only ever set with textContent.
"use strict";

const params = new URLSearchParams(location.hash.slice(1));
if (params.has("token")) {
  sessionStorage.setItem("gateway-admin-token", params.get("token"));
  history.replaceState(null, "", location.pathname);
}
let token = sessionStorage.getItem("gateway-admin-token");
if (!token) {
  token = window.prompt("Admin token ([admin] token or GATEWAY_ADMIN_TOKEN):") || "";
  sessionStorage.setItem("gateway-admin-token", token);
}
const interval = Math.max(200, Number(params.get("interval")) || 2000);
const statusEl = document.getElementById("status");
const samples = []; // {t, allowed, refused}
let seq = 0;

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (r.status === 401) {
    // Forget a refused token, so reloading the page asks again.
    sessionStorage.removeItem("gateway-admin-token");
    throw new Error("the admin token was refused: open the dashboard with #token=… or reload to type it");
  }
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function setMetric(name, value, digits) {
  const text = digits === undefined ? String(value) : Number(value).toFixed(digits);
  for (const el of document.querySelectorAll('[data-metric="' + name + '"]')) {
    el.textContent = text;
    el.dataset.value = text;
  }
}

function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = String(text);
  tr.appendChild(td);
  return td;
}

function bar(tr, fraction, over) {
  const td = document.createElement("td");
  td.className = "bar";
  const span = document.createElement("span");
  span.style.width = Math.max(0, Math.min(1, fraction)) * 100 + "%";
  if (over) span.className = "over";
  td.appendChild(span);
  tr.appendChild(td);
}

function fill(tableId, rows, build) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows.map(build));
  document.getElementById(tableId).dataset.rows = String(rows.length);
}

function drawRates() {
  const canvas = document.getElementById("rates");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = Math.max(1, samples[i].t - samples[i - 1].t) / 1000;
    rates.push({
      allowed: (samples[i].allowed - samples[i - 1].allowed) / dt,
      refused: (samples[i].refused - samples[i - 1].refused) / dt,
    });
  }
  canvas.dataset.samples = String(rates.length);
  const last = rates[rates.length - 1] || { allowed: 0, refused: 0 };
  setMetric("rate.allowed", last.allowed, 1);
  setMetric("rate.refused", last.refused, 1);
  const max = Math.max(1, ...rates.map((r) => Math.max(r.allowed, r.refused)));
  ctx.strokeStyle = "#26303a";
  for (let g = 1; g < 4; g++) { ctx.beginPath(); ctx.moveTo(0, (h * g) / 4); ctx.lineTo(w, (h * g) / 4); ctx.stroke(); }
  ctx.fillStyle = "#8a96a3";
  ctx.font = "11px sans-serif";
  ctx.fillText(max.toFixed(1) + "/s", 4, 12);
  for (const [key, colour] of [["allowed", "#4cc38a"], ["refused", "#f06a6a"]]) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    rates.forEach((r, i) => {
      const x = rates.length < 2 ? w : (i / (rates.length - 1)) * w;
      const y = h - 4 - (r[key] / max) * (h - 20);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function drawHourly(hours, nowSecs) {
  const svg = document.getElementById("hourly");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const max = Math.max(1, ...hours.map((x) => Math.abs(x.units)));
  // 25 slots: the hours that `since_secs=86400` can answer, the current one right-most.
  const width = 900 / 25;
  const now = Math.floor(nowSecs / 3600) * 3600; // the current hour is the right-most slot
  hours.forEach((x) => {
    const slot = Math.max(0, 24 - Math.round((now - x.hour_start) / 3600));
    const height = (Math.abs(x.units) / max) * 140;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", String(slot * width + 2));
    rect.setAttribute("y", String(150 - height));
    rect.setAttribute("width", String(width - 4));
    rect.setAttribute("height", String(Math.max(1, height)));
    rect.setAttribute("fill", x.units >= 0 ? "#f0b35a" : "#4cc38a");
    rect.dataset.hour = String(x.hour_start);
    rect.dataset.units = String(x.units);
    rect.dataset.accounts = String(x.accounts);
    const title = document.createElementNS(ns, "title");
    title.textContent = new Date(x.hour_start * 1000).toISOString() + ": " + x.units + " units, " + x.accounts + " accounts";
    rect.appendChild(title);
    svg.appendChild(rect);
  });
  svg.dataset.bars = String(hours.length);
}

function render(summary, refusals, cost, hourly, budgets) {
  const d = summary.decisions;
  setMetric("decisions.allowed", d.allowed);
  setMetric("decisions.refused", d.refused);
  setMetric("blocks.refused", summary.blocks.refused);
  setMetric("blocks.active", summary.blocks.active);
  setMetric("ledger.units", summary.ledger.units);
  setMetric("accounts_tracked", summary.accounts_tracked);
  samples.push({ t: performance.now(), allowed: d.allowed, refused: d.refused });
  if (samples.length > 61) samples.shift();
  drawRates();
  fill("reasons", d.refused_by_reason.filter(([, n]) => n > 0), ([reason, n]) => {
    const tr = document.createElement("tr");
    tr.dataset.reason = reason;
    tr.dataset.count = String(n);
    cell(tr, reason);
    cell(tr, n);
    return tr;
  });
  const maxRefused = Math.max(1, ...refusals.sources.map((s) => s.refused));
  fill("top-refusals", refusals.sources, (s) => {
    const tr = document.createElement("tr");
    tr.dataset.key = s.key;
    tr.dataset.refused = String(s.refused);
    tr.dataset.blocked = String(s.blocked);
    cell(tr, s.key);
    cell(tr, s.refused);
    cell(tr, s.blocked);
    bar(tr, s.refused / maxRefused);
    return tr;
  });
  const maxUnits = Math.max(1, ...cost.sources.map((s) => Math.abs(s.units)));
  fill("top-cost", cost.sources, (s) => {
    const tr = document.createElement("tr");
    tr.dataset.key = s.key;
    tr.dataset.units = String(s.units);
    tr.dataset.accounts = String(s.accounts);
    cell(tr, s.key);
    cell(tr, s.units);
    cell(tr, s.accounts);
    cell(tr, s.action);
    bar(tr, Math.abs(s.units) / maxUnits);
    return tr;
  });
  drawHourly(hourly, summary.now);
  fill("budgets", budgets.budgets, (b) => {
    const tr = document.createElement("tr");
    tr.dataset.budget = b.key;
    tr.dataset.debt = String(b.worst_debt);
    tr.dataset.units = String(b.units);
    cell(tr, b.key);
    cell(tr, Math.round(b.window_secs / 3600) + " h");
    cell(tr, b.action);
    cell(tr, b.worst_key || "–");
    cell(tr, b.worst_debt);
    cell(tr, b.units);
    bar(tr, b.worst_debt / Math.max(1, b.units), b.worst_debt >= b.units);
    return tr;
  });
}

async function poll() {
  try {
    const [summary, refusals, cost, hourly, budgets] = await Promise.all([
      api("/operator/summary"),
      api("/operator/top?by=refusals&n=10"),
      api("/operator/top?by=cost&n=10&since_secs=3600"),
      api("/ledger/hourly?since_secs=86400"),
      api("/operator/budgets"),
    ]);
    render(summary, refusals, cost, hourly, budgets);
    seq += 1;
    statusEl.dataset.pollSeq = String(seq);
    statusEl.dataset.polledAt = String(summary.now);
    statusEl.dataset.state = "ok";
    statusEl.textContent = "live: updated " + new Date().toLocaleTimeString() + " (every " + interval / 1000 + " s)";
  } catch (e) {
    statusEl.dataset.state = "error";
    statusEl.textContent = String(e.message || e);
  }
  setTimeout(poll, interval);
}

poll();
