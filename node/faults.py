"""TEST ONLY: fault switches that make this node fail on purpose, to prove it halts rather than guesses.

Each switch is an environment variable named PAYNET_UNSAFE_..._TEST_..., read when the node starts
(never from the config file, so an operator cannot switch one on by editing a file), and logged at
CRITICAL when on. None is on by default.

- PAYNET_UNSAFE_FAIL_APPLY_TEST_HEIGHT=N: the decided block at height N "does not apply" (as if this
  node's state had diverged from the network's). The node must halt, blame no peer, and stay halted.
- PAYNET_UNSAFE_FAIL_WAL_TEST_AFTER=N: the N-th and every later consensus WAL append fails (a full or
  broken disk). The node must halt and never send a message it could not log first.
- PAYNET_UNSAFE_SIGNER_AMNESIA_TEST=1: the double-sign guard forgets everything at each start (its state
  is kept in memory, recent blocks are not scanned): what a validator was before the guard existed. Only
  for showing that tests/integration/test_double_sign_guard.py catches a validator that double-signs.
"""

from __future__ import annotations


from chain.unsafe_env import unsafe_int_env

FAIL_APPLY_ENV = "PAYNET_UNSAFE_FAIL_APPLY_TEST_HEIGHT"
FAIL_WAL_ENV = "PAYNET_UNSAFE_FAIL_WAL_TEST_AFTER"
SIGNER_AMNESIA_ENV = "PAYNET_UNSAFE_SIGNER_AMNESIA_TEST"


class InjectedFault(RuntimeError):
    """A failure injected by a test-only switch."""


def _int_env(name: str) -> int | None:
    return unsafe_int_env(name, "this node fails on purpose")


class _Switches:
    def __init__(self) -> None:
        self.fail_apply_height: int | None = None
        self.fail_wal_after: int | None = None
        self.wal_appends = 0
        self.signer_amnesia = False

    def load(self) -> None:
        self.fail_apply_height = _int_env(FAIL_APPLY_ENV)
        self.fail_wal_after = _int_env(FAIL_WAL_ENV)
        self.signer_amnesia = bool(_int_env(SIGNER_AMNESIA_ENV))
        self.wal_appends = 0


_switches = _Switches()


def load() -> None:
    """Read the switches from the environment (the node calls this once at start)."""
    _switches.load()


def signer_amnesia() -> bool:
    return _switches.signer_amnesia


def check_apply(height: int) -> None:
    if _switches.fail_apply_height == height:
        raise InjectedFault(f"test fault: the decided block at height {height} does not apply ({FAIL_APPLY_ENV})")


def check_wal_write() -> None:
    if _switches.fail_wal_after is None:
        return
    _switches.wal_appends += 1
    if _switches.wal_appends >= _switches.fail_wal_after:
        raise InjectedFault(f"test fault: WAL append {_switches.wal_appends} failed ({FAIL_WAL_ENV})")
