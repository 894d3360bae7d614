"""Consensus WAL damage against a real node process (issue 13, item 5).

Power loss on some filesystems leaves a file's tail as zeros (the size was updated, the data never
reached the disk). The old framing read a zeroed header as a valid empty record (CRC-32 of nothing with
seed 0 is 0), the entry decoder then failed, and the node died with a raw DecodeError traceback, which
pushes an operator toward deleting the WAL. Now:
- zeros to the end of the file are a torn tail: cut off, the node resumes and keeps committing;
- damage followed by more records, or a record that verifies but does not decode, stops the start with
  one line that names the double-sign risk and the safe remedy, and a non-zero exit code.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from consensus.wal import frame
from node.localnet import LocalNet

pytestmark = pytest.mark.integration

BASE_PORT = 29330


def _wal(net: LocalNet) -> Path:
    return net.nodes[0].home / "data" / "consensus.wal"


def _log_since(net: LocalNet, offset: int) -> str:
    return net.nodes[0].log_path.read_text(errors="replace")[offset:]


def _start_and_wait_exit(net: LocalNet, timeout: float) -> int | None:
    """Start node 0; its exit code, or None if it committed a new block instead of exiting."""
    before = net.height(0)
    net.start(0)
    proc = net.nodes[0].proc
    assert proc is not None and before is None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (code := proc.poll()) is not None:
            return code
        time.sleep(0.1)
    return proc.poll()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> LocalNet:
    """One validator that has run a few heights, then was stopped: its WAL holds the current height."""
    net = LocalNet.provision(tmp_path_factory.mktemp("wal"), validators=1, base_port=BASE_PORT, demo_accounts=1)
    with net.running(height=2):
        pass
    assert _wal(net).stat().st_size > 0
    return net


def test_zero_filled_tail_is_cut_and_the_node_keeps_committing(net: LocalNet) -> None:
    wal = _wal(net)
    with open(wal, "ab") as fh:
        fh.write(bytes(4096))  # what ext4/XFS can leave after power loss: size updated, data never written
    mark = len(net.nodes[0].log_path.read_text(errors="replace"))
    net.start(0)
    try:
        start_height = net.wait_for(lambda: net.height(0), 30, "node answering after a zero-filled WAL tail")
        net.wait_height(start_height + 2, timeout=30)
    finally:
        net.stop(0)
    log = _log_since(net, mark)
    assert "Traceback" not in log and "DecodeError" not in log
    assert not wal.read_bytes().endswith(bytes(64)), "the zero tail was cut off"


def test_damage_before_the_last_record_is_refused_with_the_safe_remedy(net: LocalNet) -> None:
    wal = _wal(net)
    original = wal.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01  # inside some record in the middle: records follow it
    wal.write_bytes(bytes(data))
    mark = len(net.nodes[0].log_path.read_text(errors="replace"))
    try:
        code = _start_and_wait_exit(net, timeout=30)
    finally:
        net.stop(0)
        wal.write_bytes(original)
    assert code is not None and code != 0, "node started on a damaged WAL"
    log = _log_since(net, mark)
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, log[-2000:]
    line = errors[0]
    assert "consensus WAL" in line and "damaged" in line
    assert "double sign" in line and "restore --replace" in line and "resync" in line


def test_record_that_verifies_but_does_not_decode_is_refused_with_the_safe_remedy(net: LocalNet) -> None:
    wal = _wal(net)
    original = wal.read_bytes()
    with open(wal, "ab") as fh:
        fh.write(frame(b"\xc1"))  # framing intact, body is not msgpack (0xc1 is never used)
    mark = len(net.nodes[0].log_path.read_text(errors="replace"))
    try:
        code = _start_and_wait_exit(net, timeout=30)
    finally:
        net.stop(0)
        wal.write_bytes(original)
    assert code is not None and code != 0
    log = _log_since(net, mark)
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, log[-2000:]
    assert "consensus WAL" in errors[0] and "does not decode" in errors[0] and "double sign" in errors[0]
