// scalelab live view: polls /api/data once a second and redraws six small canvas charts.
// Written for the kit (no library): lines, step lines, bands, horizontal reference lines,
// a shaded spike window, a linear or log y axis and m:ss time ticks. Text is at least 18 px.
"use strict";

const state = { meta: null, since: [], rows: [], events: [], spread: [], status: [], draws: 0, points: {}, clock: null, errors: 0 };
window.scalelabLive = state;  // read by the browser test

function mmss(t) {
  t = Math.max(0, Math.round(t));
  if (t >= 3600) return Math.floor(t / 3600) + ":" + String(Math.floor(t % 3600 / 60)).padStart(2, "0") + "h";
  return Math.floor(t / 60) + ":" + String(t % 60).padStart(2, "0");
}

function lighter(hex, amount) {
  const n = parseInt(hex.slice(1), 16), r = n >> 16, g = (n >> 8) & 255, b = n & 255;
  const mix = c => Math.round(c + (255 - c) * amount);
  return "rgb(" + mix(r) + "," + mix(g) + "," + mix(b) + ")";
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count), mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

// spec: {xmax, ymin, ymax, log, series: [{points: [[x, y]], color, dash, width, step, band}], hlines: [{y, color, dash}], spike: [s, e]}
function draw(canvas, spec) {
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "18px system-ui, sans-serif";
  const left = 64, right = 10, top = 10, bottom = 34, pw = w - left - right, ph = h - top - bottom;
  const tf = v => spec.log ? Math.log10(Math.max(v, 1)) : v;
  let ymin = spec.ymin, ymax = spec.ymax;
  if (ymax === undefined) {
    ymax = 1;
    for (const s of spec.series) for (const p of (s.points || s.band.map(b => [b[0], b[2]]))) if (p[1] !== null && p[1] > ymax) ymax = p[1];
    for (const l of spec.hlines || []) if (l.y > ymax) ymax = l.y;
    ymax = spec.log ? ymax * 2 : ymax * 1.15;
  }
  const y0 = tf(ymin), y1 = tf(ymax), xmax = Math.max(spec.xmax, 10);
  const X = x => left + pw * x / xmax, Y = v => top + ph * (1 - (tf(v) - y0) / Math.max(1e-9, y1 - y0));
  if (spec.spike) { ctx.fillStyle = "#e6e6e6"; ctx.fillRect(X(spec.spike[0]), top, X(spec.spike[1]) - X(spec.spike[0]), ph); }
  // grid and ticks
  ctx.strokeStyle = "#d0d0d0"; ctx.fillStyle = "#222"; ctx.lineWidth = 1; ctx.setLineDash([]);
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const yticks = [];
  if (spec.log) { for (let e = Math.ceil(y0); e <= y1; e++) yticks.push(Math.pow(10, e)); }
  else { const st = niceStep(ymax - ymin, 4); for (let v = ymin; v <= ymax + 1e-9; v += st) yticks.push(v); }
  for (const v of yticks) {
    ctx.beginPath(); ctx.moveTo(left, Y(v)); ctx.lineTo(left + pw, Y(v)); ctx.stroke();
    ctx.fillText(v >= 1000 ? (v / 1000) + "k" : String(Math.round(v * 100) / 100), left - 6, Y(v));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  const xs = niceStep(xmax, 5) >= 60 ? Math.ceil(niceStep(xmax, 5) / 60) * 60 : 30;
  for (let x = 0; x <= xmax + 1e-9; x += xs) { ctx.beginPath(); ctx.moveTo(X(x), top); ctx.lineTo(X(x), top + ph); ctx.stroke(); ctx.fillText(mmss(x), X(x), top + ph + 6); }
  // reference lines
  for (const l of spec.hlines || []) {
    ctx.strokeStyle = l.color; ctx.lineWidth = 2.5; ctx.setLineDash(l.dash || [8, 5]);
    ctx.beginPath(); ctx.moveTo(left, Y(l.y)); ctx.lineTo(left + pw, Y(l.y)); ctx.stroke();
  }
  // data
  let drawn = 0;
  for (const s of spec.series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = s.width || 3; ctx.setLineDash(s.dash || []);
    if (s.band) {
      ctx.globalAlpha = 0.35; ctx.beginPath();
      s.band.forEach((p, i) => i ? ctx.lineTo(X(p[0]), Y(p[2])) : ctx.moveTo(X(p[0]), Y(p[2])));
      for (let i = s.band.length - 1; i >= 0; i--) ctx.lineTo(X(s.band[i][0]), Y(s.band[i][1]));
      ctx.closePath(); ctx.fill(); ctx.globalAlpha = 1; drawn += s.band.length; continue;
    }
    ctx.beginPath(); let pen = false, prev = null;
    for (const p of s.points) {
      if (p[1] === null || p[1] === undefined) { if (!s.join) pen = false; continue; }
      const x = X(p[0]), y = Y(p[1]);
      if (!pen) { ctx.moveTo(x, y); pen = true; }
      else { if (s.step && prev !== null) ctx.lineTo(x, prev); ctx.lineTo(x, y); }
      prev = y; drawn++;
    }
    ctx.stroke();
  }
  ctx.setLineDash([]); ctx.strokeStyle = "#444"; ctx.lineWidth = 1.5; ctx.strokeRect(left, top, pw, ph);
  return drawn;
}

function series(i, key) { return state.rows[i].map(r => [r.t, r[key]]); }

// a trailing mean over 5 samples: per-second CPU and error counts are noisy to read from afar
function smooth(points) {
  return points.map((p, j) => {
    const win = points.slice(Math.max(0, j - 4), j + 1).filter(q => q[1] !== null && q[1] !== undefined);
    return [p[0], win.length ? win.reduce((a, q) => a + q[1], 0) / win.length : null];
  });
}

function redraw() {
  const m = state.meta; if (!m) return;
  const runs = m.runs, xmax = Math.max(...runs.map(r => r.duration_s)), spike = runs[0].spike;
  const objective = runs[0].objective_ms, targets = runs.map(r => r.hpa_target_pct_of_limit).filter(v => v !== null);
  const col = i => runs[i].color, idx = runs.map((_, i) => i);
  const charts = {
    replicas: { ymin: 0, series: idx.flatMap(i => [
      { points: series(i, "desired"), color: col(i), step: true, width: 4 },
      { points: series(i, "ready"), color: col(i), step: true, dash: [9, 6], width: 2.5 }]) },
    cpu: { ymin: 0, series: idx.flatMap(i => [
      { points: smooth(series(i, "cpu")), color: col(i) },
      { points: series(i, "hpa_seen"), color: col(i), step: true, dash: [2, 4], width: 2.5, join: true }]),
      hlines: targets.map(t => ({ y: t, color: "#333", dash: [3, 3] })) },
    p95: { ymin: 10, log: true, series: idx.map(i => ({ points: series(i, "p95"), color: col(i), join: true })),
      hlines: [{ y: objective, color: "#000", dash: [10, 5] }] },
    errors: { ymin: 0, series: idx.map(i => ({ points: smooth(series(i, "errors")), color: col(i) })) },
    cost: { ymin: 0, series: idx.map(i => ({ points: series(i, "cost"), color: col(i) })) },
    spread: { ymin: 0, series: idx.flatMap(i => [
      { band: state.spread[i].map(s => [s.t, s.min, s.max]), color: col(i) },
      { points: state.spread[i].map(s => [s.t, s.max]), color: col(i), width: 2 }]) },
  };
  for (const [name, spec] of Object.entries(charts)) {
    spec.xmax = xmax; spec.spike = spike;
    state.points[name] = draw(document.getElementById(name), spec);
  }
  // the figures a class reads out loud, under each title
  const last = i => state.rows[i][state.rows[i].length - 1] || {};
  const say = (id, f) => { document.getElementById("key-" + id).textContent = idx.map(i => runs[i].arm + ": " + f(i)).join("  ·  "); };
  const fmt = (v, d) => v === null || v === undefined ? "-" : Number(v).toFixed(d);
  say("replicas", i => fmt(last(i).desired, 0) + "/" + fmt(last(i).ready, 0));
  say("cpu", i => fmt(last(i).cpu, 0) + "%" + (runs[i].hpa_target_pct_of_limit !== null ? " (HPA target " + fmt(runs[i].hpa_target_pct_of_limit, 0) + "%)" : ""));
  say("p95", i => fmt(last(i).p95, 0) + " ms (objective " + fmt(objective, 0) + ")");
  say("errors", i => fmt(state.rows[i].reduce((a, r) => a + (r.errors || 0), 0), 0) + " in total");
  say("cost", i => "$" + fmt(last(i).cost, 3));
  say("spread", i => { const s = state.spread[i][state.spread[i].length - 1]; return s ? fmt(s.min, 1) + " to " + fmt(s.max, 1) + " on " + s.replicas : "-"; });
  const t = state.clock !== null ? state.clock : Math.max(0, ...idx.map(i => last(i).t || 0));
  document.getElementById("clock").textContent = "t = " + mmss(t) + (m.replay ? "  (replay x" + m.speed + ")" : "  " + state.status.join(" / "));
  state.draws++;
}

async function poll() {
  try {
    const res = await fetch("/api/data?since=" + state.since.join(","), { cache: "no-store" });
    const data = await res.json();
    state.clock = data.clock;
    data.runs.forEach((r, i) => {
      state.rows[i].push(...r.rows);
      state.since[i] = state.rows[i].length;
      state.events[i] = r.events; state.spread[i] = r.spread; state.status[i] = r.status;
    });
    redraw();
  } catch (e) { state.errors++; state.lastError = String(e && e.stack || e); }
  setTimeout(poll, 1000);
}

async function start() {
  state.meta = await (await fetch("/api/meta", { cache: "no-store" })).json();
  const runs = state.meta.runs;
  runs.forEach(() => { state.rows.push([]); state.since.push(0); state.events.push([]); state.spread.push([]); state.status.push(""); });
  document.getElementById("title").textContent = runs[0].scenario + (state.meta.replay ? " — replay" : " — live");
  document.getElementById("arms").innerHTML = runs.map(r =>
    '<span class="swatch" style="background:' + r.color + '"></span>' + r.label + " (" + r.role_name + ")").join("");
  window.addEventListener("resize", redraw);
  poll();
}

start();
