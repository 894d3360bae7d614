"""Node backups: a consistent chain-store snapshot plus the files that make a node home, and restore.

Why a control socket: LevelDB lets one process open a database, so while a node runs only that
process can read its store. The node therefore takes the snapshot itself when asked over a unix
socket in its home (`<home>/control.sock`, mode 0600, in a 0700 home, peer uid checked). The HTTP
API is public, so backups are deliberately not an HTTP route. The request is a single line
`backup <absolute dir>`; the answer one line `ok <json>` or `error <message>`. The node runs
`ChainStore.snapshot_to` on its event loop, between two consensus steps, so the copy is one
point-in-time LevelDB snapshot (consensus pauses for the length of the copy; see docs/operations.md).

When no node is running the backup opens the store directly (the LevelDB lock tells the two cases
apart: a locked store with no answering socket is an error, never a silent half-backup).

Backup layout (`DEST/`):
    manifest.json     format, chain id, genesis hash, node identity, head height/hash/state root,
                      block time, creation time, SHA-256 of every file below
    config.toml       genesis.json      node.crt
    node_key.json     only with include_key; copied byte for byte, so it stays encrypted
    signer_state.json the double-sign guard's last signed (height, round, step), when the home has one
    data/chain/       the LevelDB snapshot

Never in a backup: the consensus WAL (an old WAL restored into a live identity is what could make it
sign twice; see docs/operations.md), the passphrase file, logs and pid files.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from chain.genesis import Genesis
from chain.store import ChainStore, StoreError
from node.config import NodeConfig, NodeSection

log = logging.getLogger("paynet.backup")

CONTROL_SOCKET = "control.sock"
MANIFEST = "manifest.json"
FORMAT = "paynet-backup/1"
CHAIN_SUBDIR = Path("data") / "chain"
MAX_REQUEST_BYTES = 4096
# Files of a node home that go into a backup: (name inside the backup, NodeSection field naming it).
HOME_FILES = (("config.toml", None), ("genesis.json", "genesis_file"), ("node.crt", "cert_file"))
KEY_FILE = ("node_key.json", "key_file")
# The double-sign guard's state (consensus/signer.py). Copied into a backup when present, so a home
# rebuilt on a new disk starts with at least that floor; a restore over an existing home keeps the
# local one (it is newer: a backup can only be older than the node's own last signature).
SIGNER_FILE = ("signer_state.json", "signer_state_file")


class BackupError(Exception):
    """A backup or restore cannot be made; the message says why (never a secret)."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds. `height`, `block_hash` and `state_root` are read back from the copied store."""

    format: str
    chain_id: str
    genesis_hash: str
    node_name: str
    node_pubkey: str
    height: int
    block_hash: str
    state_root: str
    block_time_ms: int
    created_ms: int
    includes_key: bool
    files: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != FORMAT:
                raise BackupError(f"{path}: unsupported backup format {doc.get('format')!r}")
            return cls(**doc)
        except FileNotFoundError:
            raise BackupError(f"{path} not found: not a paynet backup") from None
        except (ValueError, TypeError) as exc:
            raise BackupError(f"{path}: malformed manifest ({exc})") from None


# -- node side: the control socket ------------------------------------------------------------------


class _RunningNode(Protocol):
    """What the control server needs from node.app.Node (kept narrow so tests can use a real store alone)."""

    config: NodeConfig
    store: ChainStore


class ControlServer:
    """Unix-socket admin endpoint of a running node. `close()` removes the socket file."""

    def __init__(self, node: _RunningNode, path: Path) -> None:
        self.node = node
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if len(os.fsencode(self.path)) >= 104:  # sun_path is 108 bytes on Linux, 104 on BSDs
            log.warning("control socket path %s is too long; backups of the running node are unavailable", self.path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a crashed run (the store lock proves no one else runs here)
        old_umask = os.umask(0o177)  # the socket is created 0600: no window where others may connect
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=os.fspath(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _same_user(writer.get_extra_info("socket")):
                writer.write(b"error permission denied\n")
                return
            try:
                line = await asyncio.wait_for(reader.readline(), 10)
            except (TimeoutError, ValueError):
                return
            if len(line) > MAX_REQUEST_BYTES or not line.endswith(b"\n"):
                writer.write(b"error request too long or incomplete\n")
                return
            writer.write(self.execute(line.decode(errors="replace").strip()).encode() + b"\n")
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.close()
                await writer.wait_closed()

    def execute(self, request: str) -> str:
        """Run one request line; returns the answer line. Synchronous on purpose: see the module docstring."""
        cmd, _, arg = request.partition(" ")
        if cmd != "backup":
            return f"error unknown command {cmd[:32]!r} (known: backup)"
        dest = Path(arg)
        if not arg or not dest.is_absolute():
            return "error backup needs an absolute directory"
        t0 = time.perf_counter()
        try:
            store = self.node.store
            height = store.head_height
            store.snapshot_to(dest)
        except (StoreError, OSError) as exc:
            return f"error snapshot failed: {exc}"
        took_ms = (time.perf_counter() - t0) * 1000
        log.info("backup snapshot of height %d written to %s in %.0f ms", height, dest, took_ms)
        return "ok " + json.dumps({"height": height, "took_ms": round(took_ms, 1)})


def _same_user(sock: socket.socket | None) -> bool:
    """Only this node's own user may ask (SO_PEERCRED, Linux); elsewhere the 0600 mode is the guard."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid() or uid == 0


async def start_control_server(node: _RunningNode) -> ControlServer:
    """Serve `<home>/control.sock` for `node` (call after the node started; `close()` at shutdown)."""
    server = ControlServer(node, node.config.home / CONTROL_SOCKET)
    await server.start()
    return server


# -- operator side: backup --------------------------------------------------------------------------


def _ask_node(sock_path: Path, request: str, timeout: float) -> str | None:
    """Send one request to a running node; None when no node listens there."""
    if not sock_path.exists():
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(os.fspath(sock_path))
        except (ConnectionRefusedError, FileNotFoundError):
            return None  # stale socket file of a node that is gone
        s.sendall(request.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace").strip()
    except TimeoutError:
        raise BackupError(f"the node did not answer the backup request within {timeout:.0f}s") from None
    finally:
        s.close()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _prepare_empty_dir(path: Path) -> bool:
    """Create `path` (0700) or accept an existing empty one; returns True if we created it."""
    if path.exists():
        if not path.is_dir() or any(path.iterdir()):
            raise BackupError(f"{path} exists and is not an empty directory")
        return False
    path.mkdir(parents=True, mode=0o700)
    return True


def backup_home(home: Path, dest: Path, *, include_key: bool = False, timeout: float = 300.0) -> Manifest:
    """Back up the node home `home` into the new directory `dest`; works whether or not the node runs."""
    config = _load_config(home)
    genesis = Genesis.load(config.path(config.node.genesis_file))
    dest = dest.resolve()
    created = _prepare_empty_dir(dest)
    try:
        (dest / "data").mkdir(mode=0o700)
        chain_dest = dest / CHAIN_SUBDIR
        answer = _ask_node(home / CONTROL_SOCKET, f"backup {chain_dest}", timeout)
        if answer is None:
            _snapshot_offline(config, genesis, chain_dest)
        elif not answer.startswith("ok"):
            raise BackupError(f"the running node refused: {answer.removeprefix('error ').strip()}")
        manifest = _finish(config, genesis, dest, include_key)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return manifest


def _load_config(home: Path) -> NodeConfig:
    from node.config import ConfigError

    try:
        return NodeConfig.load(home)
    except ConfigError as exc:
        raise BackupError(str(exc)) from None


def _snapshot_offline(config: NodeConfig, genesis: Genesis, chain_dest: Path) -> None:
    live = config.path(config.node.data_dir) / "chain"
    if not (live / "CURRENT").exists():
        raise BackupError(f"no chain store at {live}")  # ChainStore.open would create an empty one
    try:
        store = ChainStore.open(live, genesis)
    except StoreError as exc:
        if "lock" in str(exc).lower():
            raise BackupError(
                f"{live} is locked by a running node whose control socket does not answer; "
                "is the node older than the backup feature, or its home path too long for a unix socket?"
            ) from None
        raise BackupError(f"cannot open the chain store: {exc}") from None
    with store:
        store.snapshot_to(chain_dest)


def _finish(config: NodeConfig, genesis: Genesis, dest: Path, include_key: bool) -> Manifest:
    """Copy the home files, read the head back from the copied store, write the manifest last."""
    from chain.keystore import read_info

    files: dict[str, str] = {}
    wanted = list(HOME_FILES) + ([KEY_FILE] if include_key else [])
    if config.path(config.node.signer_state_file).exists():
        wanted.append(SIGNER_FILE)
    for name, field in wanted:
        src = config.home / "config.toml" if field is None else config.path(getattr(config.node, field))
        if not src.exists():
            raise BackupError(f"{src} is missing from the node home")
        shutil.copyfile(src, dest / name)
        if name == KEY_FILE[0]:
            os.chmod(dest / name, 0o600)
        files[name] = _sha256_file(dest / name)
    head = _read_head(dest / CHAIN_SUBDIR, genesis)
    # Every file of the store snapshot too (LevelDB tables, log, MANIFEST, CURRENT), hashed after the
    # read-back above closed it (opening a LevelDB store rewrites its LOG): a restore then finds a
    # changed, missing or added table by its hash, before LevelDB would read it.
    files.update(_hash_tree(dest, CHAIN_SUBDIR))
    pubkey = read_info(config.path(config.node.key_file)).public_key.hex()
    manifest = Manifest(
        format=FORMAT,
        chain_id=genesis.chain_id,
        genesis_hash=genesis.hash.hex(),
        node_name=config.node.name,
        node_pubkey=pubkey,
        created_ms=int(time.time() * 1000),
        includes_key=include_key,
        files=files,
        **head,
    )
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, dest / MANIFEST)
    return manifest


def _tree_files(root: Path, sub: Path) -> list[str]:
    """Every file under root/sub, as its path relative to root (posix separators, the manifest's keys)."""
    return [p.relative_to(root).as_posix() for p in sorted((root / sub).rglob("*")) if p.is_file()]


def _hash_tree(root: Path, sub: Path) -> dict[str, str]:
    """SHA-256 of every file under root/sub, keyed like `_tree_files`."""
    return {name: _sha256_file(root / name) for name in _tree_files(root, sub)}


def _read_head(chain_dir: Path, genesis: Genesis) -> dict[str, Any]:
    """Open a copied store (which verifies its head) and report the head."""
    try:
        with ChainStore.open(chain_dir, genesis) as store:
            hdr = store.head_header
            return {
                "height": store.head_height,
                "block_hash": store.head_hash.hex(),
                "state_root": hdr.state_root.hex(),
                "block_time_ms": hdr.time_ms,
            }
    except StoreError as exc:
        raise BackupError(f"the copied store does not verify: {exc}") from None


# -- restore ----------------------------------------------------------------------------------------


def restore_home(backup: Path, home: Path, *, replace: bool = False) -> Manifest:
    """Rebuild a node home at `home` from `backup`; verifies hashes and the store.

    `home` must be absent or empty, unless `replace`: then the existing home is moved aside to
    `HOME.replaced-<ms>` (kept for the operator) and its double-sign guard state -- and its key, when the
    backup has none -- carry over into the restored home. The local signer state always wins over the
    backup's: it records the node's newest signature, which the backup cannot know.

    The home is assembled in a sibling temporary directory and renamed into place, so a failed restore
    leaves nothing that looks like a node home. No consensus WAL is written: the restored node starts
    consensus fresh at the backup's head + 1, and its signer refuses anything at or below what it last
    signed (docs/operations.md).
    """
    manifest = Manifest.load(backup / MANIFEST)
    for name, digest in manifest.files.items():
        path = backup / name
        if not path.is_file() or _sha256_file(path) != digest:
            raise BackupError(f"{path} is missing or does not match the manifest")
    chain_prefix = CHAIN_SUBDIR.as_posix() + "/"
    if any(name.startswith(chain_prefix) for name in manifest.files):  # backups that hash the store's files
        extra = sorted(set(_tree_files(backup, CHAIN_SUBDIR)) - set(manifest.files))
        if extra:
            raise BackupError(f"{backup / extra[0]} is not in the manifest (the backup was modified)")
    home = home.absolute()
    occupied = check_restore_target(home, replace)
    tmp = home.with_name(home.name + ".restoring")
    if tmp.exists():
        raise BackupError(f"{tmp} exists (an interrupted restore?); remove it first")
    tmp.mkdir(parents=True, mode=0o700)
    try:
        _assemble(backup, manifest, tmp)
        if occupied:
            _carry_over_identity(home, tmp, manifest)
            os.replace(home, home.with_name(f"{home.name}.replaced-{int(time.time() * 1000)}"))
        elif home.exists():
            home.rmdir()
        os.replace(tmp, home)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def check_restore_target(home: Path, replace: bool) -> bool:
    """Refuse a target a restore must not touch; returns whether it holds a home (to be replaced).

    Also run before an archive is decrypted, so a refusal comes before minutes of decryption."""
    occupied = home.exists() and (not home.is_dir() or any(home.iterdir()))
    if occupied and not replace:
        raise BackupError(f"{home} exists and is not empty; restore into a new or empty directory, or use --replace")
    if occupied and (home / CONTROL_SOCKET).exists() and _ask_node(home / CONTROL_SOCKET, "ping", 2.0) is not None:
        raise BackupError(f"a node is running in {home}; stop it before restoring over it")
    return occupied


def _carry_over_identity(old_home: Path, new_home: Path, manifest: Manifest) -> None:
    """Keep the old home's signer state (always) and key (when the backup has none) in the new home."""
    old, new = _load_config(old_home), _load_config(new_home)
    carry = [SIGNER_FILE] + ([] if manifest.includes_key else [KEY_FILE])
    for _name, field in carry:
        src, dst = old.path(getattr(old.node, field)), new.path(getattr(new.node, field))
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)


def _assemble(backup: Path, manifest: Manifest, target: Path) -> None:
    shutil.copyfile(backup / "config.toml", target / "config.toml")
    config = _load_config(target)
    defaults = NodeSection()
    # Absolute paths in the old config point into the old machine's layout: use the home defaults.
    for field in ("genesis_file", "cert_file", "key_file", "data_dir"):
        if Path(getattr(config.node, field)).is_absolute():
            setattr(config.node, field, getattr(defaults, field))
    (target / "config.toml").write_text(config.to_toml())
    config = _load_config(target)
    placements = [(n, f) for n, f in HOME_FILES if f is not None]
    if manifest.includes_key:
        placements.append(KEY_FILE)
    if SIGNER_FILE[0] in manifest.files:
        placements.append(SIGNER_FILE)
    for name, field in placements:
        dst = config.path(getattr(config.node, field))
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup / name, dst)
        if field in ("key_file", "signer_state_file"):
            os.chmod(dst, 0o600)
    genesis = Genesis.load(config.path(config.node.genesis_file))
    if genesis.hash.hex() != manifest.genesis_hash or genesis.chain_id != manifest.chain_id:
        raise BackupError("genesis.json in the backup does not match the manifest")
    data = config.path(config.node.data_dir)
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copytree(backup / CHAIN_SUBDIR, data / "chain")
    head = _read_head(data / "chain", genesis)
    expected = {k: getattr(manifest, k) for k in head}
    if head != expected:
        raise BackupError(f"restored store head {head} does not match the manifest {expected}")
