"""Human sentences the wallet CLI prints, kept out of the CLI so scripts and tests share them.

The CLI only decides where a sentence goes (stdout, stderr, JSON); what it says, and the checks
behind it (is there a terminal to prompt on?), live here.
"""

from __future__ import annotations

import os

from wallet.amounts import describe_shortfall
from wallet.client import ApiError, TxRejected
from wallet.errors import UsageError, WalletError

PASSPHRASE_ENV = "PAYNET_WALLET_PASSPHRASE"
NEW_PASSPHRASE_ENV = "PAYNET_WALLET_NEW_PASSPHRASE"
"""`passwd` in scripts: the new passphrase (the current one stays in PASSPHRASE_ENV)."""


def terminal_available() -> bool:
    """True if a passphrase prompt can reach a person: getpass reads /dev/tty, not stdin, so a piped
    stdin (`... | paynet-wallet import NAME`) can still prompt while a cron job or CI step cannot."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


class PassphraseUnavailable(UsageError):
    """No passphrase in the environment and no terminal to ask on (exit code 2, no prompt attempted)."""

    def __init__(self, env_var: str = PASSPHRASE_ENV) -> None:
        super().__init__(f"no passphrase: set {env_var} (there is no terminal to ask for it)")


def failover_notes(failovers: list[tuple[str, str]], used: str | None) -> list[str]:
    """One line per node that did not answer and was skipped: 'node URL unreachable (why), used URL'.

    The client records each failed attempt; a node tried twice is reported once (its last reason), and
    the node that finally answered is never reported as unreachable."""
    last: dict[str, str] = {}
    for url, reason in failovers:
        last[url] = reason
    last.pop(used or "", None)
    tail = f", used {used}" if used else ""
    return [f"node {url} unreachable ({reason}){tail}" for url, reason in last.items()]


class InsufficientFunds(WalletError):
    """The node refused a payment for lack of funds; the message is in the asset's units.

    `exit_code` is the refusal's: 1 when the node refused the submission, 4 when an accepted tx was
    later rejected (like TxRejected)."""

    def __init__(self, shortfall: str, where: str, exit_code: int) -> None:
        super().__init__(f"insufficient funds: {shortfall} ({where})")
        self.exit_code = exit_code


def in_asset_units(error: WalletError, asset: str, decimals: int) -> WalletError:
    """An insufficient_funds refusal (submission answer or later rejection) restated in the asset's
    units, as the user typed the amount; any other error unchanged."""
    if isinstance(error, ApiError) and error.code == "insufficient_funds":
        text, where, code = error.message, f"HTTP {error.status} from {error.url}", error.exit_code
    elif isinstance(error, TxRejected) and error.code == "insufficient_funds":
        text, where, code = error.message, f"transaction {error.tx_id} rejected", error.exit_code
    else:
        return error
    shortfall = describe_shortfall(text, asset, decimals)
    return error if shortfall is None else InsufficientFunds(shortfall, where, code)

PASSPHRASE_HELP = (f"The key's passphrase comes from ${PASSPHRASE_ENV} if set (read once, then removed from the "
                   "process environment), else from a prompt on the terminal; with neither, exit 2.")
