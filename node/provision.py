"""Setting up a network: node homes, the network CA, node certificates and the genesis file.

The same functions back `paynet-node init / ca / genesis` and `scripts/testnet.py`, so a local testnet
is made exactly the way operators make a real one (each step on the machine that owns the secret).
"""

from __future__ import annotations

import os
from pathlib import Path

from chain import crypto
from chain.genesis import Genesis, GenesisAsset, GenesisBalance, GenesisValidator
from chain.keystore import check_private_permissions, load_key, read_info, save_key, write_private_file
from network import pki
from node.config import NodeConfig

CA_CERT = "ca.crt"
CA_KEY = "ca_key.pem"


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
    save_key(home / cfg.node.key_file, key, passphrase, name)
    config_file.write_text(NodeConfig.model_validate(cfg.model_dump()).to_toml())
    return key.public_key


def node_pubkey(home: Path) -> bytes:
    cfg = NodeConfig.load(home)
    return read_info(cfg.path(cfg.node.key_file)).public_key


def create_ca(ca_dir: Path, passphrase: str, name: str = "paynet network CA") -> bytes:
    """Create the network CA (key encrypted with `passphrase`, mode 0600). Returns the CA cert PEM."""
    if len(passphrase) < 8:
        raise ValueError("CA passphrase must be at least 8 characters")
    ca_dir.mkdir(parents=True, exist_ok=True)
    key, cert_pem = pki.create_ca(name)
    write_private_file(ca_dir / CA_KEY, pki.encrypt_private_key(key, passphrase.encode()))
    (ca_dir / CA_CERT).write_bytes(cert_pem)
    return cert_pem


def issue_cert(ca_dir: Path, passphrase: str, pubkey: bytes, name: str) -> bytes:
    check_private_permissions(ca_dir / CA_KEY)
    ca_key = pki.load_private_key((ca_dir / CA_KEY).read_bytes(), passphrase.encode())
    return pki.issue_node_cert(ca_key, (ca_dir / CA_CERT).read_bytes(), pubkey, name)


def make_genesis(
    *,
    chain_id: str,
    genesis_time_ms: int,
    validators: list[tuple[str, bytes, int]],
    ca_cert_pem: bytes,
    admins: list[bytes] = (),  # type: ignore[assignment]
    assets: list[tuple[str, bytes, int]] = (),  # type: ignore[assignment]
    balances: list[tuple[bytes, str, int]] = (),  # type: ignore[assignment]
) -> Genesis:
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=genesis_time_ms,
        validators=[GenesisValidator(name=n, pubkey=pk.hex(), power=p) for n, pk, p in validators],
        admins=[a.hex() for a in admins],
        assets=[GenesisAsset(id=a, issuer=crypto.format_address(i), decimals=d) for a, i, d in assets],
        balances=[GenesisBalance(address=crypto.format_address(a), asset=s, amount=v) for a, s, v in balances],
        network_ca_cert_pem=ca_cert_pem.decode(),
    )


def unlock_node_key(config: NodeConfig) -> crypto.PrivateKey:
    """Decrypt the identity key with the passphrase from the configured file or env var."""
    from chain.keystore import KeystoreError, passphrase_from

    key_path = config.path(config.node.key_file)
    check_private_permissions(key_path)
    pw_file = config.path(config.node.passphrase_file) if config.node.passphrase_file else None
    passphrase = passphrase_from(config.node.passphrase_env, pw_file)
    if passphrase is None:
        raise KeystoreError(
            f"no passphrase: set {config.node.passphrase_env} or node.passphrase_file in config.toml"
        )
    return load_key(key_path, passphrase)
