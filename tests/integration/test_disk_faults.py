"""Disk faults on a real validator (issue 14): each gives a clear error or a safe recovery, never a fork.

One 4-validator network; validator 3 suffers, one after another:
  1. a full disk while running (test-only write cap PAYNET_UNSAFE_DISK_CAP_TEST_BYTES, chain/diskcap.py):
     it must halt (it cannot persist what it would vote on), sign nothing past that height, stay halted
     across a restart, and after `paynet-node unhalt` catch up on the honest chain;
  2. a torn WAL tail (what a crash mid-append leaves): it starts, cuts the tail, and follows the chain;
  3. a WAL damaged in the middle (data after the damage): it refuses to start with the WAL message;
  4. a corrupted and a truncated LevelDB table file: it refuses to start with the "store is corrupt"
     message (or, for the truncated file, recovers to a prefix of the honest chain);
then, recovered as the remedies say (resync from peers with signer_state.json kept), it catches up
and every node holds the same chain. The other three keep committing throughout (f = 1).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import plyvel
import pytest

from chain.diskcap import DISK_CAP_ENV, used_bytes
from node.localnet import LocalNet, _env
from tests.integration.netutil import chain_fingerprint

pytestmark = pytest.mark.integration

VICTIM = 3
BASE_PORT = 31100


def _data(net: LocalNet) -> Path:
    return net.nodes[VICTIM].home / "data"


def _log_from(net: LocalNet, offset: int) -> str:
    return net.nodes[VICTIM].log_path.read_bytes()[offset:].decode(errors="replace")


def _log_size(net: LocalNet) -> int:
    path = net.nodes[VICTIM].log_path
    return path.stat().st_size if path.exists() else 0


def _refuses(net: LocalNet, message: str) -> str:
    """Start the victim and wait for it to exit on its own with `message` in its log; returns the new log."""
    offset = _log_size(net)
    net.start(VICTIM)
    net.wait_for(lambda: net.exited(VICTIM), 30, "validator 3 to refuse to start")
    assert net.nodes[VICTIM].proc is not None and net.nodes[VICTIM].proc.returncode != 0
    net.nodes[VICTIM].proc = None
    text = _log_from(net, offset)
    assert message in text, text[-2000:]
    return text


def _status(net: LocalNet, i: int) -> dict:
    return net.get(i, "/status")


def _last_signed(net: LocalNet, validator: int) -> int:
    me = net.nodes[validator].pubkey.hex()
    return next(v["last_signed_height"] or 0 for v in net.get(0, "/validators")["validators"] if v["pubkey"] == me)


def _same_chain_as_honest(net: LocalNet) -> int:
    """Every node, the victim included, holds the same blocks up to the lowest head; returns that height."""
    top = min(net.height(i) or 0 for i in range(4))
    ref = chain_fingerprint(net, 0, top)
    for i in range(1, 4):
        assert chain_fingerprint(net, i, top) == ref, f"node {i} differs from node 0 below height {top}"
    return top


def _catch_up(net: LocalNet) -> None:
    target = max(net.height(i) or 0 for i in range(3)) + 2
    net.wait_height(target, timeout=60)
    _same_chain_as_honest(net)


def _make_tables(data: Path) -> list[Path]:
    """Have LevelDB write its log into table files (.ldb), as a longer-running node would have."""
    db = plyvel.DB(str(data / "chain"))
    db.compact_range()
    db.close()
    tables = sorted((data / "chain").glob("*.ldb"), key=lambda p: p.stat().st_size, reverse=True)
    assert tables, "no LevelDB table files to damage"
    return tables


def _full_disk(net: LocalNet) -> None:
    net.stop(VICTIM)
    used = used_bytes(_data(net))
    net.start(VICTIM, {DISK_CAP_ENV: str(used + 40_000)})
    st = net.wait_for(lambda: (s := _status(net, VICTIM)).get("halted") and s, 90, "validator 3 to halt on a full disk")
    reason = st["halt_reason"]
    assert "No space left on device" in reason, reason
    halted_at = int(st["height"])
    net.wait_height(halted_at + 3, nodes=[0, 1, 2], timeout=60)  # the others go on without it
    assert net.height(VICTIM) == halted_at and _last_signed(net, VICTIM) <= halted_at + 1
    assert "CRITICAL" in net.nodes[VICTIM].log_path.read_text() and DISK_CAP_ENV in net.nodes[VICTIM].log_path.read_text()
    # the disk is "fixed" (no cap) but the node restarts halted until an operator clears it
    net.stop(VICTIM)
    net.start(VICTIM)
    net.wait_for(lambda: _status(net, VICTIM)["halted"], 30, "validator 3 to restart halted")
    assert net.height(VICTIM) == halted_at
    net.stop(VICTIM)
    out = subprocess.run([sys.executable, "-m", "node.cli", "unhalt", "--home", str(net.nodes[VICTIM].home), "--yes"],
                         env=_env(), capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    net.start(VICTIM)
    _catch_up(net)


def _torn_wal_tail(net: LocalNet) -> None:
    net.kill(VICTIM)
    wal = _data(net) / "consensus.wal"
    size = wal.stat().st_size
    assert size > 20
    with open(wal, "r+b") as fh:
        fh.truncate(size - 5)  # the last record loses its end, as a crash mid-append leaves it
    offset = _log_size(net)
    net.start(VICTIM)
    _catch_up(net)
    assert "torn tail" in _log_from(net, offset)


def _damaged_wal(net: LocalNet) -> None:
    net.stop(VICTIM)
    wal = _data(net) / "consensus.wal"
    data = bytearray(wal.read_bytes())
    assert len(data) > 40
    data[10:14] = b"\xde\xad\xbe\xef"  # inside the first record's header, with records after it
    wal.write_bytes(bytes(data))
    _refuses(net, "consensus WAL")
    _refuses(net, "is damaged")


def _resync(net: LocalNet, why: str) -> None:
    """The documented remedy: move data/ aside (signer_state.json stays beside the key) and sync from peers."""
    aside = net.nodes[VICTIM].home / f"data.{why}"
    shutil.move(str(_data(net)), str(aside))
    net.start(VICTIM)
    _catch_up(net)


def _corrupt_tables(net: LocalNet) -> None:
    net.stop(VICTIM)
    data = _data(net)
    tables = _make_tables(data)
    pristine = data.parent / "chain.pristine"
    shutil.copytree(data / "chain", pristine)
    for t in tables:  # one flipped byte in every 4 KiB block of every table: a failing disk
        raw = bytearray(t.read_bytes())
        for pos in range(100, len(raw) - 64, 4096):
            raw[pos] ^= 0xFF
        t.write_bytes(bytes(raw))
    _refuses(net, "store is corrupt")

    # a truncated table file: refuse, or run on a state that is a prefix of the honest chain
    shutil.rmtree(data / "chain")
    shutil.copytree(pristine, data / "chain")
    biggest = _make_tables(data)[0]
    with open(biggest, "r+b") as fh:
        fh.truncate(biggest.stat().st_size // 2)
    offset = _log_size(net)
    net.start(VICTIM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and net.exited(VICTIM) is None and net.height(VICTIM) is None:
        time.sleep(0.2)
    if net.exited(VICTIM) is not None:
        net.nodes[VICTIM].proc = None
        text = _log_from(net, offset)
        assert "store is corrupt" in text and "truncated or unreadable" in text, text[-2000:]
    else:
        _same_chain_as_honest(net)
        net.stop(VICTIM)
    shutil.rmtree(pristine)


@pytest.mark.timeout(400)
def test_disk_faults_give_a_clear_error_or_a_safe_recovery(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("disknet")
    net = LocalNet.provision(root, validators=4, base_port=BASE_PORT, demo_accounts=1)
    try:
        with net.running(height=2):
            _full_disk(net)
            _torn_wal_tail(net)
            _damaged_wal(net)
            _resync(net, "wal")
            _corrupt_tables(net)
            _resync(net, "store")
            top = _same_chain_as_honest(net)
            assert top >= 8
            for i in range(4):
                assert not _status(net, i)["halted"], f"node {i} halted"
    finally:
        net.stop_all()
