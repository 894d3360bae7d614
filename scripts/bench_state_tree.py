#!/usr/bin/env python3
"""CPU cost of one block's state-tree update (chain/state_tree.py), outside any node.

Builds a tree of --keys random 21-byte keys (the size of an account key) with 40-byte values in memory,
then times `StateTree.apply` of --changes random existing keys getting new values, --repeat times, and
prints the best CPU time (process time, so a shared machine's other load counts less) per block and per
changed key, and the nodes written. A transfer changes two keys (sender and recipient).

    .venv/bin/python scripts/bench_state_tree.py --keys 100000 --changes 6000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.state_tree import MemoryNodeStore, StateTree  # noqa: E402


def bench(keys: int, changes: int, repeat: int, seed: int) -> str:
    rng = random.Random(seed)
    all_keys = [rng.randbytes(21) for _ in range(keys)]
    nodes = MemoryNodeStore()
    nodes.commit(StateTree.empty().apply({k: os.urandom(40) for k in all_keys}, 0))
    tree = nodes.tree(0)
    best, writes, changes = float("inf"), 0, min(changes, keys)
    for r in range(repeat):
        block = {k: os.urandom(40) for k in rng.sample(all_keys, changes)}
        t0 = time.process_time()
        update = tree.apply(block, r + 1)
        best = min(best, time.process_time() - t0)
        writes = len(update.writes)
    return (f"keys {keys:,}, changes {changes:,}: {best * 1000:.1f} ms CPU per block, "
            f"{best / changes * 1e6:.1f} us per changed key, {writes:,} nodes written")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100_000, help="entries in the tree")
    ap.add_argument("--changes", type=int, default=6_000, help="keys one block writes")
    ap.add_argument("--repeat", type=int, default=5, help="blocks timed (best is reported)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not (1 <= args.changes and 1 <= args.keys <= 10_000_000 and 1 <= args.repeat <= 100):
        ap.error("--keys 1..10,000,000, --changes >= 1, --repeat 1..100")
    print(bench(args.keys, args.changes, args.repeat, args.seed))


if __name__ == "__main__":
    main()
