"""Child process for the crash-consistency test: commits blocks to a store until it is killed.

Usage: python crash_child.py DB_PATH SEED [STATE_VERSIONS_KEPT]
Prints "head N" once the store is open and "committed N" after each commit returns, so the
parent knows which heights are durable. Block sizes vary so kills land in every phase: building,
inside the WriteBatch, between commits.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chain.execute import build_block  # noqa: E402
from chain.store import ChainStore  # noqa: E402
from chain.tx import Transfer  # noqa: E402
from ledger_testkit import USERS, fake_certificate, make_genesis, proposer_of, tx  # noqa: E402


def main(db_path: str, seed: int, versions_kept: int) -> None:
    rng = random.Random(seed)
    store = ChainStore.open(db_path, make_genesis(), state_versions_kept=versions_kept)
    print(f"head {store.head_height}", flush=True)
    while True:
        state = store.state()
        height = state.height + 1
        nonces = {u.address: state.account(u.address).nonce for u in USERS}
        txs = []
        for _ in range(rng.randint(0, 120)):
            sender, receiver = rng.sample(USERS, 2)
            txs.append(tx(sender, nonces[sender.address], Transfer(receiver.address, "USD", rng.randint(1, 50))))
            nonces[sender.address] += 1
        block, new_state, rejected = build_block(
            state, txs, height=height, time_ms=state.time_ms + 1, proposer=proposer_of(height), max_txs=1000
        )
        assert not rejected, rejected[:1]
        store.commit(block, fake_certificate(block), new_state)
        print(f"committed {height}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1000)
