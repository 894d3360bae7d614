"""Micro-bench: what LevelDB checksum verification costs on the store's reads (issue 13, item 5).

Builds a throwaway LevelDB shaped like the chain store (state entries of ~60 bytes, blocks of ~250 KB
and their certificates; compression off as in chain/store.py), then times, with and without
`verify_checksums`:
  - random state reads (account lookups, as block execution does), cold: the DB is reopened and each
    key read once, so each read pulls its block from the file and pays the CRC; and warm: the same keys
    read again. LevelDB reads its tables through mmap and does not put mmap'd blocks in its block cache,
    so a warm read pays the CRC again;
  - block + certificate reads (sync serving, verify-store), cold;
  - the start-up scan of every state entry (ChainStore._verify_state_tables);
  - end to end: executing a 5,000-tx block (signatures pre-verified, as validators do with mempool txs)
    on the store's state, through the real ChainStore (checked) and through the same store over a raw
    plyvel handle (unchecked).
OS page cache is warm in every case (the files were just written), so the figures isolate the CRC cost
from disk latency, which is the same with or without verification.

    .venv/bin/python scripts/bench_store_checksums.py [--accounts 1000000] [--blocks 200]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import plyvel

OPTIONS = {"compression": None, "paranoid_checks": True}


def build(path: Path, accounts: int, blocks: int) -> None:
    db = plyvel.DB(str(path), create_if_missing=True, **OPTIONS)
    rng = random.Random(1)
    wb = db.write_batch()
    for i in range(accounts):
        wb.put(b"sa" + rng.randbytes(20) + i.to_bytes(4, "big"), rng.randbytes(60))
        if i % 50_000 == 0:
            wb.write()
            wb = db.write_batch()
    wb.write()
    for h in range(blocks):
        db.put(b"b" + h.to_bytes(8, "big"), os.urandom(250_000))
        db.put(b"c" + h.to_bytes(8, "big"), os.urandom(3 * 100))
    db.compact_range()
    db.close()


def timed_reads(path: Path, keys: list[bytes], verify: bool) -> tuple[float, float]:
    """(cold, warm) seconds for reading every key once after opening, then once more."""
    db = plyvel.DB(str(path), **OPTIONS)
    try:
        out = []
        for _ in range(2):
            t0 = time.perf_counter()
            for k in keys:
                db.get(k, verify_checksums=verify)
            out.append(time.perf_counter() - t0)
        return out[0], out[1]
    finally:
        db.close()


def timed_scan(path: Path, verify: bool) -> tuple[float, int]:
    db = plyvel.DB(str(path), **OPTIONS)
    try:
        t0 = time.perf_counter()
        n = 0
        with db.iterator(prefix=b"s", verify_checksums=verify, fill_cache=False) as it:
            for _ in it:
                n += 1
        return time.perf_counter() - t0, n
    finally:
        db.close()


def execute_ab(txs_per_block: int = 5000, rounds: int = 3) -> None:
    """Execute one block of transfers between fresh accounts on a store's state, checked vs unchecked."""
    from chain import crypto
    from chain.genesis import Genesis
    from chain.execute import build_block, execute_block
    from chain.store import LEVELDB_OPTIONS, ChainStore
    from chain.tx import Transfer, TxBody

    keys = [crypto.PrivateKey(crypto.sha256(b"bench-%d" % i)) for i in range(txs_per_block)]
    val = crypto.PrivateKey(crypto.sha256(b"bench-validator"))
    genesis = Genesis(
        chain_id="bench", genesis_time_ms=1, network_ca_cert_pem="",
        validators=[{"name": "v", "pubkey": val.public_key.hex(), "power": 1}],
        assets=[{"id": "USD", "issuer": crypto.format_address(val.address), "decimals": 2}],
        balances=[{"address": crypto.format_address(k.address), "asset": "USD", "amount": 10**6} for k in keys],
    )
    txs = [TxBody("bench", k.public_key, 0, 10, Transfer(keys[(i * 7919 + 1) % len(keys)].address, "USD", 5), "")
           .sign(k) for i, k in enumerate(keys)]
    ids = {t.tx_id for t in txs}
    root = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    try:
        ChainStore.open(root / "c", genesis).close()
        db = plyvel.DB(str(root / "c"), **LEVELDB_OPTIONS)
        db.compact_range()
        db.close()
        for _ in range(rounds):
            for label in ("unchecked", "checked"):
                if label == "checked":
                    store = ChainStore.open(root / "c", genesis)
                else:  # the same store class over a raw handle: reads skip the CRC
                    store = ChainStore(plyvel.DB(str(root / "c"), **LEVELDB_OPTIONS), genesis)  # type: ignore[arg-type]
                    store._recover_head()
                try:
                    st = store.state()
                    block, _, _ = build_block(st, txs, height=1, time_ms=2, proposer=val.address,
                                              max_txs=len(txs), verified=ids)
                    store._head_state = None  # a fresh state: every account read goes to LevelDB again
                    t0 = time.perf_counter()
                    execute_block(store.state(), block, verified=ids)
                    print(f"execute {len(txs)}-tx block, {label:9s}: {(time.perf_counter() - t0) * 1000:.0f} ms")
                finally:
                    store.close()
    finally:
        shutil.rmtree(root)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--reads", type=int, default=20_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ldb-"))
    try:
        path = root / "db"
        t0 = time.perf_counter()
        build(path, args.accounts, args.blocks)
        size = sum(p.stat().st_size for p in path.iterdir())
        print(f"built {args.accounts} state entries + {args.blocks} blocks of 250 KB in "
              f"{time.perf_counter() - t0:.1f} s ({size / 1e6:.0f} MB)")
        db = plyvel.DB(str(path), **OPTIONS)
        with db.iterator(prefix=b"s", include_value=False) as it:
            state_keys = [k for k in it]
        db.close()
        sample = random.Random(2).sample(state_keys, min(args.reads, len(state_keys)))
        block_keys = [p + h.to_bytes(8, "big") for h in range(args.blocks) for p in (b"b", b"c")]
        for label, keys in (("state get", sample), ("block+cert get", block_keys)):
            for _ in range(2):  # second round: files in the OS page cache for both settings
                off = timed_reads(path, keys, False)
                on = timed_reads(path, keys, True)
            for i, when in enumerate(("cold", "warm")):
                print(f"{label:15s} {when} x{len(keys)}: off {off[i] * 1e6 / len(keys):7.1f} us/read, "
                      f"on {on[i] * 1e6 / len(keys):7.1f} us/read ({(on[i] / off[i] - 1) * 100:+.0f} %)")
        for _ in range(2):
            off, n = timed_scan(path, False)
            on, _ = timed_scan(path, True)
        print(f"start-up state scan of {n} entries: off {off:.2f} s, on {on:.2f} s")
    finally:
        shutil.rmtree(root)
    execute_ab()


if __name__ == "__main__":
    main()
