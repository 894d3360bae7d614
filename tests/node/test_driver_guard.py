"""The driver's start-up scan for its own precommits (CometBFT's double_sign_check_height), on a real store."""

from __future__ import annotations

from pathlib import Path

from consensus.signer import GuardedSigner, MemorySignerState
from consensus.wal import FileWAL
from node.clock import Clock
from node.config import ConsensusSection
from node.driver import ConsensusDriver
from node.mempool import Mempool
from tests.node.test_api_harness import VALIDATOR_KEYS, make_node


def driver_for(tmp_path: Path, validator: int, state: MemorySignerState) -> ConsensusDriver:
    node = make_node(tmp_path / "node")
    for _ in range(5):
        node.commit_block(signers=3)  # validators 0, 1 and 2 precommit every block; 3 never does
    return ConsensusDriver(
        chain_id=node.genesis.chain_id,
        signer=GuardedSigner(VALIDATOR_KEYS[validator], state),
        store=node.store,
        mempool=Mempool(node.store.state(), max_txs=100, max_bytes=1 << 20, max_per_account=10),
        wal=FileWAL(tmp_path / "wal"),
        settings=ConsensusSection(),
        broadcast=lambda msg: None,
        on_commit=lambda block, state, cert: None,
        on_halt=lambda reason: None,
        clock=Clock(),
    )


def test_own_precommits_unknown_to_the_signer_state_raise_the_floor(tmp_path: Path) -> None:
    driver = driver_for(tmp_path, 2, MemorySignerState())
    driver.guard_from_recent_blocks(10)
    assert driver.signer.floor == 6, "it may have signed at the height after its last precommit"


def test_a_state_that_knows_its_signatures_is_left_alone(tmp_path: Path) -> None:
    state = MemorySignerState()
    driver = driver_for(tmp_path, 2, state)
    driver.signer.sign_vote(driver.chain_id, 2, 6, 0, None)  # PRECOMMIT nil at height 6: newer than any block
    driver.guard_from_recent_blocks(10)
    assert driver.signer.floor == 0


def test_no_own_precommit_or_no_scan_means_no_floor(tmp_path: Path) -> None:
    never_signed = driver_for(tmp_path / "a", 3, MemorySignerState())
    never_signed.guard_from_recent_blocks(10)
    assert never_signed.signer.floor == 0
    unscanned = driver_for(tmp_path / "b", 2, MemorySignerState())
    unscanned.guard_from_recent_blocks(0)
    assert unscanned.signer.floor == 0
