// Plain SVG charts: one line chart and one heat strip, drawn from scratch (no library). Sizes are in
// viewBox units, so the SVG scales with its container; colours live in style.css (the CSP forbids
// inline styles).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const W = 320, H = 120, PAD_L = 40, PAD_R = 8, PAD_T = 10, PAD_B = 18;

function node(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function compact(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(v < 10 ? 2 : 0));
}

/**
 * Draw `points` ([[time_ms, value], ...], oldest first) into `svg` as a line over [from_ms, to_ms].
 * Values of null are gaps. `unit` is appended to the axis maximum and to the latest value.
 */
export function lineChart(svg, points, { fromMs, toMs, unit = "" }) {
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const present = points.filter((p) => p[1] !== null && p[1] !== undefined);
  const top = niceMax(Math.max(0, ...present.map((p) => p[1])));
  const x = (t) => PAD_L + ((t - fromMs) / Math.max(1, toMs - fromMs)) * (W - PAD_L - PAD_R);
  const y = (v) => H - PAD_B - (v / top) * (H - PAD_T - PAD_B);
  const parts = [node("rect", { class: "chart-bg", x: PAD_L, y: PAD_T, width: W - PAD_L - PAD_R, height: H - PAD_T - PAD_B })];
  for (const f of [0, 0.5, 1]) {
    parts.push(node("line", { class: "chart-grid", x1: PAD_L, x2: W - PAD_R, y1: y(top * f), y2: y(top * f) }));
    parts.push(node("text", { class: "chart-axis", x: PAD_L - 4, y: y(top * f) + 3, "text-anchor": "end" },
                    compact(top * f) + (f === 1 ? unit : "")));
  }
  const minutes = Math.round((toMs - fromMs) / 60000);
  parts.push(node("text", { class: "chart-axis", x: PAD_L, y: H - 4 }, `-${minutes} min`));
  parts.push(node("text", { class: "chart-axis", x: W - PAD_R, y: H - 4, "text-anchor": "end" }, "now"));
  // One polyline per run of present values, so a gap in the data is a gap in the line.
  let run = [];
  const flush = () => {
    if (run.length > 1) parts.push(node("polyline", { class: "chart-line", points: run.join(" ") }));
    if (run.length === 1) { // a lone value between gaps: a dot, since a one-point line draws nothing
      const [cx, cy] = run[0].split(",");
      parts.push(node("circle", { class: "chart-dot", cx, cy, r: 2 }));
    }
    run = [];
  };
  for (const [t, v] of points) {
    if (v === null || v === undefined) { flush(); continue; }
    run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  }
  flush();
  if (!present.length) {
    parts.push(node("text", { class: "chart-empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
  }
  svg.replaceChildren(...parts);
  svg.dataset.points = String(present.length);
  return present.length ? present[present.length - 1][1] : null;
}

/** A new strip of one square per height, oldest left: `cells` is a list of {height, state: "signed" or "missed"}. */
export function heatStrip(cells, label) {
  const size = 6, gap = 1;
  const width = Math.max(1, cells.length * (size + gap));
  const svg = node("svg", { class: "heat", role: "img", "aria-label": label, viewBox: `0 0 ${width} ${size}`,
                            preserveAspectRatio: "none" });
  svg.replaceChildren(...cells.map((c, i) => {
    const r = node("rect", { class: `heat-${c.state}`, x: i * (size + gap), y: 0, width: size, height: size });
    r.appendChild(node("title", {}, `height ${c.height}: ${c.state}`));
    return r;
  }));
  return svg;
}
