"""Where a consensus key lives: the `[signer]` section of a node's config.toml and the config of a
`paynet-signer` process. Both are strict pydantic models: unknown keys and wrong types are refused."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from custody.pkcs11_key import DEFAULT_LIBRARY


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


class Pkcs11Source(_Strict):
    """A key in a PKCS#11 token, found by token label and key label; the PIN from a file or env var."""

    pkcs11_library: str = Field(DEFAULT_LIBRARY, description="the token's Cryptoki library (.so)")
    token_label: str = Field("", max_length=32, description="PKCS#11 token label (pkcs11 backend)")
    key_label: str = Field("", max_length=128, description="label of the Ed25519 key pair in the token (pkcs11 backend)")
    pin_file: str = Field("", description="file holding the token user PIN (mode 0600); else the env var")
    pin_env: str = Field("PAYNET_HSM_PIN", description="env var holding the token user PIN")

    def check_pkcs11(self, where: str) -> None:
        if not self.token_label or not self.key_label:
            raise ValueError(f"{where}: backend pkcs11 needs token_label and key_label")


class NodeSignerSection(Pkcs11Source):
    """`[signer]` of a node: how its consensus votes and proposals are signed. The node's TLS key stays
    the `key_file`; with pkcs11 or remote the node certificate must bind it to the consensus key."""

    backend: Literal["file", "pkcs11", "remote"] = Field(
        "file", description="file: key_file is the consensus key (default); pkcs11: a token key, guard state "
        "in signer_state_file; remote: a paynet-signer process holds key and guard"
    )
    remote_address: str = Field("", description="host:port of the paynet-signer (remote backend)")
    remote_timeout_ms: int = Field(
        1000, ge=50, le=60_000,
        description="a signer that does not answer within this on an open connection is down (that one wait "
        "blocks the node's event loop; connecting never does): keep it short, a signature takes milliseconds",
    )
    remote_retry_ms: int = Field(
        500, ge=50, le=60_000,
        description="while the signer is unreachable, a background thread tries to reconnect this often "
        "(doubling to 8x while it stays down)",
    )

    @field_validator("remote_address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return host_port(v) if v else v

    def check(self) -> None:
        if self.backend == "pkcs11":
            self.check_pkcs11("[signer]")
        if self.backend == "remote" and not self.remote_address:
            raise ValueError("[signer]: backend remote needs remote_address")


class SignerDaemonConfig(Pkcs11Source):
    """The `paynet-signer` config file (TOML, one table `[signer]`). Relative paths are relative to its home."""

    listen: str = Field("127.0.0.1:26659", description="host:port the signer listens on (mutual TLS)")
    backend: Literal["file", "pkcs11"] = Field("pkcs11", description="where the consensus key lives")
    key_file: str = Field("consensus_key.json", description="encrypted consensus keystore (file backend)")
    tls_key_file: str = Field("signer_tls_key.json", description="encrypted keystore of the signer's TLS key")
    tls_cert_file: str = Field("signer.crt", description="the signer's TLS certificate, issued by the network CA")
    ca_cert_file: str = Field("network_ca.crt", description="the network CA certificate (verifies node certificates)")
    passphrase_file: str = Field("", description="file with the keystores' passphrase (mode 0600); else the env var")
    passphrase_env: str = Field("PAYNET_SIGNER_PASSPHRASE", description="env var with the keystores' passphrase")
    state_file: str = Field("signer_state.json", description="the double-sign guard's state (authoritative)")
    allowed_node_keys: list[str] = Field(
        default_factory=list, description="hex TLS public keys of the nodes allowed to ask for signatures"
    )
    max_connections: int = Field(4, ge=1, le=64, description="connections served at once")
    home: Path = Field(Path("."), exclude=True)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return host_port(v)

    @field_validator("allowed_node_keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        for k in v:
            if len(k) != 64 or any(c not in "0123456789abcdef" for c in k):
                raise ValueError(f"allowed_node_keys: {k!r} is not a 64-hex-digit Ed25519 key")
        return v

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.home / p

    @classmethod
    def load(cls, file: Path) -> "SignerDaemonConfig":
        try:
            raw = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ValueError(f"no signer config at {file}; run `paynet-signer init`") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{file}: not valid TOML: {exc}") from None
        if set(raw) != {"signer"}:
            raise ValueError(f"{file}: expected exactly one table [signer], found {sorted(raw)}")
        try:
            cfg = cls.model_validate({**raw["signer"], "home": file.parent})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{file}: [signer] {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        if cfg.backend == "pkcs11":
            cfg.check_pkcs11(str(file))
        if not cfg.allowed_node_keys:
            raise ValueError(f"{file}: allowed_node_keys is empty: no node could use this signer")
        return cfg
