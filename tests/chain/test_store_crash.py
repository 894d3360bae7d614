"""Crash consistency: SIGKILL a process that is committing blocks, reopen, re-execute everything.

A real child process (crash_child.py) commits blocks in a loop into one LevelDB; the parent kills
it with SIGKILL at a random moment after it has committed at least one block, several times in a
row on the same store. After each kill the store must open, keep every commit the child saw
return (and at most one more), and its head state must equal an independent re-execution of all
stored blocks from genesis: same state root, and the same value for every state key. The child keeps
only a few state-tree versions, so it is also killed in the middle of pruning: after reopening, the tree's
root is the head header's and every kept height still proves every key.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chain.execute import apply_block, genesis_state
from chain.state_tree import verify_state_proof
from chain.store import ChainStore, StateVersionPruned
from ledger_testkit import fake_certificate, make_genesis

CHILD = Path(__file__).with_name("crash_child.py")
ITERATIONS = 12
VERSIONS_KEPT = 4
GENESIS = make_genesis()


def _lines(proc: subprocess.Popen[str], out: "queue.Queue[str | None]") -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line.strip())
    out.put(None)


def _run_until_killed(db: Path, seed: int, kill_after_s: float) -> int:
    """Start the child, wait (with a deadline) for its first commit, kill it later; return last durable height."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(seed), str(VERSIONS_KEPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(proc, lines), daemon=True).start()
    durable = -1
    first_commit_deadline = time.monotonic() + 20
    kill_at = float("inf")
    try:
        while time.monotonic() < kill_at:
            wait_until = first_commit_deadline if durable < 0 else kill_at
            timeout = wait_until - time.monotonic()
            if timeout <= 0:
                if durable < 0:
                    raise AssertionError("child committed nothing within 20 s")
                break
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"child exited early with {proc.wait()}: {proc.stderr.read()}")  # type: ignore[union-attr]
            if line.startswith("committed "):
                if durable < 0:
                    kill_at = time.monotonic() + kill_after_s
                durable = int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    # lines printed before the kill but not yet read are still durable commits
    while True:
        try:
            line = lines.get(timeout=2)
        except queue.Empty:
            break
        if line is None:
            break
        if line.startswith("committed "):
            durable = int(line.split()[1])
    return durable


def _verify_by_replay(store: ChainStore, verified: set[bytes]) -> None:
    """Re-execute every stored block from genesis and compare with what the store holds."""
    state = genesis_state(GENESIS)
    assert store.get_block(0).hash == state.block_hash  # type: ignore[union-attr]
    keys = set(state.changes())
    for height in range(1, store.head_height + 1):
        block = store.get_block(height)
        assert block is not None, f"block {height} missing below the head"
        state, _ = apply_block(state, block, verified=verified)
        verified.update(block.tx_ids)
        keys.update(state.changes())
        assert store.get_certificate(height) == fake_certificate(block)
    assert state.block_hash == store.head_hash
    head = store.state()
    assert head.state_root == state.state_root
    stored = dict(store.state_items())
    assert set(stored) == {k for k in keys if state.get(k) is not None}
    for key in keys:
        assert stored.get(key) == state.get(key), key.hex()
    assert head.tree.root_hash == store.head_header.state_root
    oldest = max(0, store.head_height + 1 - VERSIONS_KEPT)
    for height in range(oldest, store.head_height + 1):
        root = store.get_header(height).state_root  # type: ignore[union-attr]
        for key in keys:
            value, proof = store.state_proof(key, height)
            verify_state_proof(root, key, value, proof)
    if oldest > 1:
        with pytest.raises(StateVersionPruned):
            store.state_proof(next(iter(keys)), oldest - 2)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_sigkill_during_commits_leaves_a_consistent_replayable_store(tmp_path: Path) -> None:
    db = tmp_path / "chain"
    rng = random.Random(20240601)
    verified: set[bytes] = set()
    last_head = 0
    started = time.monotonic()
    for i in range(ITERATIONS):
        durable = _run_until_killed(db, seed=i, kill_after_s=rng.uniform(0.0, 0.25))
        assert durable >= 1
        with ChainStore.open(db, GENESIS, state_versions_kept=VERSIONS_KEPT) as store:
            assert durable <= store.head_height <= durable + 1, (durable, store.head_height)
            assert store.head_height > last_head
            last_head = store.head_height
            _verify_by_replay(store, verified)
    assert time.monotonic() - started < 55
