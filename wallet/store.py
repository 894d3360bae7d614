"""The wallet home directory: config (nodes, chain id, pinned validator set) and keystores.

Layout of a home (default ~/.paynet-wallet, or $PAYNET_WALLET_HOME, or --home):
    config.json          node URLs, chain id, genesis hash, the validator set pinned at init
    lightclient.json     headers the light client verified since (wallet/lightclient.py), nodes caught lying
    keys/<name>.json     one chain.keystore file per key (Argon2id + XSalsa20-Poly1305, mode 0600)
The pinned validator set is the wallet's root of trust for receipts, so it is written once at init
(from a genesis file, or explicitly trusted from a node) and never silently replaced.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chain import crypto, keystore
from chain.genesis import Genesis
from chain.validators import ValidatorSet

from wallet import hsm
from wallet.errors import UsageError, WalletError
from wallet.lightclient import TrustState

HOME_ENV = "PAYNET_WALLET_HOME"
DEFAULT_HOME = Path("~/.paynet-wallet")
CONFIG_FILE = "config.json"
LIGHT_CLIENT_FILE = "lightclient.json"
KEYS_DIR = "keys"
CONFIG_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


@contextmanager
def _keystore_errors(name: str) -> Iterator[None]:
    """Keystore failures as wallet errors (one line, exit 1); a wrong passphrase names the key, not its path."""
    try:
        yield
    except keystore.WrongPassphrase:
        raise WalletError(f"wrong passphrase for key {name!r}") from None
    except keystore.KeystoreError as e:
        raise WalletError(str(e)) from None


def check_key_name(name: str) -> str:
    """Key names become file names: allow only a safe alphabet (no path separators, no dot files)."""
    if not _NAME.fullmatch(name) or name.startswith("pn") and _looks_like_address(name):
        raise UsageError(
            f"bad key name {name!r}: use 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit),"
            " and not an address"
        )
    return name


def _looks_like_address(text: str) -> bool:
    try:
        crypto.parse_address(text)
        return True
    except ValueError:
        return False


def check_node_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"bad node URL {url!r}: expected http(s)://host:port")
    return url.rstrip("/")


class PinnedValidator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    pubkey: str = Field(pattern=r"^[0-9a-f]{64}$")
    power: int = Field(ge=1)


class WalletConfig(BaseModel):
    """What the wallet trusts and where it talks. `pinned_from` records how the set was obtained."""

    model_config = ConfigDict(extra="forbid")
    version: int = CONFIG_VERSION
    nodes: list[str] = Field(min_length=1)
    chain_id: str = Field(min_length=1)
    genesis_hash: str | None = None
    validators: list[PinnedValidator] = Field(min_length=1)
    pinned_from: str = Field(description="'genesis-file:<path>' or 'node:<url>' (trust on first use)")

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, v: list[str]) -> list[str]:
        return [check_node_url(u) for u in v]

    def validator_set(self) -> ValidatorSet:
        return ValidatorSet.from_pairs([(bytes.fromhex(v.pubkey), v.power) for v in self.validators])

    @classmethod
    def from_genesis(cls, genesis: Genesis, nodes: list[str], source: str) -> "WalletConfig":
        return cls(
            nodes=nodes,
            chain_id=genesis.chain_id,
            genesis_hash=genesis.hash.hex(),
            validators=[PinnedValidator(name=v.name, pubkey=v.pubkey, power=v.power) for v in genesis.validators],
            pinned_from=source,
        )


class WalletHome:
    """A wallet directory. Methods do the file I/O; nothing here talks to the network."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def keys_dir(self) -> Path:
        return self.root / KEYS_DIR

    def ensure(self) -> None:
        """Create the home and keys dir private to the user (keystores are offline-guessable)."""
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.chmod(self.keys_dir, 0o700)

    # -- config -----------------------------------------------------------------------------------------

    def has_config(self) -> bool:
        return self.config_path.exists()

    def load_config(self) -> WalletConfig:
        try:
            text = self.config_path.read_text()
        except FileNotFoundError:
            raise WalletError(
                f"no wallet config at {self.config_path}; run `paynet-wallet init --node URL --genesis FILE` first"
            ) from None
        try:
            return WalletConfig.model_validate_json(text)
        except ValidationError as e:
            raise WalletError(f"{self.config_path} is not a valid wallet config: {e.errors()[0]['msg']}") from None

    def save_config(self, config: WalletConfig, *, overwrite: bool = False) -> None:
        self.ensure()
        if self.config_path.exists() and not overwrite:
            raise WalletError(f"{self.config_path} exists; pass --force to re-pin the validator set")
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config.model_dump(), indent=2) + "\n")
        os.replace(tmp, self.config_path)

    # -- light client trust state (wallet/lightclient.py) ----------------------------------------------

    @property
    def light_client_path(self) -> Path:
        return self.root / LIGHT_CLIENT_FILE

    def load_trust(self, config: WalletConfig) -> TrustState:
        """The light client's verified headers, or a fresh state rooted at the pinned genesis set.

        A state for another chain or another pinned set (the config was re-pinned with --force) starts
        over from the new pin: trust never carries across a re-pin. A damaged file is an error, never
        silently replaced (it may hold the evidence that a node lied)."""
        fresh = TrustState.from_genesis_set(config.chain_id, config.validator_set())
        try:
            text = self.light_client_path.read_text()
        except FileNotFoundError:
            return fresh
        try:
            state = TrustState.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError) as e:
            raise WalletError(f"{self.light_client_path} is damaged ({e}); move it away to start again from genesis")
        if state.chain_id != config.chain_id or state.root.validators.hash != fresh.root.validators.hash:
            return fresh
        return state

    def save_trust(self, state: TrustState) -> None:
        """Atomic: write a temporary file, fsync, rename over the old one, fsync the directory. A crash
        leaves the old or the new state, never a torn one."""
        self.ensure()
        tmp = self.light_client_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(state.to_json(), indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.light_client_path)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- keys -------------------------------------------------------------------------------------------

    def key_path(self, name: str) -> Path:
        return self.keys_dir / f"{check_key_name(name)}.json"

    def list_keys(self) -> list[keystore.KeystoreInfo]:
        if not self.keys_dir.exists():
            return []
        out = []
        for p in sorted(self.keys_dir.glob("*.json")):
            try:
                info = hsm.ref_info(p) if hsm.is_ref(p) else keystore.read_info(p)
            except (keystore.KeystoreError, WalletError):
                continue  # not ours or damaged; `list` must still work
            out.append(keystore.KeystoreInfo(p.stem, info.public_key, p))
        return out

    def key_info(self, name: str) -> keystore.KeystoreInfo:
        path = self.key_path(name)
        if not path.exists():
            raise UsageError(f"no key named {name!r} in {self.keys_dir}")
        if hsm.is_ref(path):
            return keystore.KeystoreInfo(name, hsm.ref_info(path).public_key, path)
        try:
            info = keystore.read_info(path)
        except keystore.KeystoreError as e:
            raise WalletError(str(e)) from None
        return keystore.KeystoreInfo(name, info.public_key, path)

    def save_key(self, name: str, key: crypto.PrivateKey, passphrase: str) -> keystore.KeystoreInfo:
        self.ensure()
        path = self.key_path(name)
        if path.exists():
            raise UsageError(f"a key named {name!r} already exists")
        try:
            keystore.save_key(path, key, passphrase, name)
        except keystore.KeystoreError as e:
            raise WalletError(str(e)) from None
        return keystore.KeystoreInfo(name, key.public_key, path)

    def unlock(self, name: str, passphrase: str) -> crypto.PrivateKey:
        info = self.key_info(name)
        with _keystore_errors(name):
            return keystore.load_key(info.path, passphrase)

    def change_passphrase(self, name: str, old: str, new: str) -> keystore.KeystoreInfo:
        """Re-encrypt key `name` under `new` (same key, same address; fresh salt; atomic replace, 0600)."""
        info = self.key_info(name)
        with _keystore_errors(name):
            keystore.change_passphrase(info.path, old, new)
        return info

    def signing_key(self, name: str, passphrase: Callable[[], str]) -> "crypto.PrivateKey | hsm.Pkcs11Key":
        """What signs for account `name`: its token key (an `import-hsm` reference; no passphrase asked)
        or its keystore, unlocked with `passphrase()`."""
        info = self.key_info(name)
        if hsm.is_ref(info.path):
            return hsm.open_ref(info.path)
        return self.unlock(name, passphrase())

    def resolve_address(self, name_or_address: str) -> bytes:
        """An address as given (pn + 40 hex), or the address of a key in this wallet."""
        if name_or_address.startswith(crypto.ADDRESS_PREFIX) and _looks_like_address(name_or_address):
            return crypto.parse_address(name_or_address)
        if name_or_address.startswith(crypto.ADDRESS_PREFIX) and not self._has_key(name_or_address):
            # "pnXYZ" is a mistyped address far more often than a missing key: say so.
            raise UsageError(
                f"malformed address {name_or_address!r}: expected {crypto.ADDRESS_PREFIX} followed by 40 hex digits"
                " (or the name of a key in this wallet)"
            )
        return self.key_info(name_or_address).address

    def _has_key(self, name: str) -> bool:
        try:
            return self.key_path(name).exists()
        except UsageError:  # not even a valid key name
            return False
