"""Wallet error types: one base class so the CLI can turn every expected failure into a clean
message and exit code, while real bugs still surface as tracebacks."""

from __future__ import annotations


class WalletError(Exception):
    """An expected failure with a message fit for the user (never holds a secret)."""

    exit_code = 1


class UsageError(WalletError):
    """The user asked for something malformed (bad amount, unknown key name...)."""

    exit_code = 2
