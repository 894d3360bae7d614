"""Setting up a network: node homes, the network CA, node certificates and the genesis file.

The same functions back `paynet-node init / ca / genesis` and `scripts/testnet.py`, so a local testnet
is made exactly the way operators make a real one (each step on the machine that owns the secret).

Key protection: the node identity key and the network CA key are keystore files (chain.keystore) with
Argon2id SENSITIVE limits (4 passes over 1 GiB: ~4.5 s and 1 GiB of memory per unlock here), and a
node refuses to unlock a weaker one (`paynet-node rekey` raises an old file in place). Tests and local
testnets set the test-only switch PAYNET_UNSAFE_WEAK_KDF_TEST_MODE=1 to use libsodium's minimum limits
instead (dozens of keys, made and unlocked in milliseconds); it is logged CRITICAL, and a node started
without it refuses those keys, so a key made in test mode cannot slip into production unnoticed.
"""

from __future__ import annotations

import json

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chain import crypto
from chain.genesis import Genesis, GenesisAsset, GenesisBalance, GenesisMember, GenesisValidator
from chain.keystore import (
    TEST_ONLY_KDF,
    VALIDATOR_KDF,
    KdfLimits,
    KeystoreError,
    WeakKdf,
    check_private_permissions,
    fsync_dir,
    kdf_limits,
    load_key,
    read_info,
    replace_private_file,
    save_key,
    seal_key,
)
from network import pki
from node.config import NodeConfig

log = logging.getLogger("paynet.provision")

CA_CERT = "ca.crt"
CA_KEY = "ca_key.json"
LEGACY_CA_KEY = "ca_key.pem"  # before issue 13: PKCS#8 PEM under PBKDF2-SHA256, 2048 iterations
WEAK_KDF_TEST_ENV = "PAYNET_UNSAFE_WEAK_KDF_TEST_MODE"
_warned_test_mode = False


def weak_kdf_test_mode() -> bool:
    """Whether the test-only switch is on (logged CRITICAL once per process when it is)."""
    global _warned_test_mode
    on = os.environ.get(WEAK_KDF_TEST_ENV, "").strip() not in ("", "0")
    if on and not _warned_test_mode:
        _warned_test_mode = True
        log.critical(
            "UNSAFE test switch %s is on: validator and CA keys use Argon2id %s, which anyone holding the file "
            "can guess through in seconds; never set it outside tests and local testnets", WEAK_KDF_TEST_ENV,
            TEST_ONLY_KDF,
        )
    return on


def node_key_kdf() -> KdfLimits:
    """The class new node and CA keys are written with."""
    return TEST_ONLY_KDF if weak_kdf_test_mode() else VALIDATOR_KDF


def node_key_floor() -> KdfLimits:
    """The weakest node or CA key file that is unlocked."""
    return TEST_ONLY_KDF if weak_kdf_test_mode() else VALIDATOR_KDF


def init_home(
    home: Path,
    *,
    name: str,
    passphrase: str,
    p2p_host: str = "127.0.0.1",
    p2p_port: int = 26656,
    api_host: str = "127.0.0.1",
    api_port: int = 8080,
    peers: list[str] | None = None,
) -> bytes:
    """Create a node home: config.toml with defaults and an encrypted identity key. Returns the public key."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    cfg = NodeConfig()
    cfg.node.name = name
    cfg.p2p.listen_host, cfg.p2p.listen_port, cfg.p2p.peers = p2p_host, p2p_port, list(peers or [])
    cfg.api.host, cfg.api.port = api_host, api_port
    config_file = home / "config.toml"
    if config_file.exists():
        raise FileExistsError(f"{config_file} exists; refusing to overwrite a node home")
    key = crypto.PrivateKey.generate()
    save_key(home / cfg.node.key_file, key, passphrase, name, kdf=node_key_kdf())
    config_file.write_text(NodeConfig.model_validate(cfg.model_dump()).to_toml())
    return key.public_key


def node_pubkey(home: Path) -> bytes:
    cfg = NodeConfig.load(home)
    return read_info(cfg.path(cfg.node.key_file)).public_key


def _seed_of(key: Ed25519PrivateKey) -> crypto.PrivateKey:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return crypto.PrivateKey(raw)


def create_ca(ca_dir: Path, passphrase: str, name: str = "paynet network CA") -> bytes:
    """Create the network CA (key in a keystore file at the validator class, mode 0600). Returns the cert PEM."""
    if len(passphrase) < 8:
        raise ValueError("CA passphrase must be at least 8 characters")
    ca_dir.mkdir(parents=True, exist_ok=True)
    for existing in (CA_KEY, LEGACY_CA_KEY):
        if (ca_dir / existing).exists():
            raise KeystoreError(f"{ca_dir / existing} exists; refusing to replace a network CA")
    key, cert_pem = pki.create_ca(name)
    save_key(ca_dir / CA_KEY, _seed_of(key), passphrase, name, kdf=node_key_kdf())
    (ca_dir / CA_CERT).write_bytes(cert_pem)
    return cert_pem


def load_ca_key(ca_dir: Path, passphrase: str) -> Ed25519PrivateKey:
    """Unlock the CA key; an old PEM key or a keystore below the validator class is refused with the fix."""
    path = ca_dir / CA_KEY
    if not path.exists() and (ca_dir / LEGACY_CA_KEY).exists():
        raise KeystoreError(
            f"{ca_dir / LEGACY_CA_KEY} is the old CA key format (PKCS#8 under PBKDF2, 2048 iterations): "
            f"convert it with `paynet-node ca rekey --dir {ca_dir}` (same key, Argon2id {VALIDATOR_KDF})"
        )
    try:
        key = load_key(path, passphrase, min_kdf=node_key_floor())
    except WeakKdf as exc:
        raise KeystoreError(
            f"CA key {path} is protected by Argon2id {exc.found}, below the validator minimum ({exc.required}): "
            f"re-encrypt it with `paynet-node ca rekey --dir {ca_dir}`"
        ) from None
    return Ed25519PrivateKey.from_private_bytes(key.seed)


def read_binding(path: Path, tls_pubkey: bytes) -> tuple[bytes, bytes]:
    """(consensus key, binding signature) from a `bind-tls` JSON file made for `tls_pubkey`."""
    try:
        doc = json.loads(path.read_text())
        tls, consensus, sig = (bytes.fromhex(doc[k]) for k in ("tls_pubkey", "consensus_pubkey", "binding"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a bind-tls JSON file ({exc})") from None
    if tls != tls_pubkey:
        raise ValueError(f"{path} binds TLS key {tls.hex()[:16]}..., not --pubkey {tls_pubkey.hex()[:16]}...")
    return consensus, sig


def issue_cert(
    ca_dir: Path, passphrase: str, pubkey: bytes, name: str, binding: tuple[bytes, bytes] | None = None
) -> bytes:
    ca_key = load_ca_key(ca_dir, passphrase)
    return pki.issue_node_cert(ca_key, (ca_dir / CA_CERT).read_bytes(), pubkey, name, consensus_binding=binding)


def rekey_keystore(path: Path, passphrase: str, kdf: KdfLimits) -> None:
    """Re-encrypt the key in `path` under `kdf`, replacing the file atomically; the key itself is unchanged.

    The new file is written beside the old one (0600, fsync'd), read back and compared, then renamed over
    it, so a crash at any point leaves one complete keystore file holding the key.
    """
    current = kdf_limits(path)
    if kdf.weaker_than(current):
        raise KeystoreError(f"{path} is already protected by Argon2id {current}; refusing to weaken it to {kdf}")
    key = load_key(path, passphrase)
    replace_private_file(path, seal_key(key, passphrase, read_info(path).name, kdf))


def rekey_ca(ca_dir: Path, passphrase: str) -> Path:
    """Raise the CA key to the current class: converts an old PEM key (then deletes it), or rekeys a keystore."""
    path, legacy = ca_dir / CA_KEY, ca_dir / LEGACY_CA_KEY
    if path.exists():
        rekey_keystore(path, passphrase, node_key_kdf())
    elif legacy.exists():
        check_private_permissions(legacy)
        key = _seed_of(pki.load_private_key(legacy.read_bytes(), passphrase.encode()))
        replace_private_file(path, seal_key(key, passphrase, "paynet network CA", node_key_kdf()))
        legacy.unlink()  # the weakly protected copy must not outlive the conversion
        fsync_dir(ca_dir)
    else:
        raise KeystoreError(f"no CA key in {ca_dir}")
    return path


def make_genesis(
    *,
    chain_id: str,
    genesis_time_ms: int,
    validators: list[tuple[str, bytes, int]],
    ca_cert_pem: bytes,
    members: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    threshold: int = 1,
    assets: list[tuple[str, bytes, int]] = (),  # type: ignore[assignment]
    balances: list[tuple[bytes, str, int]] = (),  # type: ignore[assignment]
) -> Genesis:
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=genesis_time_ms,
        validators=[GenesisValidator(name=n, pubkey=pk.hex(), power=p) for n, pk, p in validators],
        members=[GenesisMember(name=n, admin_key=k.hex()) for n, k in members],
        threshold=threshold,
        assets=[GenesisAsset(id=a, issuer=crypto.format_address(i), decimals=d) for a, i, d in assets],
        balances=[GenesisBalance(address=crypto.format_address(a), asset=s, amount=v) for a, s, v in balances],
        network_ca_cert_pem=ca_cert_pem.decode(),
    )


def node_passphrase(config: NodeConfig) -> str:
    """The key passphrase from the configured file or env var; the env var is removed from the process."""
    from chain.keystore import passphrase_from

    pw_file = config.path(config.node.passphrase_file) if config.node.passphrase_file else None
    passphrase = passphrase_from(config.node.passphrase_env, pw_file)
    if passphrase is None:
        raise KeystoreError(
            f"no passphrase: set {config.node.passphrase_env} or node.passphrase_file in config.toml"
        )
    return passphrase


def unlock_node_key(config: NodeConfig) -> crypto.PrivateKey:
    """Decrypt the identity key with the passphrase from the configured file or env var.

    A key file below the validator class is refused before any derivation, naming the fix.
    """
    key_path = config.path(config.node.key_file)
    check_private_permissions(key_path)
    passphrase = node_passphrase(config)
    try:
        return load_key(key_path, passphrase, min_kdf=node_key_floor())
    except WeakKdf as exc:
        raise KeystoreError(
            f"validator key {key_path} is protected by Argon2id {exc.found}, below the validator minimum "
            f"({exc.required}): re-encrypt it with `paynet-node rekey --home {config.home}` (same key; needs the "
            "passphrase and ~1 GiB of memory for a few seconds)"
        ) from None
