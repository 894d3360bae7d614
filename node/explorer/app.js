// paynet block explorer: plain JS, no build step, served by the node itself.
// Every value from the API is inserted with textContent (never innerHTML): memos and asset ids are
// user-controlled. Routes are hash-based (#/block/12, #/tx/<id>, #/account/<addr>), so any page can
// be linked and reloaded without server-side routing.
"use strict";

const POLL_MS = 1000;
const HEX64 = /^(0x)?[0-9a-fA-F]{64}$/;
const ADDRESS = /^pn[0-9a-fA-F]{40}$/;
const HEIGHT = /^[0-9]{1,19}$/;

let assetDecimals = {};
let pollTimer = null;
let routeToken = 0; // bumps on navigation so a late response for an old page is dropped

const $ = (id) => document.getElementById(id);

async function api(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await resp.json(); } catch (_) { /* non-JSON error */ }
  return { status: resp.status, body };
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function link(href, text, attrs) {
  const a = el("a", text, attrs);
  a.href = href;
  return a;
}

function short(hex) {
  return hex && hex.length > 16 ? hex.slice(0, 10) + "…" + hex.slice(-6) : hex || "";
}

function formatAmount(amount, asset) {
  if (amount === null || amount === undefined) return "";
  const d = assetDecimals[asset];
  if (!d) return `${amount} ${asset || ""}`.trim();
  const s = String(amount).padStart(d + 1, "0");
  return `${s.slice(0, -d)}.${s.slice(-d)} ${asset}`;
}

function formatTime(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z") : "";
}

function row(cells, attrs) {
  const tr = el("tr", null, attrs);
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function fields(dl, pairs) {
  dl.replaceChildren();
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === "") continue;
    const dt = el("dt", k);
    const dd = el("dd", null, { "data-field": k });
    if (v instanceof Node) dd.appendChild(v); else dd.textContent = String(v);
    dl.append(dt, dd);
  }
}

function addrLink(a) { return a ? link(`#/account/${a}`, short(a), { class: "mono", title: a }) : ""; }
function txLink(id) { return link(`#/tx/${id}`, short(id), { class: "mono", title: id }); }
function blockLink(h) { return link(`#/block/${h}`, String(h)); }

function showView(name) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  document.body.dataset.view = name;
}

function notice(text) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

function showError(message) {
  $("error-message").textContent = message;
  showView("error");
}

// -- live header and home page ---------------------------------------------------------------------

async function refreshStatus() {
  const { status, body } = await api("/status");
  if (status !== 200) return;
  $("status-chain").textContent = body.chain_id;
  $("status-height").textContent = `height ${body.height}`;
  $("status-height").dataset.height = String(body.height);
  $("status-sync").textContent = body.sync_state;
  $("status-peers").textContent = `peers ${body.peer_count}`;
}

async function refreshHome(token) {
  const { status, body } = await api("/blocks?limit=20");
  if (status !== 200 || token !== routeToken) return;
  const blocks = $("latest-blocks");
  blocks.replaceChildren(...body.blocks.map((b) =>
    row([blockLink(b.height), link(`#/block/${b.hash}`, short(b.hash), { class: "mono", title: b.hash }),
         b.tx_count, b.proposer_name || short(b.proposer), formatTime(b.time_ms)],
        { "data-height": String(b.height), "data-hash": b.hash })));
  const txs = [];
  for (const b of body.blocks) for (const t of b.txs) if (txs.length < 20) txs.push(t);
  $("latest-txs").replaceChildren(...txs.map((t) =>
    row([txLink(t.tx_id), t.kind, addrLink(t.sender_address), addrLink(t.to), formatAmount(t.amount, t.asset)],
        { "data-tx-id": t.tx_id })));
}

async function refreshValidators(token) {
  const { status, body } = await api("/validators");
  if (status !== 200 || token !== routeToken) return;
  $("validators").replaceChildren(...body.validators.map((v) => {
    const tr = row([v.name || short(v.pubkey), addrLink(v.address), v.power,
                    v.last_signed_height === null ? "—" : v.last_signed_height],
                   { "data-pubkey": v.pubkey, "data-name": v.name || "" });
    tr.lastChild.classList.add("last-signed");
    return tr;
  }));
}

async function loadAssets() {
  const { status, body } = await api("/assets");
  if (status === 200) for (const a of body.assets) assetDecimals[a.id] = a.decimals;
}

// -- pages -------------------------------------------------------------------------------------------

async function showBlock(ref, token) {
  const { status, body } = await api(`/blocks/${encodeURIComponent(ref)}`);
  if (token !== routeToken) return;
  if (status !== 200) return showError(body && body.error ? body.error.message : `block ${ref} not found`);
  $("block-height").textContent = String(body.height);
  $("block-height").dataset.height = String(body.height);
  const h = body.header;
  fields($("block-fields"), [
    ["hash", body.hash], ["time", formatTime(h.time_ms)], ["proposer", addrLink(body.proposer_address)],
    ["proposer name", body.proposer_name], ["previous", body.height > 0 ? link(`#/block/${body.height - 1}`, h.prev_hash) : h.prev_hash],
    ["tx root", h.tx_root], ["state root", h.state_root], ["validators hash", h.validators_hash],
    ["chain id", h.chain_id],
  ]);
  $("block-tx-count").textContent = String(body.tx_count);
  $("block-txs").replaceChildren(...body.txs.map((t, i) =>
    row([body.tx_offset + i, txLink(body.tx_ids[body.tx_offset + i]), t.kind, addrLink(t.sender_address),
         addrLink(t.to), formatAmount(t.amount, t.asset)], { "data-tx-id": body.tx_ids[body.tx_offset + i] })));
  const cert = body.certificate_decoded;
  const sigs = cert && Array.isArray(cert.precommits) ? cert.precommits : [];
  $("block-signers").replaceChildren(...sigs.map((p) =>
    row([short(p[0]), short(p[1])], { "data-pubkey": p[0] })));
  showView("block");
}

async function showTx(id, token) {
  const { status, body } = await api(`/txs/${encodeURIComponent(id)}`);
  if (token !== routeToken) return;
  if (status !== 200) return showError(body && body.error ? body.error.message : `transaction ${id} not found`);
  $("tx-status").textContent = body.status;
  $("tx-status").dataset.status = body.status;
  $("tx-reason").textContent = body.code ? `${body.code}: ${body.message || ""}` : "";
  const t = body.tx || {};
  fields($("tx-fields"), [
    ["tx id", body.tx_id], ["kind", t.kind], ["from", addrLink(t.sender_address)], ["nonce", t.nonce],
    ["to", addrLink(t.to)], ["amount", formatAmount(t.amount, t.asset)], ["memo", t.memo],
    ["expiry height", t.expiry_height], ["issuer", addrLink(t.issuer)], ["validator", t.pubkey], ["power", t.power],
  ]);
  const r = body.receipt;
  $("tx-receipt").hidden = !r;
  if (r) {
    const signers = r.certificate_decoded && Array.isArray(r.certificate_decoded.precommits)
      ? r.certificate_decoded.precommits.length : "?";
    fields($("tx-receipt-fields"), [
      ["block", blockLink(r.height)], ["index", r.index], ["block hash", r.block_hash],
      ["tx root", r.header.tx_root], ["merkle proof", `${r.proof.length} hashes`], ["certificate signers", signers],
    ]);
  }
  showView("tx");
  if (body.status === "pending") schedule(() => showTx(id, token), token); // watch it become final
}

async function showAccount(address, token) {
  const { status, body } = await api(`/accounts/${encodeURIComponent(address)}`);
  if (token !== routeToken) return;
  if (status !== 200) return showError(body && body.error ? body.error.message : `account ${address} not found`);
  $("account-address").textContent = body.address;
  $("account-nonce").textContent = String(body.nonce);
  $("account-balances").replaceChildren(...Object.entries(body.balances).map(([asset, amount]) =>
    row([asset, formatAmount(amount, asset)], { "data-asset": asset, "data-amount": String(amount) })));
  $("account-txs").replaceChildren(...(body.recent_txs || []).map((t) =>
    row([txLink(t.tx_id), blockLink(t.height)], { "data-tx-id": t.tx_id })));
  showView("account");
}

// -- routing, search, polling --------------------------------------------------------------------------

function schedule(fn, token) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(() => { if (token === routeToken) fn(); }, POLL_MS);
}

async function pollHome(token) {
  if (token !== routeToken) return;
  try {
    await Promise.all([refreshStatus(), refreshHome(token), refreshValidators(token)]);
    notice("");
  } catch (e) {
    notice("node unreachable, retrying…");
  }
  schedule(() => pollHome(token), token);
}

async function route() {
  const token = ++routeToken;
  clearTimeout(pollTimer);
  const parts = (location.hash || "#/").replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [page, arg] = parts;
  try {
    if (!page) { showView("home"); await pollHome(token); return; }
    refreshStatus().catch(() => {});
    if (page === "block" && arg) return await showBlock(arg, token);
    if (page === "tx" && arg) return await showTx(arg, token);
    if (page === "account" && arg) return await showAccount(arg, token);
    if (page === "validators") { showView("home"); return await pollHome(token); }
    showError(`unknown page ${location.hash}`);
  } catch (e) {
    notice("node unreachable");
  }
}

async function search(text) {
  const q = text.trim();
  if (!q) return;
  if (HEIGHT.test(q)) { location.hash = `#/block/${q}`; return; }
  if (ADDRESS.test(q)) { location.hash = `#/account/${q.toLowerCase()}`; return; }
  if (HEX64.test(q)) {
    const id = q.replace(/^0x/, "").toLowerCase();
    const tx = await api(`/txs/${id}`);
    if (tx.status === 200) { location.hash = `#/tx/${id}`; return; }
    const blk = await api(`/blocks/${id}`);
    if (blk.status === 200) { location.hash = `#/block/${id}`; return; }
    showError(`no transaction or block ${id}`);
    return;
  }
  showError(`not a block height, hash, tx id or address: ${q}`);
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    search($("search").value);
  });
  window.addEventListener("hashchange", route);
  loadAssets().finally(route);
});
