"""Blocking client for the link-fault proxy's control port (node/linkproxy.py).

TEST-ONLY (issue 14). Separate from the proxy so that callers (node/localnet.py, tests, the chaos
nemesis) drive a running proxy without importing its asyncio server.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from node.linkfaults import Link, ProxyError, bridge_links, json_line, partition_links



class LinkProxyClient:
    """Blocking client for the control port (one short connection per command: simple and robust for
    scripts, tests and the chaos nemesis). Raises ProxyError on an error reply, OSError if unreachable."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        with socket.create_connection((self.host, self.port), self.timeout) as sock:
            sock.sendall(json_line({"cmd": cmd, **args}))
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("link proxy closed the control connection without answering")
                buf += chunk
        reply = json.loads(buf)
        if not reply.pop("ok", False):
            raise ProxyError(reply.get("error", "unknown error"))
        return reply

    def ping(self) -> bool:
        try:
            return bool(self.call("ping").get("pong"))
        except (OSError, ProxyError, ValueError):
            return False

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def set_link(self, src: int, dst: int, **faults: Any) -> dict[str, Any]:
        """Set fault fields on traffic src->dst (see `Faults`); fields not given keep their value."""
        return self.call("set", src=src, dst=dst, **faults)["faults"]

    def reset(self, src: int, dst: int) -> int:
        return int(self.call("reset", src=src, dst=dst)["reset"])

    def cut_only(self, links: Iterable[Link]) -> None:
        self.call("cut_only", links=[list(x) for x in sorted(links)])

    def partition(self, n: int, groups: Sequence[Iterable[int]]) -> set[Link]:
        """Cut every link between groups, both ways (replacing any earlier partition); return the cut set."""
        links = partition_links(n, groups)
        self.cut_only(links)
        return links

    def bridge(self, n: int) -> set[Link]:
        links = bridge_links(n)
        self.cut_only(links)
        return links

    def heal(self) -> None:
        self.call("heal")
