"""Reading a TEST ONLY integer switch from the environment (PAYNET_UNSAFE_..._TEST_...).

Shared by every such switch (chain/diskcap.py, node/faults.py), so each one is parsed, refused when
malformed and announced at CRITICAL the same way. Lives in `chain` because `chain` imports nothing of ours.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("paynet.unsafe")


def unsafe_int_env(name: str, effect: str) -> int | None:
    """The integer in $`name`, or None when unset/empty; logs CRITICAL (with `effect`) when set."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: expected an integer") from None
    log.critical("UNSAFE test switch %s=%d is on: %s", name, value, effect)
    return value
