"""node/upgrade.py: the halt rule at a scheduled protocol version, and the test-only version injection."""

from __future__ import annotations

import pytest

from chain.governance import Upgrade
from node.upgrade import EXTRA_VERSION_TEST_ENV, supported_versions, upgrade_halt_reason


def test_halts_exactly_from_the_activation_height_when_the_version_is_missing() -> None:
    up = Upgrade(active=1, next=2, height=50)
    assert upgrade_halt_reason(up, 49, frozenset({1})) is None
    reason = upgrade_halt_reason(up, 50, frozenset({1}))
    assert reason is not None and "protocol version 2 is active at height 50" in reason
    assert "install a paynet release that supports protocol version 2" in reason
    assert upgrade_halt_reason(up, 51, frozenset({1})) is not None
    assert upgrade_halt_reason(up, 50, frozenset({1, 2})) is None
    assert upgrade_halt_reason(Upgrade(), 10**9, frozenset({1})) is None


def test_the_extra_version_is_test_mode_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXTRA_VERSION_TEST_ENV, raising=False)
    assert supported_versions() == frozenset({1})
    monkeypatch.setenv(EXTRA_VERSION_TEST_ENV, "2")
    assert supported_versions() == frozenset({1, 2})
