// traceview.cc: see traceview.h. The page is three inline parts: the styles, the trace
// JSON (a <script type="application/json"> the page parses) and the viewer script.
#include "runtime/traceview.h"

namespace spindle::runtime::trace {

namespace {

constexpr std::string_view kHead = R"HTML(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>)HTML";

constexpr std::string_view kStyle = R"HTML(</title>
<style>
body{font:12px sans-serif;margin:8px;background:#fafafa;color:#222}
#bar{margin:4px 0}#bar span{margin-right:14px}
#view{border:1px solid #bbb;background:#fff;display:block;cursor:grab}
#tip{position:fixed;pointer-events:none;background:#ffe;border:1px solid #999;padding:4px;
  white-space:pre;display:none;font:11px monospace}
table{border-collapse:collapse;margin-top:10px}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
#tracks{display:none}
</style></head><body>
<h3 id="title"></h3>
<div id="bar"><span id="range"></span><span>wheel: zoom, drag: pan, double-click: reset</span></div>
<canvas id="view" width="1200" height="400"></canvas>
<div id="tip"></div>
<div id="status" data-tracks="0" data-events="0">not drawn</div>
<ul id="tracks"></ul>
<h4>Stop-the-world pauses</h4>
<table id="pauses"><thead><tr><th>#</th><th>pause</th><th>at (ms)</th><th>duration (us)</th><th>detail</th></tr></thead><tbody></tbody></table>
<script id="trace-data" type="application/json">)HTML";

constexpr std::string_view kScript = R"HTML(</script>
<script>
"use strict";
(function () {
  document.getElementById("title").textContent = document.title;
  const data = JSON.parse(document.getElementById("trace-data").textContent);
  const evs = data.traceEvents || [];
  const names = {}, sorts = {};
  const spans = {}, marks = {}, counters = {}, flowS = {}, flowF = {};
  let tmin = Infinity, tmax = -Infinity;
  for (const e of evs) {
    if (e.ph === "M") {
      if (e.name === "thread_name") names[e.tid] = e.args.name;
      if (e.name === "thread_sort_index") sorts[e.tid] = e.args.sort_index;
      continue;
    }
    const t = +e.ts, end = t + (+e.dur || 0);
    if (t < tmin) tmin = t;
    if (end > tmax) tmax = end;
    if (e.ph === "X") (spans[e.tid] = spans[e.tid] || []).push(e);
    else if (e.ph === "i") (marks[e.tid] = marks[e.tid] || []).push(e);
    else if (e.ph === "C") {
      for (const k in e.args) (counters[k] = counters[k] || []).push([t, +e.args[k]]);
    } else if (e.ph === "s") flowS[e.id] = e;
    else if (e.ph === "f") flowF[e.id] = e;
  }
  if (!isFinite(tmin)) { tmin = 0; tmax = 1; }
  if (tmax <= tmin) tmax = tmin + 1;
  // Tracks: every named one, then any unnamed tid that has events; sorted as the file says.
  const tids = new Set(Object.keys(names).map(Number));
  for (const k of Object.keys(spans).concat(Object.keys(marks))) tids.add(Number(k));
  const tracks = [...tids].filter(t => spans[t] || marks[t] || names[t] !== undefined)
      .sort((a, b) => (sorts[a] ?? a) - (sorts[b] ?? b));
  // Nesting depth of each span on its track (spans contained in an earlier one go below).
  const depthOf = new Map();
  let maxDepth = {};
  for (const t of tracks) {
    const list = (spans[t] || []).sort((a, b) => a.ts - b.ts || (b.dur - a.dur));
    const stack = [];
    let md = 0;
    for (const e of list) {
      while (stack.length && stack[stack.length - 1] <= +e.ts) stack.pop();
      depthOf.set(e, stack.length);
      md = Math.max(md, stack.length);
      stack.push(+e.ts + (+e.dur || 0));
    }
    maxDepth[t] = md;
  }
  const cnames = Object.keys(counters).sort();
  const LABEL = 170, ROW = 16, CROW = 40, GAP = 6;
  const rows = [];
  let y = 4;
  for (const t of tracks) {
    const h = (maxDepth[t] + 1) * ROW + 8;
    rows.push({kind: "track", tid: t, y: y, h: h, name: names[t] ?? ("track " + t)});
    y += h + GAP;
  }
  for (const c of cnames) { rows.push({kind: "counter", name: c, y: y, h: CROW}); y += CROW + GAP; }
  const canvas = document.getElementById("view");
  canvas.width = Math.max(800, window.innerWidth - 30);
  canvas.height = y + 20;
  const ctx = canvas.getContext("2d");
  let v0 = tmin, v1 = tmax;
  const W = () => canvas.width - LABEL - 10;
  const X = t => LABEL + (t - v0) / (v1 - v0) * W();
  const T = x => v0 + (x - LABEL) / W() * (v1 - v0);
  function color(s) {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return "hsl(" + (h % 360) + ",55%,62%)";
  }
  function catColor(e) {
    if (e.cat === "stw") return "#d33";
    if (e.cat === "gc" || e.cat === "gc phase") return "#e90";
    if (e.name === "mark assist") return "#c5a";
    if (e.name === "idle mark") return "#9a4";
    if (e.cat === "foreign") return "#58c";
    return color(e.name);
  }
  let hit = [];
  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    hit = [];
    let drawn = 0, drawnTracks = 0;
    ctx.font = "11px sans-serif";
    for (const r of rows) {
      ctx.fillStyle = "#f3f3f3";
      ctx.fillRect(0, r.y, canvas.width, r.h);
      ctx.fillStyle = "#222";
      ctx.fillText(r.name, 4, r.y + 12);
      ctx.save();
      ctx.beginPath();
      ctx.rect(LABEL, r.y, W(), r.h);
      ctx.clip();
      let n = 0;
      if (r.kind === "track") {
        for (const e of spans[r.tid] || []) {
          const a = +e.ts, b = a + (+e.dur || 0);
          if (b < v0 || a > v1) continue;
          const x0 = X(a), x1 = Math.max(X(b), x0 + 1);
          const yy = r.y + 2 + depthOf.get(e) * ROW;
          ctx.fillStyle = catColor(e);
          ctx.fillRect(x0, yy, x1 - x0, ROW - 2);
          if (x1 - x0 > 30) {
            ctx.fillStyle = "#000";
            ctx.fillText(e.name, x0 + 2, yy + 11, x1 - x0 - 4);
          }
          hit.push([x0, yy, x1, yy + ROW - 2, e]);
          n++;
        }
        for (const e of marks[r.tid] || []) {
          const a = +e.ts;
          if (a < v0 || a > v1) continue;
          const x = X(a);
          ctx.fillStyle = e.cat === "park" ? "#a00" : e.cat === "unpark" ? "#0a0" : "#55f";
          ctx.beginPath();
          ctx.moveTo(x, r.y + r.h - 7);
          ctx.lineTo(x - 3, r.y + r.h - 1);
          ctx.lineTo(x + 3, r.y + r.h - 1);
          ctx.fill();
          hit.push([x - 3, r.y + r.h - 7, x + 3, r.y + r.h, e]);
          n++;
        }
      } else {
        const pts = counters[r.name];
        let max = 0;
        for (const p of pts) max = Math.max(max, p[1]);
        ctx.strokeStyle = color(r.name);
        ctx.fillStyle = color(r.name);
        ctx.beginPath();
        let first = true, last = r.y + r.h;
        for (const p of pts) {
          const x = X(p[0]), yy = r.y + r.h - 2 - (max > 0 ? p[1] / max * (r.h - 14) : 0);
          if (first) { ctx.moveTo(LABEL, yy); first = false; } else ctx.lineTo(x, last);
          ctx.lineTo(x, yy);
          last = yy;
          if (p[0] >= v0 && p[0] <= v1) n++;
        }
        ctx.lineTo(LABEL + W(), last);
        ctx.stroke();
        ctx.fillStyle = "#222";
        ctx.fillText("max " + max.toLocaleString(), LABEL + 4, r.y + 11);
      }
      ctx.restore();
      if (n > 0 || r.kind === "track") drawnTracks++;
      drawn += n;
    }
    // Spawn arrows: from the spawner's mark to the child's first run span.
    ctx.strokeStyle = "rgba(60,60,200,0.6)";
    const rowOf = {};
    for (const r of rows) if (r.kind === "track") rowOf[r.tid] = r;
    for (const id in flowS) {
      const s = flowS[id], f = flowF[id];
      if (!f || !rowOf[s.tid] || !rowOf[f.tid]) continue;
      if (+f.ts < v0 || +s.ts > v1) continue;
      ctx.beginPath();
      ctx.moveTo(X(+s.ts), rowOf[s.tid].y + rowOf[s.tid].h - 4);
      ctx.lineTo(X(+f.ts), rowOf[f.tid].y + 4);
      ctx.stroke();
      drawn++;
    }
    document.getElementById("range").textContent =
        "window " + ((v0 - tmin) / 1000).toFixed(3) + " .. " + ((v1 - tmin) / 1000).toFixed(3) + " ms";
    const st = document.getElementById("status");
    st.dataset.tracks = String(drawnTracks);
    st.dataset.events = String(drawn);
    st.textContent = "drawn: " + drawnTracks + " tracks, " + drawn + " events";
  }
  const list = document.getElementById("tracks");
  for (const r of rows) {
    const li = document.createElement("li");
    li.textContent = r.name;
    list.appendChild(li);
  }
  const tbody = document.querySelector("#pauses tbody");
  const pauses = (spans[1002] || []).slice().sort((a, b) => a.ts - b.ts);
  pauses.forEach((e, i) => {
    const tr = document.createElement("tr");
    for (const c of [i + 1, e.name, ((e.ts - tmin) / 1000).toFixed(3), (+e.dur).toFixed(1),
                     (e.args && e.args.detail) || ""]) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  });
  const tip = document.getElementById("tip");
  let drag = null;
  canvas.addEventListener("wheel", ev => {
    ev.preventDefault();
    const t = T(ev.offsetX), k = ev.deltaY > 0 ? 1.25 : 0.8;
    v0 = t - (t - v0) * k;
    v1 = t + (v1 - t) * k;
    if (v1 - v0 < 0.01) v1 = v0 + 0.01;
    draw();
  }, {passive: false});
  canvas.addEventListener("mousedown", ev => { drag = [ev.offsetX, v0, v1]; });
  window.addEventListener("mouseup", () => { drag = null; });
  canvas.addEventListener("mousemove", ev => {
    if (drag) {
      const dt = (ev.offsetX - drag[0]) / W() * (drag[2] - drag[1]);
      v0 = drag[1] - dt;
      v1 = drag[2] - dt;
      draw();
      return;
    }
    const h = hit.find(q => ev.offsetX >= q[0] && ev.offsetX <= q[2] && ev.offsetY >= q[1] && ev.offsetY <= q[3]);
    if (!h) { tip.style.display = "none"; return; }
    const e = h[4];
    tip.textContent = e.name + "  [" + e.cat + "]\nat " + ((e.ts - tmin) / 1000).toFixed(3) + " ms" +
        (e.dur !== undefined ? "\nduration " + (+e.dur).toFixed(3) + " us" : "") +
        (e.args ? "\n" + JSON.stringify(e.args) : "");
    tip.style.left = (ev.clientX + 12) + "px";
    tip.style.top = (ev.clientY + 12) + "px";
    tip.style.display = "block";
  });
  canvas.addEventListener("dblclick", () => { v0 = tmin; v1 = tmax; draw(); });
  draw();
})();
</script>
</body></html>
)HTML";

void appendEscapedHTML(std::string& out, std::string_view s) {
  for (char ch : s) {
    switch (ch) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      default: out += ch;
    }
  }
}

}  // namespace

std::string traceHTMLHead(std::string_view title) {
  std::string out(kHead);
  appendEscapedHTML(out, title);
  out += kStyle;
  return out;
}

std::string_view traceHTMLTail() { return kScript; }

std::string traceHTML(std::string_view json, std::string_view title) {
  std::string out = traceHTMLHead(title);
  out.reserve(out.size() + json.size() + kScript.size() + 64);
  // "</" only occurs inside JSON strings; "<\/" is the same string to JSON.parse.
  for (std::size_t i = 0; i < json.size(); i++) {
    out += json[i];
    if (json[i] == '<' && i + 1 < json.size() && json[i + 1] == '/') out += '\\';
  }
  out += kScript;
  return out;
}

}  // namespace spindle::runtime::trace
