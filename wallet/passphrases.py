"""Where the wallet's passphrases come from: an environment variable (scripts, tests) or a hidden prompt.

Each variable is taken out of the process environment once read (chain.keystore.take_env_secret), so it
is neither inherited by children nor left in /proc/PID/environ. With neither a variable nor a terminal
the command fails at once (exit 2) instead of blocking on a prompt nobody sees.
"""

from __future__ import annotations

import click

from chain.keystore import take_env_secret
from wallet.messages import NEW_PASSPHRASE_ENV, PASSPHRASE_ENV, PassphraseUnavailable, terminal_available


def current_passphrase(confirm: bool = False) -> str:
    """The key's passphrase: $PAYNET_WALLET_PASSPHRASE, else a hidden prompt (`confirm`: typed twice)."""
    return _read(PASSPHRASE_ENV, "Passphrase", confirm)


def new_passphrase() -> str:
    """`passwd`'s new passphrase: $PAYNET_WALLET_NEW_PASSPHRASE, else typed twice at a hidden prompt."""
    return _read(NEW_PASSPHRASE_ENV, "New passphrase", True)


def _read(env_var: str, prompt: str, confirm: bool) -> str:
    env = take_env_secret(env_var)
    if env is not None:
        return env
    if not terminal_available():  # getpass would warn, read nothing, and click would say "Aborted!"
        raise PassphraseUnavailable(env_var)
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True))
