// paynet block explorer: plain JS modules, no build step, served by the node itself under a strict CSP
// (script-src 'self', no inline styles). Routes are hash-based, so any page can be linked and reloaded:
//   #/  #/payments  #/blocks  #/block/<height|hash>  #/tx/<id>  #/account/<addr>?asset=USD&rows=50
//   #/governance  #/assets  #/search/<text>      (lists take ?before=<cursor> for older pages)
// The endpoints it reads are in docs/api.md ("Explorer endpoints"); what it polls and how often is in
// docs/explorer.md.
"use strict";

import {
  $, el, link, short, formatUnits, formatAmount, formatTime, seconds, timeCell, row, fields, idLink,
  addrLink, txLink, blockLink, hashLink, fillTable,
} from "./dom.js";
import { lineChart, heatStrip } from "./charts.js";
import { checkFinalTx } from "./verify.js";

// Polling: ~1.5 requests/s on the home page, far below the API's 100/s per client IP.
const STATUS_MS = 3000;
const FAST_MS = 2000; // payments feed, newest blocks
const SLOW_MS = 10000; // charts, validator activity
const PENDING_MS = 1000; // a pending tx's page, until it is final

const FEED_ROWS = 20;
const HOME_BLOCKS = 10;
const PAGE_ROWS = 25;
const STATEMENT_ROWS = 50;
const ACTIVITY_BLOCKS = 100;
const SERIES = "window=3600&step=10";

let assets = {}; // id -> {decimals, supply, issuer}
let routeToken = 0; // bumps on navigation: a loop or late response of an old page stops there
let backoffUntil = 0; // set from Retry-After when the node answers 429

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "";
    this.candidates = err.candidates || [];
  }
}

// Integers past 2^53 (amounts, supplies) become BigInt from their source text instead of losing digits.
const exactInts = (key, value, context) =>
  typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)
    ? BigInt(context.source) : value;

async function api(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = JSON.parse(await resp.text(), exactInts); } catch (_) { /* a non-JSON error page */ }
  if (resp.status === 429) backoffUntil = Date.now() + 1000 * Number(resp.headers.get("Retry-After") || 1);
  if (resp.status !== 200) throw new ApiError(resp.status, body);
  return body;
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

/** Run `fn` now and every `ms` while `alive()`; a hidden tab skips its turns, a 429 pushes the next one back. */
async function every(ms, alive, fn) {
  if (!alive()) return;
  if (!document.hidden) {
    try {
      await fn();
      notice("");
    } catch (e) {
      notice(e instanceof ApiError ? (e.status === 429 ? "the node asks us to slow down; retrying…" : e.message)
        : "node unreachable, retrying…");
    }
  }
  if (alive()) setTimeout(() => every(ms, alive, fn), Math.max(ms, backoffUntil - Date.now()));
}

function showView(name) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
  document.body.dataset.view = name;
}

function showError(title, message, candidates = []) {
  $("error-title").textContent = title;
  $("error-message").textContent = message;
  $("error-candidates").replaceChildren(...candidates.map((c) => {
    const li = el("li", `${c.kind} `);
    li.appendChild(idLink(`#/${c.kind}/${c.id}`, c.id, c.id));
    return li;
  }));
  showView("error");
}

const decimalsOf = (asset) => (assets[asset] ? assets[asset].decimals : 0);

async function loadAssets() {
  const body = await api("/assets");
  assets = Object.fromEntries(body.assets.map((a) => [a.id, a]));
  return body.assets;
}

/** Point a pager's two links at the newest page and the next older page (hidden when there is none). */
function pager(name, newestHref, olderHref) {
  for (const [id, href] of [[`${name}-newest`, newestHref], [`${name}-older`, olderHref]]) {
    $(id).hidden = !href;
    if (href) $(id).href = href;
  }
}

function withBefore(path, before) {
  return before ? `${path}${path.includes("?") ? "&" : "?"}before=${encodeURIComponent(before)}` : path;
}

/** One page of a newest-first list into `<name>-rows`, with the pager: the shared shape of every list page. */
async function listPage(name, path, key, before, hashBase, rowFn, emptyMessage, token) {
  const body = await api(withBefore(path, before));
  if (token !== routeToken) return null;
  fillTable($(`${name}-rows`), body[key].map(rowFn), $(`${name}-empty`), emptyMessage(body));
  pager(name, before ? hashBase : null, body.next_before !== null ? withBefore(hashBase, String(body.next_before)) : null);
  return body;
}

// -- header --------------------------------------------------------------------------------------------

async function refreshStatus() {
  const s = await api("/status");
  $("status-chain").textContent = s.chain_id;
  $("status-height").textContent = `height ${s.height}`;
  $("status-height").dataset.height = String(s.height);
  $("status-sync").textContent = s.halted ? "halted" : s.sync_state;
  $("status-peers").textContent = `peers ${s.peer_count}`;
}

// -- rows ----------------------------------------------------------------------------------------------

function paymentRow(t) {
  const asset = t.kind === "transfer" ? t.asset : `${t.asset || ""} (${t.kind})`.trim();
  return row([timeCell(t.time_ms), [formatUnits(t.amount, t.decimals), "num"], asset, addrLink(t.from),
              addrLink(t.to), [t.memo, "memo"], txLink(t.tx_id)],
             { "data-tx-id": t.tx_id, "data-height": String(t.height) });
}

function blockRow(b) {
  return row([blockLink(b.height), hashLink(b.hash), [b.tx_count, "num"], b.proposer_name || short(b.proposer),
              timeCell(b.time_ms)], { "data-height": String(b.height), "data-hash": b.hash });
}

function governanceChange(t) {
  if (t.kind === "gov_approve") return `approve proposal ${short(t.proposal_id)}`;
  const a = t.action;
  if (a === "validator_power") {
    return t.power === 0 ? `remove validator ${short(t.pubkey)}` : `validator ${short(t.pubkey)} power ${t.power}`;
  }
  if (a === "replace_validator_key") return `validator key ${short(t.pubkey)} → ${short(t.new_pubkey)}`;
  if (a === "asset_create") return `create ${t.asset} (${t.decimals} decimals), issuer ${short(t.issuer)}`;
  if (a === "set_issuer") return `${t.asset} issuer → ${short(t.issuer)}`;
  if (a === "set_members") return `members ${(t.members || []).map((m) => m.name).join(", ")}, threshold ${t.threshold}`;
  if (a === "schedule_upgrade") return `protocol version ${t.version} from height ${t.upgrade_height}`;
  return t.kind;
}

function governanceRow(t) {
  return row([timeCell(t.time_ms), blockLink(t.height), t.kind, governanceChange(t), addrLink(t.from), txLink(t.tx_id)],
             { "data-tx-id": t.tx_id, "data-kind": t.kind });
}

const DIRECTION = { in: "received", out: "sent", self: "to self" };

function statementRow(r, asset, decimals) {
  const sign = r.delta > 0 ? "+" : r.delta < 0 ? "−" : "";
  return row([timeCell(r.time_ms), DIRECTION[r.direction] || r.direction, r.counterparty ? addrLink(r.counterparty) : "—",
              [`${sign}${formatUnits(r.amount, decimals)}`, "num"], [formatUnits(r.balance_after, decimals), "num"],
              [r.memo, "memo"], txLink(r.tx_id)],
             { "data-tx-id": r.tx_id, "data-direction": r.direction, "data-amount": String(r.amount),
               "data-balance-after": String(r.balance_after) });
}

// -- home ------------------------------------------------------------------------------------------------

async function refreshFeed(token) {
  const body = await api(`/txs?limit=${FEED_ROWS}`);
  if (token !== routeToken) return;
  $("latest-txs").dataset.headHeight = String(body.head_height);
  fillTable($("latest-txs"), body.txs.map(paymentRow), $("feed-empty"), body.complete
    ? "No payments on this chain yet. New ones appear here within a few seconds of being committed."
    : "No payments in the newest blocks scanned; older ones are under “All payments”.");
  $("home-older-payments").href = !body.txs.length && body.next_before ? withBefore("#/payments", body.next_before) : "#/payments";
}

async function refreshHomeBlocks(token) {
  const body = await api(`/blocks?limit=${HOME_BLOCKS}`);
  if (token !== routeToken) return;
  fillTable($("latest-blocks"), body.blocks.map(blockRow));
  $("home-older-blocks").href = body.next_before !== null ? withBefore("#/blocks", String(body.next_before)) : "#/blocks";
}

const CHARTS = [
  // [svg id, value of a SeriesPoint, unit on the axis, text of the latest value]
  ["chart-tps", (p) => p.tps, "/s", (v) => `${v.toFixed(1)} tx/s`],
  ["chart-interval", (p) => (p.block_interval_ms === null ? null : p.block_interval_ms / 1000), " s", (v) => `${v.toFixed(2)} s`],
  ["chart-finality", (p) => (p.finality_ms === null ? null : p.finality_ms / 1000), " s", (v) => `${v.toFixed(2)} s`],
  ["chart-mempool", (p) => p.mempool, "", (v) => `${v} txs`],
];

async function refreshCharts(token) {
  const s = await api(`/stats/series?${SERIES}`);
  if (token !== routeToken) return;
  const range = { fromMs: s.now_ms - s.window_s * 1000, toMs: s.now_ms };
  for (const [id, value, unit, label] of CHARTS) {
    const latest = lineChart($(id), s.points.map((p) => [p.t_ms, value(p)]), { ...range, unit });
    $(`${id}-now`).textContent = latest === null ? "" : label(latest);
  }
}

async function refreshActivity(token) {
  const a = await api(`/validators/activity?last=${ACTIVITY_BLOCKS}`);
  if (token !== routeToken) return;
  $("activity-range").textContent = a.heights.length ? `(blocks ${a.from_height}–${a.to_height})` : "";
  fillTable($("validators"), a.validators.map((v) => {
    const last = v.signed.lastIndexOf(true);
    const strip = heatStrip(v.signed.map((s, i) => ({ height: a.heights[i], state: s ? "signed" : "missed" })),
                            `${v.missed} missed of the last ${v.signed.length} blocks`);
    // A validator's address usually holds nothing, so it has no account page: the address is in the title.
    return row([el("span", v.name || short(v.pubkey), { title: `${v.address}\n${v.pubkey}` }), [v.power, "num"],
                [v.missed, "num missed"], [v.proposed, "num"], last < 0 ? "—" : blockLink(a.heights[last]), strip],
               { "data-pubkey": v.pubkey, "data-name": v.name || "", "data-missed": String(v.missed) });
  }));
}

function showHome(token) {
  showView("home");
  const alive = () => token === routeToken;
  every(FAST_MS, alive, () => Promise.all([refreshFeed(token), refreshHomeBlocks(token)]));
  every(SLOW_MS, alive, () => Promise.all([refreshCharts(token), refreshActivity(token)]));
}

// -- list pages ----------------------------------------------------------------------------------------------

function showPayments(params, token) {
  showView("payments");
  const before = params.get("before");
  const load = () => listPage("payments", `/txs?limit=${PAGE_ROWS}`, "txs", before, "#/payments", paymentRow,
    (b) => (b.complete ? "No payments." : "No payments in the blocks scanned for this page: try “Older”."), token);
  // The newest page follows the chain; an older page is a fixed slice of history.
  return before ? load() : every(FAST_MS, () => token === routeToken, load);
}

function showBlocks(params, token) {
  showView("blocks");
  const before = params.get("before");
  const load = async () => {
    const body = await listPage("blocks", `/blocks?limit=${PAGE_ROWS}`, "blocks", before, "#/blocks", blockRow,
                                () => "No blocks.", token);
    if (!body || !body.blocks.length) return;
    $("blocks-range").textContent = `heights ${body.blocks[body.blocks.length - 1].height}–${body.blocks[0].height} of ${body.head_height}`;
  };
  return before ? load() : every(FAST_MS, () => token === routeToken, load);
}

function proposalRow(p) {
  const who = p.approvals.map((a) => a.name || short(a.admin_key)).join(", ");
  const closed = p.closed_height === null ? `expires ${p.expiry_height}` : blockLink(p.closed_height);
  return row([[short(p.id), "mono"], p.status, governanceChange({ kind: "gov_propose", ...p.action }),
              `${p.approvals.length}/${p.threshold}: ${who}`, blockLink(p.created_height), closed],
             { "data-proposal-id": p.id, "data-status": p.status });
}

async function refreshProposals(token) {
  const [state, list] = await Promise.all([api("/governance/state"), api("/governance/proposals?limit=50")]);
  if (token !== routeToken) return;
  const pr = state.protocol;
  $("gov-members").textContent = `${state.threshold} of ${state.members.length} members must approve a change: ` +
    state.members.map((m) => m.name).join(", ") + `. Protocol version ${pr.active_version}` +
    (pr.scheduled_version ? `; version ${pr.scheduled_version} from height ${pr.activation_height}.` : ".");
  fillTable($("proposal-rows"), list.proposals.map(proposalRow));
}

async function showGovernance(params, token) {
  showView("governance");
  await refreshProposals(token);
  await listPage("governance", `/governance?limit=${PAGE_ROWS}`, "txs", params.get("before"), "#/governance",
                 governanceRow, (b) => (b.complete ? "No governance transactions on this chain yet."
                   : "None in the blocks scanned for this page: try “Older”."), token);
}

async function showAssets(token) {
  showView("assets");
  const list = await loadAssets();
  if (token !== routeToken) return;
  fillTable($("assets-rows"), list.map((a) =>
    row([a.id, [a.decimals, "num"], [formatUnits(a.supply, a.decimals), "num"], addrLink(a.issuer)], { "data-asset": a.id })));
}

// -- block, tx, account ------------------------------------------------------------------------------------

async function showBlock(ref, token) {
  const body = await api(`/blocks/${encodeURIComponent(ref)}`);
  if (token !== routeToken) return;
  $("block-height").textContent = String(body.height);
  $("block-height").dataset.height = String(body.height);
  const h = body.header;
  fields($("block-fields"), [
    ["hash", idLink(`#/block/${body.hash}`, body.hash, body.hash)], ["time", formatTime(h.time_ms)],
    ["proposer", addrLink(body.proposer_address)], ["proposer name", body.proposer_name],
    ["previous", body.height > 0 ? link(`#/block/${body.height - 1}`, h.prev_hash) : h.prev_hash],
    ["tx root", h.tx_root], ["state root", h.state_root], ["validators hash", h.validators_hash], ["chain id", h.chain_id],
  ]);
  $("block-tx-count").textContent = String(body.tx_count);
  fillTable($("block-txs"), body.txs.map((t, i) => {
    const id = body.tx_ids[body.tx_offset + i];
    return row([body.tx_offset + i, txLink(id), t.kind, addrLink(t.sender_address), addrLink(t.to),
                [formatAmount(t.amount, t.asset, decimalsOf(t.asset)), "num"]], { "data-tx-id": id });
  }));
  const cert = body.certificate_decoded;
  const sigs = cert && Array.isArray(cert.precommits) ? cert.precommits : [];
  fillTable($("block-signers"), sigs.map((p) => row([short(p[0]), short(p[1])], { "data-pubkey": p[0] })));
  showView("block");
}

function verifiedPanel(tx, r) {
  const rc = tx.receipt;
  const panel = $("tx-verified");
  panel.hidden = false;
  if (!r.available) {
    panel.dataset.verified = "unavailable";
    $("tx-verified-title").textContent = "Not checked by this page";
    $("tx-verified-checks").replaceChildren();
    $("tx-verified-note").textContent = `The node says this transaction is final in block ${rc.height}. This page is not ` +
      "served over https or from localhost, so the browser offers it no SHA-256 or Ed25519 to check that itself; " +
      "check the receipt with paynet-wallet.";
    return;
  }
  const quorum = r.bad === 0 && r.signed_power >= r.quorum_power;
  const checks = [
    [r.tx_hash, `The transaction's signed bytes hash (SHA-256) to its id ${short(tx.tx_id)}.`],
    [r.tx_signature, `They carry a valid Ed25519 signature by the sender's key ${short(tx.tx.sender)}.`],
    [r.header, `Block ${rc.height}'s header bytes hash to its block hash ${short(rc.block_hash)}.`],
    [r.inclusion, rc.proof.length
      ? `A Merkle proof of ${rc.proof.length} hashes links the tx id to that header's tx root ` +
        `(transaction ${rc.index + 1} of ${rc.tx_count}).`
      : "The tx id alone makes that header's tx root (the block's only transaction)."],
    [quorum, `${r.signers} validators with ${r.signed_power} of ${r.total_power} voting power signed that block hash ` +
             `(Ed25519 precommits of its commit certificate; ${r.quorum_power} needed)` +
             (r.bad ? `; ${r.bad} signatures did NOT verify` : "") +
             (r.unknown ? `; ${r.unknown} from keys outside the current set, not counted` : "") + "."],
  ];
  const ok = checks.every(([pass]) => pass) && r.height === rc.height;
  panel.dataset.verified = String(ok);
  $("tx-verified-title").textContent = ok
    ? `Verified by this page: included in block ${rc.height}, whose header is signed by validators with ` +
      `${r.signed_power} of ${r.total_power} voting power`
    : "NOT verified: a check below failed";
  $("tx-verified-checks").replaceChildren(...checks.map(([pass, text]) =>
    el("li", `${pass ? "✓" : "✗"} ${text}`, { class: pass ? "pass" : "fail" })),
    ...r.errors.map((e) => el("li", `✗ ${e}`, { class: "fail" })));
  $("tx-verified-note").textContent = "Checked in your browser from the node's receipt, against the validator set " +
    "this node lists now (GET /validators): that set was not checked against the genesis file or governance " +
    "history, and the fields shown below are the node's decoding of the signed bytes. For a check that trusts no " +
    "node, verify the receipt with paynet-wallet and a genesis file you trust.";
}

async function showTx(id, token) {
  const tx = await api(`/txs/${encodeURIComponent(id)}`);
  if (token !== routeToken) return;
  if (tx.tx_id !== id) { location.replace(`#/tx/${tx.tx_id}`); return; } // a prefix in the URL: name the tx
  $("tx-status").textContent = tx.status;
  $("tx-status").dataset.status = tx.status;
  $("tx-reason").textContent = tx.code ? `${tx.code}: ${tx.message || ""}` : "";
  const settled = $("tx-settled");
  settled.textContent = tx.status === "final" ? `settled ${formatTime(tx.time_ms)} in block ${tx.height}` +
    (tx.finality_ms !== null && tx.finality_ms !== undefined ? `, ${seconds(tx.finality_ms)} after this node received it` : "") : "";
  if (tx.status === "final") settled.dataset.timeMs = String(tx.time_ms);
  const t = tx.tx || {};
  fields($("tx-fields"), [
    ["tx id", idLink(`#/tx/${tx.tx_id}`, tx.tx_id, tx.tx_id)], ["kind", t.kind], ["from", addrLink(t.sender_address)],
    ["nonce", t.nonce], ["to", addrLink(t.to)], ["amount", formatAmount(t.amount, t.asset, decimalsOf(t.asset))],
    ["memo", t.memo], ["expiry height", t.expiry_height], ["issuer", addrLink(t.issuer)], ["validator", t.pubkey],
    ["power", t.power],
    ["settlement time", tx.status === "final" ? formatTime(tx.time_ms) : null],
    ["first seen here", tx.first_seen_ms ? formatTime(tx.first_seen_ms) : null],
  ]);
  const rc = tx.receipt;
  $("tx-receipt").hidden = !rc;
  $("tx-verified").hidden = true;
  showView("tx");
  if (!rc) {
    if (tx.status === "pending") setTimeout(() => token === routeToken && showTx(id, token), PENDING_MS);
    return;
  }
  fields($("tx-receipt-fields"), [
    ["block", blockLink(rc.height)], ["index", rc.index], ["block hash", rc.block_hash], ["tx root", rc.header.tx_root],
    ["merkle proof", `${rc.proof.length} hashes`],
    ["certificate signers", rc.certificate_decoded && Array.isArray(rc.certificate_decoded.precommits)
      ? rc.certificate_decoded.precommits.length : "?"],
  ]);
  const validators = await api("/validators");
  const result = await checkFinalTx(tx, validators);
  if (token === routeToken) verifiedPanel(tx, result);
}

async function showAccount(address, params, token) {
  const acct = await api(`/accounts/${encodeURIComponent(address)}`);
  if (token !== routeToken) return;
  const a = acct.address;
  $("account-address").replaceChildren(idLink(`#/account/${a}`, a, a));
  $("account-nonce").textContent = String(acct.nonce);
  const held = Object.keys(acct.balances);
  const asset = params.get("asset") || held[0] || Object.keys(assets)[0] || "";
  fillTable($("account-balances"), Object.entries(acct.balances).map(([id, amount]) =>
    row([id, [formatAmount(amount, id, decimalsOf(id)), "num"],
         id === asset ? "statement below" : link(`#/account/${a}?asset=${encodeURIComponent(id)}`, "statement")],
        { "data-asset": id, "data-amount": String(amount) })));
  showView("account");
  if (!asset) return;
  const before = params.get("before");
  const rows = Math.min(Math.max(Number(params.get("rows")) || STATEMENT_ROWS, 1), 200); // ?rows= page size
  const query = `asset=${encodeURIComponent(asset)}`;
  const base = `#/account/${a}?${query}${params.has("rows") ? `&rows=${rows}` : ""}`;
  const st = await api(withBefore(`/accounts/${a}/statement?${query}&limit=${rows}`, before));
  if (token !== routeToken) return;
  $("statement-asset").textContent = `(${st.asset}, balance ${formatUnits(st.balance, st.decimals)})`;
  fillTable($("statement-rows"), st.rows.map((r) => statementRow(r, st.asset, st.decimals)), $("statement-empty"),
            st.complete ? `No ${st.asset} transactions.` : "None in the entries scanned for this page: try “Older”.");
  pager("statement", before ? base : null, st.next_before ? withBefore(base, st.next_before) : null);
  $("statement-csv").href = withBefore(`/accounts/${a}/statement.csv?${query}`, before);
  $("statement-csv").setAttribute("download", `${a}-${st.asset}.csv`);
}

// -- search -----------------------------------------------------------------------------------------------

async function showSearch(q, token) {
  try {
    const hit = await api(`/search?q=${encodeURIComponent(q)}`);
    if (token === routeToken) location.replace(`#/${hit.kind}/${encodeURIComponent(hit.id)}`);
  } catch (e) {
    if (!(e instanceof ApiError) || token !== routeToken) throw e;
    if (e.code === "ambiguous_prefix") {
      showError("Several matches", `“${q}” is the start of more than one id; pick one or type more digits:`, e.candidates);
    } else if (e.code === "no_match") {
      showError("No match", `Nothing on this chain matches “${q}”.`);
    } else {
      showError("Cannot search for that", `“${q}”: ${e.message}`);
    }
  }
}

// -- routing ------------------------------------------------------------------------------------------------

function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  const cut = h.indexOf("?");
  const path = cut < 0 ? h : h.slice(0, cut);
  const parts = path.split("/").map(decodeURIComponent);
  return { page: parts[0] || "", arg: parts.slice(1).join("/"), params: new URLSearchParams(cut < 0 ? "" : h.slice(cut + 1)) };
}

const NOT_FOUND = { tx_not_found: "Transaction not found", block_not_found: "Block not found",
                    account_not_found: "Account not found", asset_not_found: "Asset not found" };

async function route() {
  const token = ++routeToken;
  const { page, arg, params } = parseHash();
  // The search box shows the search being looked at, and is empty everywhere else.
  $("search").value = page === "search" ? arg : "";
  notice("");
  try {
    if (!page || page === "validators") return showHome(token);
    if (page === "payments") return await showPayments(params, token);
    if (page === "blocks") return await showBlocks(params, token);
    if (page === "governance") return await showGovernance(params, token);
    if (page === "assets") return await showAssets(token);
    if (page === "block" && arg) return await showBlock(arg, token);
    if (page === "tx" && arg) return await showTx(arg, token);
    if (page === "account" && arg) return await showAccount(arg, params, token);
    if (page === "search" && arg) return await showSearch(arg, token);
    showError("Not found", `There is no page ${location.hash}.`);
  } catch (e) {
    if (token !== routeToken) return;
    if (!(e instanceof ApiError)) showError("Node unreachable", "The node did not answer; reload to try again.");
    else showError(NOT_FOUND[e.code] || "Error", e.message, e.candidates);
  }
}

function search(text) {
  const q = text.trim();
  if (!q) return;
  const target = `#/search/${encodeURIComponent(q)}`;
  if (location.hash === target) route(); // the same search again: no hashchange event
  else location.hash = target;
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  search($("search").value);
});
window.addEventListener("hashchange", route);
every(STATUS_MS, () => true, refreshStatus);
loadAssets().catch(() => {}).finally(route);
