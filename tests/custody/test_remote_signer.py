"""The remote signer over real mutual TLS on 127.0.0.1: the node-side client against the real server.

The server runs its own event loop in a thread (as it runs in its own process in production), the
client makes the blocking round trips the consensus core makes."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from consensus.messages import VoteType
from consensus.signer import FileSignerState, GuardedSigner, SignRefused
from custody import protocol as p
from custody.remote import RemoteSigner, SignerUnavailable
from custody.server import SignerServer, SignerService
from network.pki import build_tls_context, create_ca, issue_node_cert

pytestmark = pytest.mark.timeout(60)
CHAIN = "paynet-test"
H1, H2 = b"\x01" * 32, b"\x02" * 32


class Pki:
    def __init__(self) -> None:
        self.ca_key, self.ca = create_ca("net")

    def ctx(self, key: PrivateKey, server: bool) -> ssl.SSLContext:
        cert = issue_node_cert(self.ca_key, self.ca, key.public_key, "x")
        return build_tls_context(key.seed, cert, self.ca, server=server)


class ServerThread:
    """A `SignerServer` in its own thread and loop; `stop()` closes it, `start()` brings it back on the same port."""

    def __init__(self, pki: Pki, consensus: PrivateKey, state: Path, allowed: set[bytes], port: int = 0) -> None:
        self.pki, self.consensus, self.state, self.allowed, self.port = pki, consensus, state, allowed, port
        self.tls = PrivateKey.generate()
        self.service: SignerService | None = None

    def start(self) -> None:
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def main() -> None:
            self.service = SignerService(GuardedSigner(self.consensus, FileSignerState(self.state)))
            self.server = SignerServer(self.service, self.pki.ctx(self.tls, True), frozenset(self.allowed), 4)
            await self.server.start("127.0.0.1", self.port)
            self.port = self.server.address[1]
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()
            await self.server.close()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:  # connections still being handled (e.g. one accepted while stopping)
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await asyncio.sleep(0.05)  # aborted transports run their connection_lost before the loop closes

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def setup(tmp_path: Path):
    pki, consensus, node_tls = Pki(), PrivateKey.generate(), PrivateKey.generate()
    srv = ServerThread(pki, consensus, tmp_path / "signer_state.json", {node_tls.public_key})
    srv.start()
    client = RemoteSigner(("127.0.0.1", srv.port), pki.ctx(node_tls, False), consensus.public_key, timeout=2, retry=0.05)
    assert client.connect()
    yield pki, consensus, srv, client
    client.close()
    if srv.thread.is_alive():
        srv.stop()


def test_votes_and_proposals_are_signed_by_the_remote_key(setup) -> None:
    _pki, consensus, _srv, client = setup
    vote = client.sign_vote(CHAIN, VoteType.PREVOTE, 3, 0, H1)
    assert vote.validator == consensus.public_key and vote.verify(CHAIN)
    prop = client.sign_proposal(CHAIN, 4, 0, -1, H1, b"block bytes stay on the node")
    assert prop.verify(CHAIN) and prop.payload == b"block bytes stay on the node"
    assert client.last is not None and client.last.hrs == (4, 0, 1)


def test_the_signer_refuses_equivocation_even_across_its_restart(setup) -> None:
    _pki, _consensus, srv, client = setup
    first = client.sign_vote(CHAIN, VoteType.PRECOMMIT, 5, 1, H1)
    srv.stop()
    with pytest.raises(SignerUnavailable):
        client.sign_vote(CHAIN, VoteType.PRECOMMIT, 5, 1, H2)
    srv.start()  # same port, same state file
    deadline_tries = 200
    for _ in range(deadline_tries):
        try:
            client.sign_vote(CHAIN, VoteType.PRECOMMIT, 5, 1, H2)
            raise AssertionError("the signer signed a conflicting precommit after a restart")
        except SignerUnavailable:
            threading.Event().wait(0.02)  # the client's retry delay; the server is back
        except SignRefused as refused:
            assert refused.given is not None and refused.given.signature == first.signature
            break
    else:
        raise AssertionError("signer never came back")
    assert client.sign_vote(CHAIN, VoteType.PRECOMMIT, 5, 1, H1).signature == first.signature  # same request: same answer
    assert client.sign_vote(CHAIN, VoteType.PREVOTE, 6, 0, H1).verify(CHAIN)


def _wait(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_down_signer_costs_the_caller_nothing_and_is_reconnected_in_the_background(setup) -> None:
    _pki, _c, srv, client = setup
    srv.stop()
    with pytest.raises(SignerUnavailable):
        client.sign_vote(CHAIN, VoteType.PREVOTE, 7, 0, H1)  # the connection was open: this one notices
    for _ in range(20):  # from now on no request waits for the network
        t = time.monotonic()
        with pytest.raises(SignerUnavailable, match="not connected"):
            client.sign_vote(CHAIN, VoteType.PREVOTE, 7, 0, H1)
        assert time.monotonic() - t < 0.05
    srv.start()
    _wait(lambda: client.connected)  # the background thread found it back
    assert client.sign_vote(CHAIN, VoteType.PREVOTE, 7, 0, H1).verify(CHAIN)


def test_a_stalled_signer_never_blocks_the_caller(tmp_path: Path) -> None:
    """A listener that accepts TCP but never speaks TLS (a stopped signer process looks like this)."""
    pki, consensus = Pki(), PrivateKey.generate()
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(8)
    client = RemoteSigner(stalled.getsockname(), pki.ctx(PrivateKey.generate(), False), consensus.public_key,
                          timeout=2, retry=0.05)
    try:
        for _ in range(20):
            t = time.monotonic()
            with pytest.raises(SignerUnavailable):
                client.sign_vote(CHAIN, VoteType.PREVOTE, 1, 0, H1)
            assert time.monotonic() - t < 0.05  # the 2 s handshake timeout is spent in the background
    finally:
        client.close()
        stalled.close()


def test_a_node_not_on_the_allow_list_gets_nothing(setup) -> None:
    pki, consensus, srv, _client = setup
    stranger = RemoteSigner(("127.0.0.1", srv.port), pki.ctx(PrivateKey.generate(), False), consensus.public_key, 2, 0.05)
    stranger.connect()  # TLS succeeds (a CA-issued certificate), then the allow-list closes the link
    with pytest.raises(SignerUnavailable):
        stranger.sign_vote(CHAIN, VoteType.PREVOTE, 9, 0, H1)
    stranger.close()
    assert srv.service is not None and srv.service.signed == 0


def test_a_signer_with_another_key_is_not_trusted(tmp_path: Path) -> None:
    pki, node_tls = Pki(), PrivateKey.generate()
    srv = ServerThread(pki, PrivateKey.generate(), tmp_path / "s.json", {node_tls.public_key})
    srv.start()
    try:
        client = RemoteSigner(("127.0.0.1", srv.port), pki.ctx(node_tls, False), PrivateKey.generate().public_key, 2, 0.05)
        assert client.connect()
        with pytest.raises(SignerUnavailable, match="another key"):
            client.sign_vote(CHAIN, VoteType.PREVOTE, 1, 0, H1)
        client.close()
    finally:
        srv.stop()


def test_oversized_and_malformed_requests(setup) -> None:
    pki, _c, srv, client = setup
    with pytest.raises(p.ProtocolError):
        p.decode_request(b'{"op":"sign_vote","chain_id":"c","vote_type":3,"height":1,"round":0,"block_hash":null}')
    with pytest.raises(p.ProtocolError):
        p.decode_request(b'{"op":"state","extra":1}')
    with pytest.raises(p.ProtocolError):
        p.decode_request(b'{"op":"sign_vote","chain_id":"c","vote_type":"1","height":1,"round":0,"block_hash":null}')
    client.request(p.StateRequest(op="state"))
    assert client._sock is not None
    client._sock.sendall(p.HEADER.pack(p.MAX_FRAME + 1))  # the server drops the link without reading on
    client._sock.settimeout(5)
    try:
        data = client._sock.recv(1)
    except (ConnectionError, ssl.SSLError):
        data = b""
    assert data == b""  # closed, not answered (a recv timeout would raise socket.timeout and fail here)
