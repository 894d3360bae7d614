"""The `paynet-signer` process: holds a consensus key (file or PKCS#11) and the authoritative
double-sign guard, and signs votes and proposals for the nodes it allows, over mutual TLS.

A compromised node host can ask this process for signatures, but only ones the guard allows: it can
never read the key, and it cannot make the validator equivocate, because the (height, round, step)
record lives here, beside the key, not on the node. `SignerService` is the protocol logic (request
in, response out, no I/O); `serve` is the asyncio TLS listener around it. Requests are answered one at
a time in the event loop: the guard must see them in order, and each is a token signature plus an
fsync, a few milliseconds -- votes are a handful per block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from chain.encoding import DecodeError
from consensus.messages import VoteType
from consensus.signer import GuardedSigner, SignerStateError, SignRefused
from custody import protocol as p
from custody.pkcs11_key import HsmError
from network.pki import PkiError, tls_pubkey_from_der
from network.transport import abort

log = logging.getLogger("paynet.signer")

IDLE_TIMEOUT_S = 300.0
HANDSHAKE_TIMEOUT_S = 5.0


class SignerService:
    """Turns decoded requests into responses through one `GuardedSigner`."""

    def __init__(self, guard: GuardedSigner) -> None:
        self.guard = guard
        self.signed = 0
        self.refused = 0

    def _state(self, status: str = "ok", **fields: object) -> p.Response:
        last = self.guard.last
        return p.Response(
            status=status,  # type: ignore[arg-type]
            public_key=self.guard.public_key.hex(),
            last=None if last is None else p.LastRecord.of(last),
            **fields,  # type: ignore[arg-type]
        )

    def handle(self, req: p.StateRequest | p.VoteRequest | p.ProposalRequest | p.FloorRequest) -> p.Response:
        try:
            if isinstance(req, p.StateRequest):
                return self._state()
            if isinstance(req, p.FloorRequest):
                last = self.guard.last
                # The node saw our precommit at height-1 in a block; only a state that does not know of
                # it (a restored or replaced state file) must stop signing there.
                if last is None or last.height < req.height - 1:
                    log.critical("node reports our precommit at height %d unknown to %s: floor raised to %d",
                                 req.height - 1, self.guard, req.height)
                    self.guard.raise_floor(req.height)
                return self._state()
            if isinstance(req, p.VoteRequest):
                bh = None if req.block_hash is None else bytes.fromhex(req.block_hash)
                sig = self.guard.sign_vote(req.chain_id, VoteType(req.vote_type), req.height, req.round, bh).signature
            else:
                sig = self.guard.sign_proposal(
                    req.chain_id, req.height, req.round, req.pol_round, bytes.fromhex(req.block_hash), b""
                ).signature
        except SignRefused as refused:
            self.refused += 1
            log.warning("refused: %s", refused)
            given = None if refused.given is None else p.LastRecord.of(refused.given)
            return self._state("refused", error=str(refused)[:500], given=given)
        except (SignerStateError, HsmError) as exc:
            log.error("cannot sign: %s", exc)
            return p.Response(status="error", error=str(exc)[:500])
        self.signed += 1
        return self._state(signature=sig.hex())


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(p.HEADER.size)
    return await reader.readexactly(p.frame_length(header))


def peer_tls_key(writer: asyncio.StreamWriter) -> bytes:
    """The raw TLS key of the (CA-verified) client certificate; the allow-list is of TLS keys."""
    sslobj = writer.get_extra_info("ssl_object")
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not der:
        raise PkiError("client presented no certificate")
    return tls_pubkey_from_der(der)


class SignerServer:
    """The TLS listener: one request/response at a time per connection, `max_connections` at once."""

    def __init__(self, service: SignerService, ctx: ssl.SSLContext, allowed: frozenset[bytes], max_connections: int) -> None:
        self.service, self._ctx, self._allowed = service, ctx, allowed
        self._slots = max_connections
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._serve, host, port, ssl=self._ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S
        )
        self.address = self._server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):  # open node connections end with the server
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._conns, return_exceptions=True)
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            tls_key = peer_tls_key(writer)
        except (PkiError, ValueError) as exc:
            log.warning("connection from %s refused: %s", peer, exc)
            writer.close()
            return
        if tls_key not in self._allowed:
            log.warning("connection from %s refused: TLS key %s... is not in allowed_node_keys", peer, tls_key.hex()[:16])
            writer.close()
            return
        if self._slots <= 0:
            log.warning("connection from %s refused: max_connections reached", peer)
            writer.close()
            return
        self._slots -= 1
        log.info("node %s... connected from %s", tls_key.hex()[:16], peer)
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                body = await asyncio.wait_for(_read_frame(reader), IDLE_TIMEOUT_S)
                try:
                    resp = self.service.handle(p.decode_request(body))
                except (p.ProtocolError, DecodeError) as exc:
                    resp = p.Response(status="error", error=str(exc)[:500])
                writer.write(p.encode(resp))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ssl.SSLError, p.ProtocolError) as exc:
            log.info("node %s... disconnected: %s", tls_key.hex()[:16], type(exc).__name__)
        finally:
            self._slots += 1
            self._conns.discard(task)
            abort(writer)  # nothing is owed to a peer that left, misbehaved or is being shut out
