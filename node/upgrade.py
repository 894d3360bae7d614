"""Which protocol versions this release implements, and the halt rule at a scheduled upgrade height.

Why: a governance action fixes the height at which a new protocol version becomes active (chain/
governance.py, `SCHEDULE_UPGRADE`). A node whose release lacks that version must not build, vote on or
apply any block at or after that height -- it would fork from the upgraded nodes -- so it halts cleanly
there with a message that tells the operator what to install. Nodes that have it continue.

`PAYNET_UNSAFE_EXTRA_PROTOCOL_VERSION_TEST=N` makes this process claim version N as well, so a test can
run "upgraded" and "not upgraded" nodes of one release side by side. Test-mode only; never set in production.
"""

from __future__ import annotations

import os

from chain.governance import Upgrade

SUPPORTED_PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
EXTRA_VERSION_TEST_ENV = "PAYNET_UNSAFE_EXTRA_PROTOCOL_VERSION_TEST"


class UpgradeRequired(Exception):
    """The next block needs a protocol version this release does not implement (halts consensus)."""


def supported_versions() -> frozenset[int]:
    """The versions this process runs: the release's, plus the test-only injected one if set."""
    extra = os.environ.get(EXTRA_VERSION_TEST_ENV, "").strip()
    versions = set(SUPPORTED_PROTOCOL_VERSIONS)
    if extra:
        versions.add(int(extra))
    return frozenset(versions)


def upgrade_halt_reason(upgrade: Upgrade, height: int, supported: frozenset[int]) -> str | None:
    """Why this node must not build or apply block `height`, or None.

    `upgrade` is the record in the state before that block; the scheduled version is active from its
    activation height on, so block `height` needs it exactly when height >= that height.
    """
    active = upgrade.at(height).active
    if active in supported:
        return None
    since = upgrade.height if upgrade.next == active else None
    at = f"at height {since}" if since is not None else f"(active at height {height})"
    return (f"protocol version {active} is active {at}, and this release supports only versions "
            f"{sorted(supported)}: install a paynet release that supports protocol version {active} and restart "
            f"(see docs/operations.md, 'Protocol upgrades')")
