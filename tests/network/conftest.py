"""Fixtures for network tests: a network CA and PeerManagers on ephemeral ports, stopped at teardown."""

from __future__ import annotations

import dataclasses
from typing import Awaitable, Callable

import pytest

from netkit import CHAIN_ID, FAST, GENESIS, Identity, Pki
from network.peers import PeerManager


@pytest.fixture
def pki() -> Pki:
    return Pki()


MakeManager = Callable[..., Awaitable[PeerManager]]


@pytest.fixture
async def make_manager():
    """Factory: start a PeerManager for an identity; all are stopped at teardown."""
    started: list[PeerManager] = []

    async def make(
        ident: Identity,
        allowed: set[bytes] | Callable[[], set[bytes]],
        peers: tuple[tuple[str, int], ...] = (),
        chain_id: str = CHAIN_ID,
        events: list[tuple[str, bytes]] | None = None,
        **overrides,
    ) -> PeerManager:
        cfg = dataclasses.replace(FAST, peers=tuple(peers), **overrides)
        allowed_fn = allowed if callable(allowed) else (lambda: allowed)
        pm = PeerManager(
            identity_seed=ident.key.seed,
            cert_pem=ident.cert,
            ca_cert_pem=ident.ca,
            chain_id=chain_id,
            genesis_hash=GENESIS,
            allowed_keys=allowed_fn,
            config=cfg,
            on_connected=None if events is None else (lambda info: events.append(("up", info.pubkey))),
            on_disconnected=None if events is None else (lambda pk, reason: events.append(("down", pk))),
        )
        await pm.start()
        started.append(pm)
        return pm

    yield make
    for pm in started:
        await pm.stop()


