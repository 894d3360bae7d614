// What the tx page checks itself, in the browser, from the receipt JSON (docs/api.md "Receipts"):
// the header bytes hash to the block hash, the Merkle audit path links the tx id to the header's tx root,
// and the commit certificate's Ed25519 signatures. Only a small canonical-msgpack subset is needed:
// headers and certificates are arrays of unsigned ints, strings and byte strings.
"use strict";

const VOTE_DOMAIN = new TextEncoder().encode("paynet/vote/v1");
const TX_DOMAIN = new TextEncoder().encode("paynet/tx/v1");
const SIGNATURE_TAIL = 2 + 64; // a SignedTx is [body, signature]: 0x92, the body, then bin8 (0xc4 0x40) + 64 bytes
const PRECOMMIT = 2;

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** Decode one canonical msgpack value (arrays, unsigned ints, nil, bools, str, bin). */
function unpack(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const take = (n) => { const b = bytes.subarray(at, at + n); if (b.length !== n) throw new Error("truncated"); at += n; return b; };
  const uint = (n) => { const v = n === 1 ? view.getUint8(at) : n === 2 ? view.getUint16(at) : n === 4 ? view.getUint32(at)
    : Number(view.getBigUint64(at)); at += n; return v; };
  const text = (n) => new TextDecoder().decode(take(n));
  const array = (n) => Array.from({ length: n }, value);
  function value() {
    const t = view.getUint8(at++);
    if (t <= 0x7f) return t;
    if (t >= 0x90 && t <= 0x9f) return array(t & 0x0f);
    if (t >= 0xa0 && t <= 0xbf) return text(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return take(uint(1));
      case 0xc5: return take(uint(2));
      case 0xc6: return take(uint(4));
      case 0xcc: return uint(1);
      case 0xcd: return uint(2);
      case 0xce: return uint(4);
      case 0xcf: return uint(8);
      case 0xd9: return text(uint(1));
      case 0xda: return text(uint(2));
      case 0xdc: return array(uint(2));
      case 0xdd: return array(uint(4));
      default: throw new Error(`unsupported msgpack type 0x${t.toString(16)}`);
    }
  }
  const v = value();
  if (at !== bytes.length) throw new Error("trailing bytes");
  return v;
}

function packUint(n) {
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0xcc, n);
  if (n < 0x10000) return Uint8Array.of(0xcd, n >> 8, n & 0xff);
  const b = new Uint8Array(9);
  const view = new DataView(b.buffer);
  if (n < 0x100000000) { view.setUint8(0, 0xce); view.setUint32(1, n); return b.subarray(0, 5); }
  view.setUint8(0, 0xcf); view.setBigUint64(1, BigInt(n));
  return b;
}

/** crypto.signing_message(domain, chain_id, payload). */
function signingMessage(domain, chainId, payload) {
  const cid = new TextEncoder().encode(chainId);
  return concat(Uint8Array.of(domain.length), domain, Uint8Array.of(cid.length), cid, payload);
}

/** consensus.messages.vote_sign_bytes(PRECOMMIT, height, round, block_hash) behind crypto.signing_message. */
function precommitMessage(chainId, height, round, blockHash) {
  const payload = concat(Uint8Array.of(0x94), packUint(PRECOMMIT), packUint(height), packUint(round),
                         Uint8Array.of(0xc4, blockHash.length), blockHash);
  return signingMessage(VOTE_DOMAIN, chainId, payload);
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** chain.merkle.verify_inclusion (RFC 9162 2.1.3.2). */
async function verifyInclusion(leaf, index, size, proof, root) {
  if (!(index >= 0 && index < size)) return false;
  let fn = index, sn = size - 1;
  let r = await sha256(concat(Uint8Array.of(0), leaf));
  for (const p of proof) {
    if (p.length !== 32 || sn === 0) return false;
    if (fn & 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      if (!(fn & 1)) while (fn && !(fn & 1)) { fn >>= 1; sn >>= 1; }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn >>= 1; sn >>= 1;
  }
  return sn === 0 && equal(r, root);
}

/** Ed25519 verification by the browser (WebCrypto); a browser without Ed25519 adds to `errors`. */
async function ed25519(pubkey, signature, message, errors) {
  try {
    const key = await crypto.subtle.importKey("raw", pubkey, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch (e) {
    errors.push(`Ed25519 not checked: ${e.message}`);
    return false;
  }
}

/** The signed body inside a SignedTx's canonical bytes, or null if they are not shaped [body, 64-byte sig]. */
function splitSignedTx(raw) {
  const tail = raw.length - SIGNATURE_TAIL;
  if (raw[0] !== 0x92 || tail < 2 || raw[tail] !== 0xc4 || raw[tail + 1] !== 64) return null;
  return { body: raw.subarray(1, tail), signature: raw.subarray(tail + 2) };
}

/**
 * Check a final tx (the GET /txs/{id} answer) against `validators` (the node's /validators answer).
 * Returns {available, tx_hash, tx_signature, header, inclusion, height, signers, signed_power, total_power,
 * quorum_power, bad, unknown, errors}. `available` is false when this page cannot hash at all
 * (crypto.subtle exists only in secure contexts: https or localhost).
 */
export async function checkFinalTx(tx, validators) {
  const receipt = tx.receipt;
  const out = { available: Boolean(globalThis.crypto && crypto.subtle), tx_hash: false, tx_signature: false,
                header: false, inclusion: false, height: null, signers: 0, signed_power: 0, bad: 0, unknown: 0,
                total_power: validators.total_power, quorum_power: validators.quorum_power, errors: [] };
  if (!out.available) return out;
  const txId = hexToBytes(tx.tx_id);
  const headerRaw = hexToBytes(receipt.header_raw);
  const blockHash = hexToBytes(receipt.block_hash);
  out.header = equal(await sha256(headerRaw), blockHash);
  let header;
  try {
    header = unpack(headerRaw); // [version, chain_id, height, time_ms, prev_hash, tx_root, ...]
  } catch (e) {
    out.errors.push(`header bytes: ${e.message}`);
    return out;
  }
  const [, chainId, height, , , txRoot] = header;
  out.height = height;
  const signed = splitSignedTx(hexToBytes(tx.raw));
  if (signed) {
    out.tx_hash = equal(await sha256(signed.body), txId);
    out.tx_signature = await ed25519(hexToBytes(tx.tx.sender), signed.signature,
                                     signingMessage(TX_DOMAIN, chainId, signed.body), out.errors);
  }
  out.inclusion = await verifyInclusion(txId, receipt.index, receipt.tx_count, receipt.proof.map(hexToBytes), txRoot);
  if (!receipt.certificate) { out.errors.push("no commit certificate"); return out; }
  const [certHeight, round, certHash, precommits] = unpack(hexToBytes(receipt.certificate));
  if (certHeight !== height || !equal(certHash, blockHash)) {
    out.errors.push("the certificate is for another block");
    return out;
  }
  const power = new Map(validators.validators.map((v) => [v.pubkey, v.power]));
  const message = precommitMessage(chainId, height, round, blockHash);
  const seen = new Set();
  for (const [pk, sig] of precommits) {
    const pkHex = bytesToHex(pk);
    if (seen.has(pkHex)) continue;
    seen.add(pkHex);
    if (!power.has(pkHex)) { out.unknown += 1; continue; }
    if (await ed25519(pk, sig, message, out.errors)) {
      out.signers += 1;
      out.signed_power += power.get(pkHex);
    } else {
      out.bad += 1;
    }
  }
  return out;
}
