"""The link-fault vocabulary: fault fields and their validation, partition/bridge topologies, tc-style
duration and rate parsing, and the control port's line framing.

TEST-ONLY (issue 14). Separate from the asyncio proxy (node/linkproxy.py) because this is pure data and
rules shared by three users that never run the proxy's event loop: the proxy itself, its blocking client
(node/linkclient.py) and the scripts that compute what to cut (scripts/testnet.py, scripts/chaos_nemesis.py).
See node/linkproxy.py's docstring for what each fault means on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

MAX_LATENCY_MS = 60_000

Link = tuple[int, int]


class ProxyError(Exception):
    """A control command was refused (bad JSON, unknown link or field, value out of range)."""


# -- fault state ------------------------------------------------------------------------------------


@dataclass
class Faults:
    """Faults on one traffic direction src->dst (see the module docstring for their meaning)."""

    latency_ms: int = 0
    jitter_ms: int = 0
    bandwidth_bps: int = 0
    stall: bool = False
    cut: bool = False

    def is_clear(self) -> bool:
        return self == Faults()


_FIELD_TYPES = {f.name: f.type for f in fields(Faults)}


def validate_faults(values: dict[str, Any]) -> dict[str, Any]:
    """Check fault fields from a control command; a clear ProxyError names the bad one."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _FIELD_TYPES:
            raise ProxyError(f"unknown fault field {key!r} (known: {', '.join(_FIELD_TYPES)})")
        if _FIELD_TYPES[key] in (bool, "bool"):
            if not isinstance(value, bool):
                raise ProxyError(f"{key} must be true or false, got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProxyError(f"{key} must be a non-negative integer, got {value!r}")
            if key in ("latency_ms", "jitter_ms") and value > MAX_LATENCY_MS:
                raise ProxyError(f"{key} must be at most {MAX_LATENCY_MS} ms, got {value}")
        out[key] = value
    return out


def json_line(obj: dict[str, Any]) -> bytes:
    """One control-port message: a JSON object on one line (both directions)."""
    return json.dumps(obj).encode() + b"\n"


# -- topologies -------------------------------------------------------------------------------------


def partition_links(n: int, groups: Sequence[Iterable[int]]) -> set[Link]:
    """Directed links to cut so that only nodes in the same group talk. Nodes 0..n-1 not named in any
    group form one more group together (so `partition 0,1,2` on 4 nodes isolates node 3)."""
    named = [set(g) for g in groups]
    seen: set[int] = set()
    for g in named:
        bad = [x for x in g if not 0 <= x < n]
        if bad:
            raise ValueError(f"no node {bad[0]} in a network of {n}")
        if g & seen:
            raise ValueError(f"node {sorted(g & seen)[0]} is in two groups")
        seen |= g
    rest = set(range(n)) - seen
    all_groups = named + ([rest] if rest else [])
    group_of = {x: k for k, g in enumerate(all_groups) for x in g}
    return {(a, b) for a in range(n) for b in range(n) if a != b and group_of[a] != group_of[b]}


def bridge_links(n: int) -> set[Link]:
    """The bridge topology: halves L = {0..h-1} and R = {h..n-1} (h = n // 2), every link between them
    cut except the one bridge pair (h-1, h). On 4 nodes: {0,1} | {2,3} joined only by 1<->2, so the
    connectivity is the path 0-1-2-3: no node sees all others and no quorum is fully connected, so
    progress needs votes relayed through the bridge (the consensus core's regossip)."""
    if n < 2:
        raise ValueError("a bridge needs at least 2 nodes")
    h = n // 2
    cut = partition_links(n, [range(h), range(h, n)])
    return cut - {(h - 1, h), (h, h - 1)}



# -- parsing helpers (testnet script, chaos) --------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)?\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?\s*$", re.IGNORECASE)
_RATE_UNITS = {"bit": 1, "bps": 1, "kbit": 1e3, "kbps": 1e3, "mbit": 1e6, "mbps": 1e6, "gbit": 1e9, "gbps": 1e9}


def parse_duration_ms(text: str) -> int:
    """'50ms', '1.5s', '200' (ms) -> milliseconds, as tc/netem spells durations."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 50ms, 1s)")
    value, unit = float(m.group(1)), (m.group(2) or "ms")
    return round(value * {"us": 0.001, "ms": 1, "s": 1000}[unit])


def parse_rate_bps(text: str) -> int:
    """'1mbit', '512kbit', '1000000' (bit/s) -> bits per second, as tc spells rates."""
    m = _RATE.match(text)
    if not m:
        raise ValueError(f"not a rate: {text!r} (e.g. 1mbit, 512kbit)")
    return round(float(m.group(1)) * _RATE_UNITS[(m.group(2) or "bit").lower()])


