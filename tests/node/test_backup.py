"""node.backup on real LevelDB stores and a real unix control socket: backup, restore, and refusals."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from chain import crypto
from chain.execute import build_block
from chain.store import ChainStore
from chain.tx import Transfer, TxBody
from node.backup import CONTROL_SOCKET, MANIFEST, BackupError, Manifest, backup_home, restore_home, start_control_server
from node.config import NodeConfig
from node.provision import init_home, make_genesis

PASS = "backup-test-passphrase"
ALICE = crypto.PrivateKey(bytes([7]) * 32)
BOB = crypto.PrivateKey(bytes([8]) * 32)


def _make_home(tmp_path: Path) -> tuple[Path, NodeConfig]:
    """A node home as `paynet-node init` + the operator's copies of genesis and certificate make it."""
    home = tmp_path / "home"
    pk = init_home(home, name="v0", passphrase=PASS)
    genesis = make_genesis(
        chain_id="paynet-backup-test", genesis_time_ms=1_700_000_000_000, validators=[("v0", pk, 1)],
        ca_cert_pem=b"", assets=[("USD", BOB.address, 2)], balances=[(ALICE.address, "USD", 1_000_000)],
    )
    genesis.save(home / "genesis.json")
    (home / "node.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    config = NodeConfig.load(home)
    (home / "data").mkdir()
    (home / "data" / "consensus.wal").write_bytes(b"old votes")  # must never travel in a backup
    return home, config


def _grow(store: ChainStore, blocks: int) -> None:
    for _ in range(blocks):
        state = store.state()
        nonce = state.account(ALICE.address).nonce
        txs = [
            TxBody(store.chain_id, ALICE.public_key, nonce + i, 1_000_000, Transfer(BOB.address, "USD", 1 + i), "").sign(ALICE)
            for i in range(3)
        ]
        proposer = crypto.address_of(store.genesis.validators[0].pubkey_bytes)
        block, new, rejected = build_block(
            state, txs, height=state.height + 1, time_ms=state.time_ms + 1000, proposer=proposer, max_txs=100
        )
        assert not rejected
        store.commit(block, b"cert:" + block.hash, new)


def _open(config: NodeConfig) -> ChainStore:
    from chain.genesis import Genesis

    return ChainStore.open(config.path("data") / "chain", Genesis.load(config.home / "genesis.json"))


def test_offline_backup_and_restore_round_trip(tmp_path: Path) -> None:
    home, config = _make_home(tmp_path)
    with _open(config) as store:
        _grow(store, 5)
        head = (store.head_height, store.head_hash.hex(), store.head_header.state_root.hex())
    manifest = backup_home(home, tmp_path / "bk")
    assert (manifest.height, manifest.block_hash, manifest.state_root) == head
    assert not manifest.includes_key
    chain_files = {f"data/chain/{p.name}" for p in (tmp_path / "bk" / "data" / "chain").iterdir()}
    assert "data/chain/CURRENT" in chain_files  # every file is hashed, the store's too
    assert set(manifest.files) == {"config.toml", "genesis.json", "node.crt"} | chain_files
    assert Manifest.load(tmp_path / "bk" / MANIFEST) == manifest
    assert not list((tmp_path / "bk").rglob("*.wal")) and not (tmp_path / "bk" / "node_key.json").exists()

    restored = tmp_path / "restored"
    restore_home(tmp_path / "bk", restored)
    assert stat.S_IMODE(restored.stat().st_mode) == 0o700
    assert not (restored / "data" / "consensus.wal").exists()
    assert not (restored / "node_key.json").exists()
    rconfig = NodeConfig.load(restored)
    with _open(rconfig) as store:
        assert (store.head_height, store.head_hash.hex(), store.head_header.state_root.hex()) == head
        assert store.state().account(BOB.address).balance("USD") == 5 * (1 + 2 + 3)


def test_include_key_copies_the_encrypted_keystore_unchanged(tmp_path: Path) -> None:
    home, config = _make_home(tmp_path)
    with _open(config):
        pass
    manifest = backup_home(home, tmp_path / "bk", include_key=True)
    assert manifest.includes_key
    original = (home / "node_key.json").read_bytes()
    assert (tmp_path / "bk" / "node_key.json").read_bytes() == original
    assert PASS.encode() not in original
    restore_home(tmp_path / "bk", tmp_path / "r")
    key_file = tmp_path / "r" / "node_key.json"
    assert key_file.read_bytes() == original and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_restore_refusals(tmp_path: Path) -> None:
    home, config = _make_home(tmp_path)
    with _open(config) as store:
        _grow(store, 2)
    backup_home(home, tmp_path / "bk")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        restore_home(tmp_path / "bk", busy)
    with pytest.raises(BackupError, match="not a paynet backup"):
        restore_home(tmp_path / "home", tmp_path / "r0")

    # a manifest that names another head than the store holds
    doc = json.loads((tmp_path / "bk" / MANIFEST).read_text())
    doc["height"] = 1
    (tmp_path / "bk" / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BackupError, match="does not match the manifest"):
        restore_home(tmp_path / "bk", tmp_path / "r1")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r1.restoring").exists()

    # a tampered file
    doc["height"] = 2
    (tmp_path / "bk" / MANIFEST).write_text(json.dumps(doc))
    (tmp_path / "bk" / "genesis.json").write_text((tmp_path / "bk" / "genesis.json").read_text() + " ")
    with pytest.raises(BackupError, match="genesis.json is missing or does not match"):
        restore_home(tmp_path / "bk", tmp_path / "r2")


def test_backup_refuses_non_empty_destination_and_missing_store(tmp_path: Path) -> None:
    home, _ = _make_home(tmp_path)
    with pytest.raises(BackupError, match="no chain store"):
        backup_home(home, tmp_path / "bk")
    assert not (tmp_path / "bk").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(BackupError, match="not an empty directory"):
        backup_home(home, tmp_path / "full")


def test_locked_store_without_control_socket_is_an_error(tmp_path: Path) -> None:
    home, config = _make_home(tmp_path)
    with _open(config):  # this process holds the LevelDB lock, like a node without the control socket
        with pytest.raises(BackupError, match="locked by a running node"):
            backup_home(home, tmp_path / "bk")
    assert not (tmp_path / "bk").exists()


async def test_backup_of_a_running_store_through_the_control_socket(tmp_path: Path) -> None:
    """The store keeps committing on the event loop while a backup is taken through the socket."""
    home, config = _make_home(tmp_path)
    store = _open(config)
    node = SimpleNamespace(config=config, store=store)
    server = await start_control_server(node)  # type: ignore[arg-type]
    sock = home / CONTROL_SOCKET
    try:
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
        stop = threading.Event()

        async def commit_forever() -> None:
            while not stop.is_set():
                _grow(store, 1)
                await asyncio.sleep(0)

        committer = asyncio.get_running_loop().create_task(commit_forever())
        try:
            manifests = [await asyncio.to_thread(backup_home, home, tmp_path / f"bk{i}") for i in range(3)]
        finally:
            stop.set()
            await committer
        heights = [m.height for m in manifests]
        assert heights == sorted(heights) and heights[-1] > heights[0] > 0  # taken while the chain grew
        for i, m in enumerate(manifests):
            assert bytes.fromhex(m.block_hash) == store.get_header(m.height).hash  # type: ignore[union-attr]
            assert bytes.fromhex(m.state_root) == store.get_header(m.height).state_root  # type: ignore[union-attr]
            restore_home(tmp_path / f"bk{i}", tmp_path / f"r{i}")

        # the line protocol refuses what it does not know
        def ask(line: bytes) -> bytes:
            import socket as s

            c = s.socket(s.AF_UNIX, s.SOCK_STREAM)
            c.connect(os.fspath(sock))
            c.sendall(line)
            data = c.makefile("rb").readline()
            c.close()
            return data

        assert (await asyncio.to_thread(ask, b"shutdown\n")).startswith(b"error unknown command")
        assert (await asyncio.to_thread(ask, b"backup relative/dir\n")).startswith(b"error backup needs an absolute")
    finally:
        server.close()
        store.close()
    assert not sock.exists()
