"""Link-fault layer for a local network: a user-space TCP proxy on every directed validator link.

TEST-ONLY fault injection (issue 14). No kernel qdisc (netem) is available here and toxiproxy is not
packaged, so this is a small asyncio proxy. It never runs unless a local network is provisioned with
`link_proxy=True` (`scripts/testnet.py up --link-proxy`); production nodes never see it.

Topology. For every ordered pair (i, j), i != j, the proxy listens on its own port, and node i's config
lists that port as its peer address for node j: node i *dials* j through listener (i->j). The proxy
forwards bytes untouched, so mutual TLS stays end to end (the proxy sees only ciphertext). The API and
wallet path is not proxied.

Fault model. A fault is set on a *traffic direction* src->dst: it applies to the bytes src sends to
dst, whichever of the two dialled (the peer manager keeps one TCP link per pair, and which end dialled
it is a tie break, so a fault tied to the dialling direction would silently miss). Per direction:

- ``latency_ms`` / ``jitter_ms``: each chunk is delivered latency +- uniform(jitter) after it was read,
  never before an earlier chunk (TCP is ordered, so jitter cannot reorder bytes).
- ``bandwidth_bps``: bits per second, paced per direction (0 = unlimited).
- ``stall``: bytes are held, not lost, until the stall is lifted (a one-way black hole that TCP
  backpressure bounds; the reverse direction keeps flowing).
- ``cut``: refuse new connections and drop existing ones with a TCP reset. A TCP connection needs
  both directions, so a cut of src->dst ends the pair's connections whichever end dials; use ``stall``
  for a fault that leaves one direction working.
- ``reset`` (an action, not a state): reset every current connection of the pair; redials succeed.

Control. One process serves a whole network (so it outlives test helpers and the testnet script can
drive it): a localhost TCP control port taking one JSON object per line and answering one per line,
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Commands: ``ping``, ``status``,
``set`` (src, dst and any fault fields; fields not given keep their value), ``reset`` (src, dst),
``cut_only`` (links: [[src, dst], ...]: exactly these directions cut, every other cut lifted, other
faults untouched; how partitions are applied atomically), ``heal`` (every fault cleared).
`LinkProxyClient` (node/linkclient.py) is the Python client; `partition_links` and `bridge_links`
(node/linkfaults.py, with the fault fields and their validation) compute topologies.

Run: ``python -m node.linkproxy serve SPEC.json`` where SPEC is written by `node.localnet`:
``{"host": "127.0.0.1", "control_port": P, "links": [{"src": i, "dst": j, "listen_port": p,
"target_port": q}, ...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from node.linkfaults import Faults, Link, ProxyError, json_line, validate_faults

log = logging.getLogger("paynet.linkproxy")

CHUNK = 64 * 1024
PACED_CHUNK = 8 * 1024
"""Slice size when a bandwidth cap is set: small enough that pacing is smooth at 1 mbit/s."""
QUEUE_CHUNKS = 64
"""Chunks in flight per direction of one connection (bounded: a slow or stalled link backpressures
the sender through TCP instead of growing the proxy's memory)."""
MAX_CONTROL_LINE = 64 * 1024
CONNECT_TIMEOUT = 5.0


# -- fault state per direction ----------------------------------------------------------------------


class _Direction:
    """Per traffic direction: its faults, a wake-up for stalls, and the bandwidth pacer's clock."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.unstalled = asyncio.Event()
        self.unstalled.set()
        self.free_at = 0.0
        self.bytes = 0

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(self.faults, key, value)
        if self.faults.stall:
            self.unstalled.clear()
        else:
            self.unstalled.set()


# -- connections ------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Conn:
    """One proxied TCP connection: `dialer` dialled `acceptor` through listener (dialer->acceptor)."""

    dialer: int
    acceptor: int
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pair(self) -> frozenset[int]:
        return frozenset((self.dialer, self.acceptor))

    def close(self) -> None:
        """End normally: close both sides (flushing what was written) and stop the pumps."""
        for w in (self.client, self.server):
            w.close()
        for t in self.tasks:
            t.cancel()

    def reset(self) -> None:
        """Drop both sides with a TCP reset (SO_LINGER 0), as a failed middlebox or cable would."""
        for w in (self.client, self.server):
            _rst(w)
        for t in self.tasks:
            t.cancel()


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    if writer.transport is not None:
        writer.transport.abort()


class LinkProxy:
    """The proxy: listeners per dial link, fault state per traffic direction, the control server."""

    def __init__(self, links: dict[Link, tuple[int, int]], host: str = "127.0.0.1", control_port: int = 0,
                 rng: random.Random | None = None) -> None:
        """`links` maps (src, dst) to (listen_port, target_port): src dials dst's target through listen_port."""
        self.links = links
        self.host = host
        self.control_port = control_port
        self.nodes = sorted({n for link in links for n in link})
        self.dirs: dict[Link, _Direction] = {link: _Direction() for link in links}
        self.conns: set[_Conn] = set()
        self.refused = 0
        self.resets = 0
        self._rng = rng or random.Random()
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self) -> None:
        for (src, dst), (listen_port, target) in sorted(self.links.items()):
            server = await asyncio.start_server(
                lambda r, w, s=src, d=dst: self._on_accept(s, d, r, w), self.host, listen_port
            )
            self._servers.append(server)
            self.links[(src, dst)] = (server.sockets[0].getsockname()[1], target)  # port 0: the one chosen
        control = await asyncio.start_server(self._on_control, "127.0.0.1", self.control_port, limit=MAX_CONTROL_LINE)
        self.control_port = control.sockets[0].getsockname()[1]
        self._servers.append(control)

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for c in list(self.conns):
            c.reset()
        for s in self._servers:
            await s.wait_closed()

    # -- faults -----------------------------------------------------------------------------------

    def _link(self, src: Any, dst: Any) -> Link:
        link = (src, dst)
        if link not in self.dirs:
            raise ProxyError(f"no link {src}->{dst} (nodes: {self.nodes})")
        return link

    def set_faults(self, src: int, dst: int, values: dict[str, Any]) -> Faults:
        link = self._link(src, dst)
        self.dirs[link].update(validate_faults(values))
        if self.dirs[link].faults.cut:
            self.reset_pair(src, dst)
        return self.dirs[link].faults

    def cut_only(self, links: Iterable[Sequence[int]]) -> None:
        wanted = {self._link(*pair) for pair in links}
        for link, d in self.dirs.items():
            d.update({"cut": link in wanted})
        for link in wanted:
            self.reset_pair(*link)

    def heal(self) -> None:
        for d in self.dirs.values():
            d.update(asdict(Faults()))

    def reset_pair(self, a: int, b: int) -> int:
        """Reset every connection between a and b (either dialled); return how many."""
        pair = frozenset((a, b))
        victims = [c for c in self.conns if c.pair == pair]
        for c in victims:
            c.reset()
            self.conns.discard(c)
        self.resets += len(victims)
        return len(victims)

    def is_cut(self, a: int, b: int) -> bool:
        return self.dirs[(a, b)].faults.cut or self.dirs[(b, a)].faults.cut

    def status(self) -> dict[str, Any]:
        return {
            "control_port": self.control_port,
            "refused": self.refused,
            "resets": self.resets,
            "links": [
                {"src": s, "dst": d, "listen_port": self.links[(s, d)][0], "target_port": self.links[(s, d)][1],
                 "faults": asdict(self.dirs[(s, d)].faults), "bytes": self.dirs[(s, d)].bytes,
                 "connections": sum(1 for c in self.conns if (c.dialer, c.acceptor) == (s, d))}
                for s, d in sorted(self.links)
            ],
        }

    # -- data path --------------------------------------------------------------------------------

    async def _on_accept(self, src: int, dst: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut(src, dst):
            self.refused += 1
            _rst(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.links[(src, dst)][1], limit=CHUNK), CONNECT_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            _rst(writer)  # the target is down: the dialler sees a refused connection, as without a proxy
            return
        if self.is_cut(src, dst):  # cut while we were connecting
            self.refused += 1
            _rst(writer)
            _rst(up_writer)
            return
        conn = _Conn(src, dst, writer, up_writer)
        self.conns.add(conn)
        conn.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, self.dirs[(src, dst)])),
            asyncio.create_task(self._pump(up_reader, writer, self.dirs[(dst, src)])),
        ]
        try:
            # One direction ended (EOF, error or a node gone): the connection is over; close both sides.
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if conn in self.conns:
                self.conns.discard(conn)
                conn.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, d: _Direction) -> None:
        """Move one direction's bytes: a reader stamping each chunk's due time, a writer delivering in order."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        deliver = asyncio.create_task(self._deliver(queue, writer, d))
        me = asyncio.current_task()
        # If delivery fails (the far side reset), stop reading too, or this pump would block on a full queue.
        deliver.add_done_callback(lambda t: me.cancel() if me and not t.cancelled() and t.exception() else None)
        last_due = 0.0
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                f = d.faults
                delay = (f.latency_ms + (self._rng.uniform(-f.jitter_ms, f.jitter_ms) if f.jitter_ms else 0)) / 1000
                last_due = max(last_due, time.monotonic() + max(0.0, delay))
                await queue.put((last_due, data))
            await queue.put(None)
            await deliver
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            deliver.cancel()

    async def _deliver(self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter,
                       d: _Direction) -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            step = PACED_CHUNK if d.faults.bandwidth_bps else len(data)
            for off in range(0, len(data), step):
                await d.unstalled.wait()
                piece = data[off : off + step]
                await self._pace(d, len(piece))
                writer.write(piece)
                d.bytes += len(piece)
                await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    @staticmethod
    async def _pace(d: _Direction, n: int) -> None:
        bps = d.faults.bandwidth_bps
        if not bps:
            return
        now = time.monotonic()
        start = max(now, d.free_at)
        d.free_at = start + n * 8 / bps
        if start > now:
            await asyncio.sleep(start - now)

    # -- control ----------------------------------------------------------------------------------

    async def _on_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(json_line({"ok": False, "error": f"command longer than {MAX_CONTROL_LINE} bytes"}))
                    break
                if not line:
                    break
                writer.write(json_line(self.handle(line)))
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()

    def handle(self, line: bytes) -> dict[str, Any]:
        """Execute one JSON control command; every failure is an error reply, never an exception."""
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
                raise ProxyError('expected a JSON object with a "cmd" string')
            return {"ok": True, **self._dispatch(cmd)}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        except (ProxyError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}

    def _dispatch(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd.pop("cmd")
        if name == "ping":
            return {"pong": True}
        if name == "status":
            return self.status()
        if name == "set":
            src, dst = cmd.pop("src", None), cmd.pop("dst", None)
            return {"faults": asdict(self.set_faults(*self._link(src, dst), cmd))}
        if name == "reset":
            return {"reset": self.reset_pair(*self._link(cmd.get("src"), cmd.get("dst")))}
        if name == "cut_only":
            links = cmd.get("links")
            if not isinstance(links, list) or not all(isinstance(p, list) and len(p) == 2 for p in links):
                raise ProxyError('cut_only needs "links": [[src, dst], ...]')
            self.cut_only(links)
            return {"cut": sorted(map(list, {tuple(p) for p in links}))}
        if name == "heal":
            self.heal()
            return {}
        raise ProxyError(f"unknown command {name!r} (ping, status, set, reset, cut_only, heal)")


# -- process entry ----------------------------------------------------------------------------------


def load_spec(path: Path) -> tuple[dict[Link, tuple[int, int]], str, int]:
    spec = json.loads(path.read_text())
    links = {(int(x["src"]), int(x["dst"])): (int(x["listen_port"]), int(x["target_port"])) for x in spec["links"]}
    return links, spec.get("host", "127.0.0.1"), int(spec["control_port"])


async def _serve(spec: Path) -> None:
    links, host, control = load_spec(spec)
    proxy = LinkProxy(links, host, control)
    await proxy.start()
    log.warning("TEST-ONLY link-fault proxy: %d links, control on 127.0.0.1:%d", len(links), proxy.control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m node.linkproxy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the proxy for a spec file written by node.localnet")
    serve.add_argument("spec", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args.spec))
    except OSError as exc:
        raise SystemExit(f"link proxy: cannot listen: {exc}") from None


if __name__ == "__main__":
    main()
