"""Hostile HTTP clients that cost the node memory or a stack, not CPU (issue 13, item 4), on a real node.

- 50,000 nested `[` in a JSON body: a clear 400, never a 500 with a RecursionError behind it;
- a connection that sends nothing: closed within the idle timeout (before the fix: 151 s);
- connections trickling header bytes: all closed within the same timeout (before: held);
- a body announced but never sent: the request times out and the connection closes.

One validator with the production API config; the test changes nothing but what it sends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from node.localnet import LocalNet
from tests.adversarial.api_kit import PRODUCTION_API
from tests.integration.netutil import post_json

pytestmark = pytest.mark.integration

BASE_PORT = 30630
CLOSE_WITHIN_S = 12.0  # the default idle/header timeout is 5 s; generous for a loaded 2-core machine
BODY_CLOSE_WITHIN_S = 15.0  # the default body timeout is 10 s, then 408 and at most 2 s of draining
TRICKLERS = 200


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    network = LocalNet.provision(tmp_path_factory.mktemp("api-conn"), validators=1, base_port=BASE_PORT,
                                 demo_accounts=1, config_overrides=PRODUCTION_API)
    with network.running(height=1):
        yield network


def _raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(resp: bytes) -> bool:
    head, _, body = resp.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


@pytest.mark.parametrize("path", ["/txs", "/tx-batches"])
def test_deeply_nested_json_is_a_clear_400(net: LocalNet, path: str) -> None:
    body = b"[" * 50_000
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    resp = _raw_request(net.nodes[0].api_port, head + body)
    status = int(resp.split(b" ", 2)[1])
    payload = json.loads(resp.partition(b"\r\n\r\n")[2])
    assert status == 400, (status, payload)
    assert payload["error"]["code"] == "malformed_json" and "nest" in payload["error"]["message"], payload
    assert "RecursionError" not in net.nodes[0].log_path.read_text()
    status, out = post_json(net.nodes[0].api_url + "/txs", {"tx": "00"})  # the node still answers normally
    assert (status, out["error"]["code"]) == (400, "malformed_tx")


async def _closed_after(port: int, send: bytes, trickle: bytes | None, limit: float) -> float | None:
    """Open a connection, send `send`, then one byte of `trickle` every 0.5 s; seconds until the server
    closed it, or None if still open after `limit` s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    try:
        if send:
            writer.write(send)
        i = 0
        while time.monotonic() - t0 < limit:
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.5)
                if not data:
                    return time.monotonic() - t0
            except asyncio.TimeoutError:
                pass
            if trickle is not None:
                try:
                    writer.write(trickle[i % len(trickle): i % len(trickle) + 1])
                    await writer.drain()
                except ConnectionError:
                    return time.monotonic() - t0
                i += 1
        return None
    except ConnectionError:
        return time.monotonic() - t0
    finally:
        writer.close()


def test_idle_connection_is_closed_promptly(net: LocalNet) -> None:
    closed = asyncio.run(_closed_after(net.nodes[0].api_port, b"", None, CLOSE_WITHIN_S + 5))
    print(f"\nidle connection closed after {closed} s")
    assert closed is not None and closed <= CLOSE_WITHIN_S, f"idle connection closed after {closed} s"


def test_header_tricklers_are_closed(net: LocalNet) -> None:
    async def run() -> list[float | None]:
        trickle = b"X-Slow: " + b"a" * 64 + b"\r\n"
        return await asyncio.gather(*(
            _closed_after(net.nodes[0].api_port, b"GET /status HTTP/1.1\r\nHost: x\r\n", trickle, CLOSE_WITHIN_S + 5)
            for _ in range(TRICKLERS)
        ))

    closed = asyncio.run(run())
    done = sorted(c for c in closed if c is not None)
    span = f"after {done[0]:.1f}-{done[-1]:.1f} s" if done else "none"
    print(f"\n{len(done)} of {TRICKLERS} header tricklers closed, {span}")
    held = [c for c in closed if c is None or c > CLOSE_WITHIN_S]
    assert not held, f"{len(held)} of {TRICKLERS} header tricklers held past {CLOSE_WITHIN_S} s"
    assert net.height(0) is not None  # and the node still answers


def test_body_never_sent_times_out(net: LocalNet) -> None:
    head = b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"tx\":"
    closed = asyncio.run(_closed_after(net.nodes[0].api_port, head, None, BODY_CLOSE_WITHIN_S + 5))
    print(f"\nstalled body: connection closed after {closed} s")
    assert closed is not None and closed <= BODY_CLOSE_WITHIN_S, f"stalled body held for {closed} s"
