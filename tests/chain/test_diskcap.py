"""The test-only disk cap: off by default; when on, writes past the cap fail with ENOSPC."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from chain import diskcap


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diskcap, "_read", False)
    monkeypatch.setattr(diskcap, "_cap", None)


def test_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(diskcap.DISK_CAP_ENV, raising=False)
    (tmp_path / "f").write_bytes(b"x" * 1000)
    diskcap.check(tmp_path, 10**9)
    assert diskcap.cap_bytes() is None


def test_writes_past_the_cap_fail_with_enospc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(diskcap.DISK_CAP_ENV, "1500")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(b"x" * 1000)
    diskcap.check(tmp_path, 400)
    with pytest.raises(OSError) as exc:
        diskcap.check(tmp_path, 600)
    assert exc.value.errno == errno.ENOSPC and diskcap.DISK_CAP_ENV in str(exc.value)
