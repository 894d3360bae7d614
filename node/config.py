"""Node configuration: one TOML file in the node home, validated by pydantic at start.

Every option has a default documented here; unknown keys are refused so a typo cannot silently leave a
setting at its default. Relative paths are relative to the node home.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from network.peers import NetworkConfig
from network.sync import SyncConfig
from network.transport import LinkConfig

from custody.config import NodeSignerSection, host_port
from node.api.config import ApiConfig


class ConfigError(Exception):
    """The config file is missing or invalid; the message names the offending field."""


class _Section(BaseModel):
    """Unknown keys are refused (a typo must not leave a setting at its default) and types are strict
    (`listen_port = "27810"` is refused rather than converted: TOML has integers, a quoted one is a mistake)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class NodeSection(_Section):
    name: str = Field("node", min_length=1, max_length=64, description="human name shown to peers and in the explorer")
    genesis_file: str = Field("genesis.json", description="the network's genesis document")
    key_file: str = Field(
        "node_key.json",
        description="encrypted identity keystore (Argon2id + SecretBox), mode 0600; the consensus key too unless "
        "[signer] backend is pkcs11 or remote, then the TLS key only",
    )
    cert_file: str = Field("node.crt", description="this node's TLS certificate, issued by the network CA")
    data_dir: str = Field("data", description="LevelDB chain store and consensus WAL")
    signer_state_file: str = Field(
        "signer_state.json",
        description="double-sign guard: the last (height, round, step) this validator signed; kept beside the key, "
        "outside data_dir, never replaced by a restore",
    )
    passphrase_file: str = Field("", description="file holding the key passphrase (mode 0600); else the env var")
    passphrase_env: str = Field("PAYNET_NODE_PASSPHRASE", description="env var holding the key passphrase")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")


class P2PSection(_Section):
    listen_host: str = Field("127.0.0.1", description="address the peer listener binds")
    listen_port: int = Field(26656, ge=1, le=65535)
    peers: list[str] = Field(default_factory=list, description="host:port of peers to dial")
    observers: list[str] = Field(default_factory=list, description="hex Ed25519 keys of non-validator peers allowed")
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024, description="largest frame accepted from a peer")
    send_queue_len: int = Field(4096, ge=16, description="frames queued per peer before gossip is dropped")
    max_inbound: int = Field(64, ge=1, description="established (authenticated) inbound peer links")
    max_handshakes: int = Field(
        32, ge=1, description="inbound TLS handshakes in progress at once (a pool apart from established links)"
    )
    max_handshakes_per_ip: int = Field(4, ge=1, description="inbound handshakes in progress from one address")
    handshake_timeout_ms: int = Field(
        3000, ge=100, description="an inbound connection must finish TLS and HELLO within this, or it is dropped"
    )
    inbox_bytes: int = Field(
        64 * 1024 * 1024, ge=1024 * 1024, description="bytes of received messages waiting for the node"
    )
    sync_batch: int = Field(32, ge=1, le=64, description="blocks asked for in one block-sync request")
    sync_request_timeout_ms: int = Field(
        3000, ge=100, description="a peer that does not answer a block request within this is penalised and backed off"
    )

    @field_validator("peers")
    @classmethod
    def _peers(cls, v: list[str]) -> list[str]:
        return [host_port(p) for p in v]

    def network_config(self) -> NetworkConfig:
        """The peer manager's settings from this section (one place maps config names to network ones)."""
        return NetworkConfig(
            listen_host=self.listen_host,
            listen_port=self.listen_port,
            peers=tuple((h, int(p)) for h, _, p in (a.rpartition(":") for a in self.peers)),
            link=LinkConfig(max_frame=self.max_frame_bytes, send_queue_items=self.send_queue_len),
            max_inbound=self.max_inbound,
            max_handshakes=self.max_handshakes,
            max_handshakes_per_ip=self.max_handshakes_per_ip,
            inbound_handshake_timeout=self.handshake_timeout_ms / 1000,
            inbox_bytes=self.inbox_bytes,
        )

    def sync_config(self) -> SyncConfig:
        return SyncConfig(batch=self.sync_batch, request_timeout=self.sync_request_timeout_ms / 1000)


class MempoolSection(_Section):
    max_txs: int = Field(50_000, ge=1, description="pool capacity; beyond it submissions get 503 + Retry-After")
    max_per_account: int = Field(1000, ge=1, description="pending txs one account may hold")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_settle_ms: int = Field(
        2000, ge=0, le=600_000,
        description="client submissions get 503 + Retry-After once the pool holds this long of the chain's "
        "throughput, measured over the last 5 s (never fewer than 1,000 txs or one block); 0: only max_txs bounds the pool",
    )
    gossip_batch: int = Field(500, ge=1, description="txs per gossip frame")
    gossip_interval_ms: int = Field(20, ge=1, description="how long new txs wait to be batched before gossip")
    queued_per_account: int = Field(512, ge=0, description="future-nonce txs one account may have waiting for a gap")
    queued_max_distance: int = Field(1024, ge=0, description="how far ahead of the next nonce a queued tx may be")
    queued_max_txs: int = Field(20_000, ge=0, description="future-nonce txs waiting across all accounts")
    queued_timeout_ms: int = Field(30_000, ge=1, description="a queued tx whose gap is not filled by then is dropped")


class ConsensusSection(_Section):
    timeout_propose_ms: int = Field(3000, ge=10)
    timeout_prevote_ms: int = Field(1000, ge=10)
    timeout_precommit_ms: int = Field(1000, ge=10)
    timeout_delta_ms: int = Field(500, ge=0, description="added per round to every timeout")
    max_block_txs: int = Field(5000, ge=1, le=20_000)
    create_empty_blocks: bool = Field(True, description="propose empty blocks every empty_block_interval_ms")
    empty_block_interval_ms: int = Field(1000, ge=0, description="wait for txs at most this long before an empty block")
    min_block_interval_ms: int = Field(0, ge=0, description="least time between the commit and the next proposal")
    double_sign_check_height: int = Field(
        10, ge=0, le=10_000,
        description="at start, look for own precommits in this many recent blocks; one above the signer state's "
        "last height makes the node refuse to sign up to the next height",
    )


class StorageSection(_Section):
    state_versions_kept: int = Field(
        1000, ge=2, le=10_000_000,
        description="recent heights whose state tree is kept, so state proofs can be served for them; older "
        "tree nodes are pruned a bounded amount per block (chain/store.py)",
    )


class NodeConfig(_Section):
    node: NodeSection = Field(default_factory=NodeSection)
    p2p: P2PSection = Field(default_factory=P2PSection)
    api: ApiConfig = Field(default_factory=ApiConfig)
    mempool: MempoolSection = Field(default_factory=MempoolSection)
    consensus: ConsensusSection = Field(default_factory=ConsensusSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    signer: NodeSignerSection = Field(default_factory=NodeSignerSection)

    home: Path = Field(Path("."), exclude=True)

    @classmethod
    def model_fields_set_names(cls) -> list[str]:
        """The config file's section names ([node], [p2p], ...), for error messages."""
        return [name for name, f in cls.model_fields.items() if not f.exclude]

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.home / p

    @classmethod
    def load(cls, home: str | Path) -> "NodeConfig":
        home = Path(home)
        file = home / "config.toml"
        try:
            raw = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no config at {file}; run `paynet-node init --home {home}`") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        try:
            cfg = cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError("; ".join(describe_error(file, err) for err in exc.errors())) from None
        cfg.home = home
        return cfg

    def to_toml(self) -> str:
        return dump_toml(self.model_dump(exclude={"home"}))


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a quoted string",
    "list_type": "a list",
    "model_type": "a table",
    "dict_type": "a table",
}
_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}


def describe_error(file: Path, err: Any) -> str:
    """One pydantic error as an operator reads it: the file, the [section], the key, and what is allowed.

    pydantic's own wording ("Extra inputs are not permitted", "Input should be a valid integer") names
    neither the section nor the keys that do exist, which is what someone fixing a typo needs."""
    loc = [str(p) for p in err["loc"]]
    kind = err["type"]
    if kind == "extra_forbidden" and len(loc) == 1:
        allowed = ", ".join(NodeConfig.model_fields_set_names())
        return f"{file}: unknown section [{loc[0]}]{_did_you_mean(loc[0], NodeConfig.model_fields_set_names())}; allowed: {allowed}"
    where = f"{file} [{loc[0]}]" if loc else str(file)
    if kind == "extra_forbidden":
        section = NodeConfig.model_fields[loc[0]].annotation
        names = list(section.model_fields) if section else []  # type: ignore[union-attr]
        return f'{where}: unknown key "{loc[-1]}"{_did_you_mean(loc[-1], names)}; allowed: {", ".join(names)}'
    key = ".".join(loc[1:])
    subject = f"{where} {key}" if key else where
    given = err.get("input")
    if kind in _EXPECTED:
        got = _TOML_TYPES.get(type(given), type(given).__name__)
        return f"{subject}: expected {_EXPECTED[kind]}, got {_shown(given)} ({got})"
    return f"{subject}: {err['msg'][0].lower()}{err['msg'][1:]} (got {_shown(given)})"


def _shown(value: Any) -> str:
    """A value as it would appear in TOML (strings in double quotes), so the message quotes the file."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _did_you_mean(word: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, names, n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(sections: dict[str, dict[str, Any]]) -> str:
    """Write a two-level dict (sections of scalars and lists) as TOML, with each field's description as a comment."""
    out: list[str] = []
    for section, values in sections.items():
        model = NodeConfig.model_fields[section].annotation
        out.append(f"[{section}]")
        for key, value in values.items():
            desc = model.model_fields[key].description if model else None  # type: ignore[union-attr]
            if desc:
                out.append(f"# {desc}")
            out.append(f"{key} = {_toml_value(value)}")
        out.append("")
    return "\n".join(out)
