// DOM and formatting helpers. Every value from the API is inserted with textContent (never innerHTML):
// memos and asset ids are user-controlled.
"use strict";

export const $ = (id) => document.getElementById(id);

export function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  return e;
}

export function link(href, text, attrs) {
  const a = el("a", text, attrs);
  a.href = href;
  return a;
}

/** Ids on screen: the first 8 and last 6 hex digits (an 8-digit prefix is what search needs at least). */
export function short(hex) {
  if (!hex) return "";
  const head = hex.startsWith("pn") ? 10 : 8;
  return hex.length > head + 8 ? `${hex.slice(0, head)}…${hex.slice(-6)}` : hex;
}

/** An integer amount (Number or BigInt) in minor units, as a decimal string with `decimals` places. */
export function formatUnits(amount, decimals) {
  if (amount === null || amount === undefined) return "";
  const neg = String(amount).startsWith("-");
  const digits = String(amount).replace(/^-/, "");
  if (!decimals) return (neg ? "−" : "") + digits;
  const s = digits.padStart(decimals + 1, "0");
  return `${neg ? "−" : ""}${s.slice(0, -decimals)}.${s.slice(-decimals)}`;
}

export function formatAmount(amount, asset, decimals) {
  if (amount === null || amount === undefined) return "";
  return `${formatUnits(amount, decimals)} ${asset || ""}`.trim();
}

export function formatTime(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z") : "";
}

/** "12 s ago", "3 min ago": feeds are read as "how recent". */
function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function seconds(ms) {
  return ms === null || ms === undefined ? "" : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function timeCell(ms) {
  return el("time", ago(ms), { datetime: new Date(ms).toISOString(), title: formatTime(ms), "data-ms": String(ms) });
}

/** A table row; each cell is a Node, a string, or [content, className]. */
export function row(cells, attrs) {
  const tr = el("tr", null, attrs);
  for (const c of cells) {
    const [content, cls] = Array.isArray(c) ? c : [c, null];
    const td = el("td", null, cls ? { class: cls } : null);
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content === null || content === undefined ? "" : String(content);
    tr.appendChild(td);
  }
  return tr;
}

/** Fill a <dl> with [label, value] pairs, skipping empty values. */
export function fields(dl, pairs) {
  dl.replaceChildren();
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === "") continue;
    const dd = el("dd", null, { "data-field": k });
    if (v instanceof Node) dd.appendChild(v); else dd.textContent = String(v);
    dl.append(el("dt", k), dd);
  }
}

/** A truncated id linking to its page, the full id in its title, and a button copying the full id. */
export function idLink(href, full, label) {
  const span = el("span", null, { class: "id" });
  span.append(link(href, label || short(full), { class: "mono", title: full, "data-full": full }), copyButton(full));
  return span;
}

function copyButton(text) {
  const b = el("button", "copy", { type: "button", class: "copy", title: `copy ${text}`, "aria-label": "copy full id",
                               "data-copy": text });
  b.addEventListener("click", () => copyText(text).then(
    () => { b.textContent = "copied"; setTimeout(() => { b.textContent = "copy"; }, 1200); },
    () => { b.textContent = "copy failed"; }));
  return b;
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // Plain http on another host: no Clipboard API, so select the text in a throw-away input.
  const input = el("input", null, { value: text, readonly: "" });
  document.body.appendChild(input);
  input.select();
  try { if (!document.execCommand("copy")) throw new Error("copy refused"); } finally { input.remove(); }
}

export const addrLink = (a) => (a ? idLink(`#/account/${a}`, a) : "");
export const txLink = (id) => idLink(`#/tx/${id}`, id);
export const blockLink = (h) => link(`#/block/${h}`, String(h), { "data-height": String(h) });
export const hashLink = (hash) => idLink(`#/block/${hash}`, hash);

/**
 * Show rows in `tbody`, each cell labelled with its column's heading (narrow screens show a row as a card of
 * "label: value" lines), or the `empty` paragraph with `message` when there are none.
 */
export function fillTable(tbody, rows, empty, message) {
  const head = tbody.closest("table").tHead;
  const labels = head ? Array.from(head.rows[0].cells, (c) => c.textContent) : [];
  for (const tr of rows) Array.from(tr.cells).forEach((td, i) => { if (labels[i]) td.dataset.label = labels[i]; });
  tbody.replaceChildren(...rows);
  if (empty) {
    empty.textContent = rows.length ? "" : message;
    empty.hidden = rows.length > 0;
  }
}
