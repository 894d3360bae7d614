"""Ledger benchmark: signature verification, tx decoding, block execution and LevelDB commits.

Usage: python scripts/bench_ledger.py [--blocks 5] [--txs 10000] [--accounts 2000]

Prints the machine, then txs/s for each stage a validator pays per transaction:
Ed25519 verification (once per tx, cached by id afterwards), canonical SignedTx decode,
block decode, execution with pre-verified signatures, and apply+commit of full transfer blocks
into a fresh LevelDB (one synced WriteBatch per block), with and without signature checks.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.block import Block  # noqa: E402
from chain.crypto import PrivateKey, format_address  # noqa: E402
from chain.genesis import Genesis  # noqa: E402
from chain.execute import apply_block, build_block, execute_txs  # noqa: E402
from chain.store import ChainStore  # noqa: E402
from chain.tx import SignedTx, Transfer, TxBody  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_world(accounts: int) -> tuple[Genesis, list[PrivateKey], PrivateKey]:
    keys = [PrivateKey(i.to_bytes(4, "big") * 8) for i in range(1, accounts + 1)]
    validator = PrivateKey(b"\xee" * 32)
    genesis = Genesis(
        chain_id="bench",
        genesis_time_ms=0,
        validators=[{"name": "v0", "pubkey": validator.public_key.hex(), "power": 1}],
        assets=[{"id": "USD", "issuer": format_address(keys[0].address), "decimals": 2}],
        balances=[{"address": format_address(k.address), "asset": "USD", "amount": 10**12} for k in keys],
    )
    return genesis, keys, validator


def make_transfers(keys: list[PrivateKey], count: int, nonces: dict[bytes, int], rng: random.Random) -> list[SignedTx]:
    out = []
    for _ in range(count):
        sender, receiver = rng.sample(keys, 2)
        n = nonces.get(sender.address, 0)
        nonces[sender.address] = n + 1
        body = TxBody("bench", sender.public_key, n, 10**9, Transfer(receiver.address, "USD", rng.randint(1, 1000)))
        out.append(body.sign(sender))
    return out


def report(label: str, count: int, seconds: float) -> None:
    print(f"{label:<40}{count / seconds:>10,.0f} tx/s  ({count:,} in {seconds * 1000:,.0f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--txs", type=int, default=10_000, help="transfers per block")
    ap.add_argument("--accounts", type=int, default=2_000)
    args = ap.parse_args()

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}")
    rng = random.Random(1)
    genesis, keys, validator = make_world(args.accounts)
    t0 = time.perf_counter()
    nonces: dict[bytes, int] = {}
    blocks_txs = [make_transfers(keys, args.txs, nonces, rng) for _ in range(args.blocks)]
    print(f"setup: signed {args.blocks * args.txs:,} transfers from {args.accounts:,} accounts in "
          f"{time.perf_counter() - t0:.1f} s\n")

    sample = blocks_txs[0]
    t0 = time.perf_counter()
    assert all(t.verify_signature() for t in sample)
    report("Ed25519 verify (PyNaCl)", len(sample), time.perf_counter() - t0)

    raws = [t.encode() for t in sample]
    t0 = time.perf_counter()
    for raw in raws:
        SignedTx.decode(raw)
    report("SignedTx.decode (canonical)", len(raws), time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        store = ChainStore.open(Path(tmp) / "db", genesis)
        # proposer builds every block first (its own cost is execution, measured below)
        state = store.state()
        blocks = []
        built_state = state
        for i, txs in enumerate(blocks_txs):
            block, built_state, rejected = build_block(
                built_state, txs, height=i + 1, time_ms=i + 1, proposer=validator.address,
                max_txs=args.txs, verified=_All(),
            )
            assert not rejected and len(block.txs) == args.txs
            blocks.append(block)

        encoded = [b.encode() for b in blocks]
        t0 = time.perf_counter()
        decoded = [Block.decode(raw) for raw in encoded]
        report(f"Block.decode ({args.txs:,}-tx blocks)", sum(len(b.txs) for b in decoded), time.perf_counter() - t0)

        t0 = time.perf_counter()
        execute_txs(state, blocks_txs[0], 1, verified=_All())
        report("execute_txs, sigs pre-verified", args.txs, time.perf_counter() - t0)

        t_apply = t_commit = 0.0
        for block in decoded:
            verified = set(block.tx_ids)  # the mempool verified these at admission
            t0 = time.perf_counter()
            new_state, _ = apply_block(store.state(), block, verified=verified)
            t1 = time.perf_counter()
            store.commit(block, b"certificate", new_state)
            t2 = time.perf_counter()
            t_apply += t1 - t0
            t_commit += t2 - t1
        n = args.blocks * args.txs
        report(f"apply_block ({args.blocks} x {args.txs:,}), pre-verified", n, t_apply)
        report("ChainStore.commit (synced batch)", n, t_commit)
        report("apply + commit, pre-verified", n, t_apply + t_commit)
        store.close()

        # a follower that has never seen the txs: verification inside apply_block
        store = ChainStore.open(Path(tmp) / "db2", genesis)
        t0 = time.perf_counter()
        for block in decoded[:2]:
            new_state, _ = apply_block(store.state(), block)
            store.commit(block, b"certificate", new_state)
        report("apply + commit, verifying sigs", 2 * args.txs, time.perf_counter() - t0)
        store.close()


class _All:
    def __contains__(self, item: object) -> bool:
        return True


if __name__ == "__main__":
    main()
