"""A real 4-validator network on 127.0.0.1: payments, crash and restart, re-sync, peer authentication.

Each node is its own `paynet-node run` process with its own LevelDB store, WAL and TLS identity.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from chain.genesis import Genesis
from network.peers import NetworkConfig, PeerManager
from network.pki import create_ca, issue_node_cert
from chain import crypto
from node.localnet import PASSPHRASE, LocalNet, demo_key
from node.provision import issue_cert
from tests.integration.netutil import balance, chain_fingerprint, submit, transfer, tx_status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("net4")
    with LocalNet.provision(root, validators=4, base_port=28000, demo_accounts=6).running(height=2) as net:
        yield net


def test_payments_submitted_to_any_node_become_final_on_all(net: LocalNet) -> None:
    # Each node gets payments from its own sender (a sender's nonces must reach a node in order).
    senders, receiver = [demo_key(k) for k in range(4)], demo_key(5)
    start = [balance(net, i, receiver.address) for i in range(4)]
    assert len(set(start)) == 1
    ids = [submit(net, i, transfer(senders[i], receiver.address, 100 + 10 * i + n, nonce=n)) for i in range(4) for n in range(3)]
    net.wait_for(
        lambda: all(tx_status(net, i, t) == "final" for i in range(4) for t in ids), 60, "all txs final on all nodes"
    )
    expected = start[0] + sum(100 + 10 * i + n for i in range(4) for n in range(3))
    assert [balance(net, i, receiver.address) for i in range(4)] == [expected] * 4
    # The same signed tx again, to another node, is the same payment, not a second one.
    again = submit(net, 2, transfer(senders[0], receiver.address, 100, nonce=0))
    assert again == ids[0]
    assert [balance(net, i, receiver.address) for i in range(4)] == [expected] * 4


def test_three_keep_committing_and_killed_node_catches_up(net: LocalNet) -> None:
    net.kill(3)
    h = max(net.height(i) or 0 for i in range(3))
    net.wait_height(h + 3, nodes=[0, 1, 2], timeout=60)
    key = demo_key(4)
    tx = submit(net, 0, transfer(key, demo_key(3).address, 77, nonce=0))
    net.wait_for(lambda: all(tx_status(net, i, tx) == "final" for i in range(3)), 60, "tx final on the three")
    net.start(3)
    target = max(net.height(i) or 0 for i in range(3))
    net.wait_height(target, nodes=[3], timeout=90)
    assert tx_status(net, 3, tx) == "final"
    assert chain_fingerprint(net, 3, target) == chain_fingerprint(net, 0, target)


def test_node_with_deleted_data_dir_resyncs(net: LocalNet) -> None:
    net.stop(2)
    shutil.rmtree(net.nodes[2].home / "data")
    target = max(net.height(i) or 0 for i in (0, 1, 3)) + 1
    net.wait_height(target, nodes=[0, 1, 3], timeout=60)
    net.start(2)
    net.wait_height(target, nodes=[2], timeout=90)
    assert chain_fingerprint(net, 2, target) == chain_fingerprint(net, 1, target)
    # and it takes part again: the network keeps committing with it
    net.wait_height(target + 2, timeout=60)


async def _try_link(net: LocalNet, seed: bytes, cert: bytes, ca: bytes) -> PeerManager:
    genesis = Genesis.load(net.root / "genesis.json")
    me = crypto.PrivateKey(seed)
    mgr = PeerManager(
        identity_seed=seed, cert_pem=cert, ca_cert_pem=ca, chain_id=genesis.chain_id, genesis_hash=genesis.hash,
        allowed_keys=lambda: {v.pubkey_bytes for v in genesis.validators} | {me.public_key},
        config=NetworkConfig(listen_port=0, peers=(("127.0.0.1", net.nodes[0].p2p_port),), dial_backoff_base=0.05,
                             dial_backoff_cap=0.2),
    )
    await mgr.start()
    return mgr


async def _refused(mgr: PeerManager) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        assert mgr.connected_peers() == [], "a link was established"
        if mgr.stats.dial_failures + mgr.stats.handshake_failures + mgr.stats.refused_identity >= 3:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no refused connection attempts observed")


async def test_certificate_from_foreign_ca_cannot_connect(net: LocalNet) -> None:
    key = crypto.PrivateKey.generate()
    ca_key, ca_pem = create_ca("rogue CA")
    mgr = await _try_link(net, key.seed, issue_node_cert(ca_key, ca_pem, key.public_key, "rogue"), ca_pem)
    try:
        await _refused(mgr)
    finally:
        await mgr.stop()


async def test_network_ca_cert_for_non_validator_key_cannot_connect(net: LocalNet) -> None:
    key = crypto.PrivateKey.generate()
    cert = issue_cert(net.root / "ca", PASSPHRASE, key.public_key, "stranger")
    ca_pem = (net.root / "ca" / "ca.crt").read_bytes()
    mgr = await _try_link(net, key.seed, cert, ca_pem)
    try:
        await _refused(mgr)
    finally:
        await mgr.stop()


def test_no_secret_in_any_log(net: LocalNet) -> None:
    from chain.keystore import load_key

    logs = "".join(n.log_path.read_text(errors="replace") for n in net.nodes)
    assert "committed block" in logs
    assert PASSPHRASE not in logs
    for n in net.nodes:
        seed = load_key(n.home / "node_key.json", PASSPHRASE).seed
        assert seed.hex() not in logs and seed.hex().upper() not in logs
