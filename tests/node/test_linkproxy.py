"""The link-fault proxy (node/linkproxy.py) against real sockets: echo servers stand in for nodes.

Each fault is checked by what a peer would observe (bytes arriving late, held, paced, refused or reset),
not by the proxy's internal state. Timing bounds are one-sided (at least the injected delay) so a slow
shared machine cannot make them flaky.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.linkclient import LinkProxyClient
from node.linkfaults import ProxyError, bridge_links, parse_duration_ms, parse_rate_bps, partition_links
from node.linkproxy import LinkProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxied() -> AsyncIterator[LinkProxy]:
    """Two 'nodes' (0 and 1), each an echo server; the proxy has listeners 0->1 and 1->0."""
    servers = [await asyncio.start_server(_echo, "127.0.0.1", 0) for _ in range(2)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    proxy = LinkProxy({(0, 1): (0, ports[1]), (1, 0): (0, ports[0])})
    await proxy.start()
    yield proxy
    await proxy.stop()
    for s in servers:
        s.close()


async def _dial(proxy: LinkProxy, src: int, dst: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.links[(src, dst)][0])


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> float:
    started = time.monotonic()
    writer.write(data)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(data)), 10) == data
    return time.monotonic() - started


async def test_bytes_pass_through_unchanged(proxied: LinkProxy) -> None:
    r, w = await _dial(proxied, 0, 1)
    payload = os.urandom(300_000)  # several chunks
    await _roundtrip(r, w, payload)
    assert proxied.status()["links"][0]["connections"] == 1
    w.close()


async def test_latency_applies_to_the_traffic_direction_whoever_dialled(proxied: LinkProxy) -> None:
    r, w = await _dial(proxied, 0, 1)  # 0 dialled 1; the reply travels 1->0
    assert await _roundtrip(r, w, b"x") < 0.15
    proxied.set_faults(1, 0, {"latency_ms": 200})
    assert await _roundtrip(r, w, b"y") >= 0.2
    proxied.set_faults(1, 0, {"latency_ms": 0, "jitter_ms": 0})
    assert await _roundtrip(r, w, b"z") < 0.15
    w.close()


async def test_jitter_never_reorders_bytes(proxied: LinkProxy) -> None:
    proxied.set_faults(0, 1, {"latency_ms": 20, "jitter_ms": 20})
    r, w = await _dial(proxied, 0, 1)
    for i in range(50):
        w.write(i.to_bytes(2, "big"))
        await w.drain()
        await asyncio.sleep(0.002)
    got = await asyncio.wait_for(r.readexactly(100), 10)
    assert [int.from_bytes(got[i : i + 2], "big") for i in range(0, 100, 2)] == list(range(50))
    w.close()


async def test_stall_holds_one_direction_then_delivers_everything(proxied: LinkProxy) -> None:
    r, w = await _dial(proxied, 0, 1)
    proxied.set_faults(1, 0, {"stall": True})  # replies held; requests still reach the echo server
    w.write(b"held")
    await w.drain()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(r.readexactly(4), 0.3)
    assert proxied.status()["links"][0]["bytes"] == 4  # 0->1 carried the request
    proxied.set_faults(1, 0, {"stall": False})
    assert await asyncio.wait_for(r.readexactly(4), 5) == b"held"
    w.close()


async def test_bandwidth_cap_paces_bytes(proxied: LinkProxy) -> None:
    proxied.set_faults(0, 1, {"bandwidth_bps": 800_000})  # 100 kB/s
    r, w = await _dial(proxied, 0, 1)
    assert await _roundtrip(r, w, os.urandom(50_000)) >= 0.45
    w.close()


async def test_cut_resets_existing_connections_and_refuses_new_ones_both_ways(proxied: LinkProxy) -> None:
    r, w = await _dial(proxied, 1, 0)  # dialled the other way: a cut of 0->1 still ends it
    await _roundtrip(r, w, b"a")
    proxied.set_faults(0, 1, {"cut": True})
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        w.write(b"b")
        await w.drain()
        await asyncio.wait_for(r.readexactly(1), 5)
    for src, dst in ((0, 1), (1, 0)):
        r2, w2 = await _dial(proxied, src, dst)
        with pytest.raises(ConnectionResetError):  # refused: reset at once
            await asyncio.wait_for(r2.read(10), 5)
        w2.close()
    assert proxied.refused == 2
    proxied.heal()
    r3, w3 = await _dial(proxied, 0, 1)
    await _roundtrip(r3, w3, b"c")
    w3.close()


async def test_reset_drops_current_connections_but_not_the_link(proxied: LinkProxy) -> None:
    r, w = await _dial(proxied, 0, 1)
    await _roundtrip(r, w, b"a")
    assert proxied.reset_pair(1, 0) == 1
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(r.readexactly(1), 5)
    r2, w2 = await _dial(proxied, 0, 1)
    await _roundtrip(r2, w2, b"b")
    w2.close()


async def test_control_commands_answer_errors_instead_of_crashing(proxied: LinkProxy) -> None:
    def handle(obj: object) -> dict:
        return proxied.handle(json.dumps(obj).encode())

    assert proxied.handle(b"{nope")["error"].startswith("not JSON")
    assert "cmd" in handle([1])["error"]
    assert "unknown command" in handle({"cmd": "explode"})["error"]
    assert "no link 0->0" in handle({"cmd": "set", "src": 0, "dst": 0, "cut": True})["error"]
    assert "unknown fault field 'loss'" in handle({"cmd": "set", "src": 0, "dst": 1, "loss": 5})["error"]
    assert "non-negative integer" in handle({"cmd": "set", "src": 0, "dst": 1, "latency_ms": -1})["error"]
    assert "true or false" in handle({"cmd": "set", "src": 0, "dst": 1, "stall": 1})["error"]
    assert "at most" in handle({"cmd": "set", "src": 0, "dst": 1, "latency_ms": 10**9})["error"]
    assert "links" in handle({"cmd": "cut_only", "links": 3})["error"]
    ok = handle({"cmd": "set", "src": 0, "dst": 1, "latency_ms": 5})
    assert ok["ok"] and ok["faults"]["latency_ms"] == 5
    assert handle({"cmd": "cut_only", "links": [[0, 1]]})["cut"] == [[0, 1]]
    assert proxied.is_cut(1, 0)
    assert handle({"cmd": "heal"})["ok"] and not proxied.is_cut(0, 1)
    assert proxied.dirs[(0, 1)].faults.is_clear()


def test_partition_links_cut_between_groups_both_ways() -> None:
    assert partition_links(4, [[0, 1], [2, 3]]) == {
        (a, b) for a in range(4) for b in range(4) if (a < 2) != (b < 2)
    }
    # unnamed nodes form one more group: {0,1,2} | {3}
    assert partition_links(4, [[0, 1, 2]]) == {(3, 0), (3, 1), (3, 2), (0, 3), (1, 3), (2, 3)}
    with pytest.raises(ValueError, match="two groups"):
        partition_links(4, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="no node 7"):
        partition_links(4, [[7]])


def test_bridge_is_a_path_through_the_middle_pair() -> None:
    kept = {(a, b) for a in range(4) for b in range(4) if a != b} - bridge_links(4)
    assert kept == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}  # 0-1-2-3
    kept7 = {(a, b) for a in range(7) for b in range(7) if a != b} - bridge_links(7)
    assert (2, 3) in kept7 and (3, 2) in kept7 and (2, 4) not in kept7 and (0, 6) not in kept7


def test_parse_duration_and_rate_like_tc() -> None:
    assert parse_duration_ms("50ms") == 50 and parse_duration_ms("1.5s") == 1500 and parse_duration_ms("7") == 7
    assert parse_rate_bps("1mbit") == 1_000_000 and parse_rate_bps("512kbit") == 512_000
    for bad in ("fast", "-1ms", "10 parsecs"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)
    with pytest.raises(ValueError):
        parse_rate_bps("lots")


def test_proxy_process_and_client(tmp_path: Path) -> None:
    """The process entry the local network uses, driven through the blocking client."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        control = s.getsockname()[1]
    spec = tmp_path / "linkproxy.json"
    spec.write_text(json.dumps({"control_port": control, "links": [
        {"src": 0, "dst": 1, "listen_port": 0, "target_port": 1},
        {"src": 1, "dst": 0, "listen_port": 0, "target_port": 1},
    ]}))
    proc = subprocess.Popen([sys.executable, "-m", "node.linkproxy", "serve", str(spec)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = LinkProxyClient(control)
        deadline = time.monotonic() + 15
        while not client.ping():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "proxy did not answer"
            time.sleep(0.05)
        assert client.set_link(0, 1, latency_ms=50, jitter_ms=10)["latency_ms"] == 50
        assert client.partition(2, [[0], [1]]) == {(0, 1), (1, 0)}
        links = client.status()["links"]
        assert all(x["faults"]["cut"] for x in links) and links[0]["faults"]["latency_ms"] == 50
        with pytest.raises(ProxyError, match="unknown fault field"):
            client.set_link(0, 1, packet_loss=3)
        client.heal()
        assert not any(x["faults"]["cut"] or x["faults"]["latency_ms"] for x in client.status()["links"])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
