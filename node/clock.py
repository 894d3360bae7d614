"""The node's wall clock, with a TEST ONLY offset so tests can skew or jump one validator's clock.

Block times and the "not too far in the future" rule read the wall clock through `Clock.now_ms()`.
In production the offset is always 0. A test may set PAYNET_UNSAFE_CLOCK_TEST_FILE to a file holding
an offset in milliseconds (e.g. "-15000"); the node re-reads it when it changes (checked at most
every 100 ms), so a test can jump the clock forward or back while the node runs. Logged at CRITICAL.
Timers (asyncio's monotonic clock) are not affected: a wall-clock jump must not break timeouts.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("paynet.clock")

CLOCK_FILE_ENV = "PAYNET_UNSAFE_CLOCK_TEST_FILE"
_RECHECK_S = 0.1


class Clock:
    """Wall clock in milliseconds since the epoch, plus the test-only offset (0 unless switched on)."""

    def __init__(self, offset_file: str | None = None) -> None:
        self._file = Path(offset_file) if offset_file else None
        self._offset_ms = 0
        self._checked = 0.0
        self._mtime: float | None = None
        if self._file is not None:
            log.critical("UNSAFE test clock: wall-clock offset read from %s (%s)", self._file, CLOCK_FILE_ENV)
            self._reload()

    @classmethod
    def from_env(cls) -> "Clock":
        return cls(os.environ.get(CLOCK_FILE_ENV) or None)

    @property
    def offset_ms(self) -> int:
        return self._offset_ms

    def now_ms(self) -> int:
        if self._file is not None and time.monotonic() - self._checked >= _RECHECK_S:
            self._reload()
        return int(time.time() * 1000) + self._offset_ms

    def _reload(self) -> None:
        assert self._file is not None
        self._checked = time.monotonic()
        try:
            mtime = self._file.stat().st_mtime
            if mtime == self._mtime:
                return
            offset = int(self._file.read_text().strip() or "0")
        except (OSError, ValueError):
            return  # keep the last good offset: a test writing the file must not crash the node
        self._mtime = mtime
        if offset != self._offset_ms:
            log.critical("UNSAFE test clock: wall-clock offset now %+d ms", offset)
            self._offset_ms = offset
