"""Encrypted backup archives: one file, readable only with the recipient's X25519 private key.

Why this format: backups leave the machine, and a plaintext LevelDB snapshot carries every payment. The
archive is built only from libsodium primitives (PyNaCl), no home-made crypto:

    header (fixed 149 bytes)
        magic "PAYNETBK" | version u8 = 1 | chunk size u32 BE | recipient X25519 public key (32)
        | archive key sealed to the recipient (crypto_box_seal, 32 + 48 bytes) | secretstream header (24)
    records, each: length u32 BE | crypto_secretstream_xchacha20poly1305 ciphertext of <= chunk size bytes
        the first record authenticates the whole header as additional data; the last carries TAG_FINAL
        and must be followed by the end of the file

The archive key is random per archive. The payload is a tar stream (regular files and directories only)
of the backup directory, manifest included, written and read through the stream in bounded chunks, so
memory stays flat however large the store. secretstream authenticates every record and their order, so
a changed, dropped, reordered or truncated record -- or any changed header byte -- is an error, and a
missing final tag is "truncated". Extraction refuses links, devices, absolute paths, `..` and duplicate
names (a planted archive must not write outside the target), and creates files 0600, directories 0700.

The private key is behind `ArchiveKey` (public key + unseal), so an HSM that can do crypto_box_seal_open
can stand in for the key file (node/backup_key.py).
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.utils

MAGIC = b"PAYNETBK"
VERSION = 1
KEY_BYTES = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
SEALED_KEY_BYTES = KEY_BYTES + sodium.crypto_box_SEALBYTES
STREAM_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_FIXED = struct.Struct(">8sBI32s")
HEADER_BYTES = _FIXED.size + SEALED_KEY_BYTES + STREAM_HEADER_BYTES
DEFAULT_CHUNK = 64 * 1024
MIN_CHUNK, MAX_CHUNK = 1024, 1024 * 1024
"""Bounds on the chunk size a header may name: a planted header must not make the reader allocate gigabytes."""
MAX_MEMBERS = 1_000_000
MAX_NAME_BYTES = 1024
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_LEN = struct.Struct(">I")


class ArchiveError(Exception):
    """An archive cannot be written, opened or trusted; the message says why (never a secret)."""


class ArchiveKey(Protocol):
    """The recipient's private key, wherever it lives (a keystore file today, an HSM later)."""

    @property
    def public_key(self) -> bytes: ...

    def unseal(self, sealed: bytes) -> bytes:
        """crypto_box_seal_open of `sealed`; raises ArchiveError if this key cannot open it."""
        ...


def is_archive(path: Path) -> bool:
    """Whether `path` is a file that starts like an encrypted backup archive."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except (IsADirectoryError, FileNotFoundError):
        return False


# -- header -------------------------------------------------------------------------------------------------


def _make_header(recipient: bytes, chunk_size: int) -> tuple[bytes, bytes]:
    """(header bytes, archive key): a fresh random key, sealed to `recipient`."""
    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    sealed = nacl.public.SealedBox(nacl.public.PublicKey(recipient)).encrypt(key)
    return _FIXED.pack(MAGIC, VERSION, chunk_size, recipient) + sealed, key


def read_recipient(f: BinaryIO) -> tuple[bytes, int, bytes, bytes]:
    """(recipient public key, chunk size, sealed key, stream header) from the start of `f`, bounds checked."""
    head = f.read(HEADER_BYTES)
    if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
        raise ArchiveError("not a paynet encrypted backup (bad magic)")
    if len(head) < HEADER_BYTES:
        raise ArchiveError("archive truncated inside its header")
    _magic, version, chunk_size, recipient = _FIXED.unpack_from(head)
    if version != VERSION:
        raise ArchiveError(f"unsupported archive version {version} (this paynet reads version {VERSION})")
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ArchiveError(f"archive chunk size {chunk_size} is outside [{MIN_CHUNK}, {MAX_CHUNK}] (damaged header)")
    sealed = head[_FIXED.size : _FIXED.size + SEALED_KEY_BYTES]
    return recipient, chunk_size, sealed, head[_FIXED.size + SEALED_KEY_BYTES :]


# -- the encrypted stream ---------------------------------------------------------------------------------


class EncryptingWriter(io.RawIOBase):
    """A write-only file object: bytes written are cut into chunks and pushed through secretstream to `out`.

    `close()` pushes the final record (TAG_FINAL), so an archive whose writer was not closed is truncated
    by construction and refused when read.
    """

    def __init__(self, out: BinaryIO, recipient: bytes, chunk_size: int = DEFAULT_CHUNK) -> None:
        super().__init__()
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise ArchiveError(f"chunk size {chunk_size} is outside [{MIN_CHUNK}, {MAX_CHUNK}]")
        self._out, self._chunk = out, chunk_size
        fixed, key = _make_header(recipient, chunk_size)
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        self._ad: bytes | None = fixed + stream_header  # authenticated by the first record
        out.write(self._ad)
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buf += data
        while len(self._buf) > self._chunk:  # keep the tail: the final record must carry some or none of it
            self._push(bytes(self._buf[: self._chunk]), _TAG_MESSAGE)
            del self._buf[: self._chunk]
        return len(data)

    def _push(self, chunk: bytes, tag: int) -> None:
        record = sodium.crypto_secretstream_xchacha20poly1305_push(self._state, chunk, self._ad, tag)
        self._ad = None
        self._out.write(_LEN.pack(len(record)) + record)

    def close(self) -> None:
        if not self.closed:
            self._push(bytes(self._buf), _TAG_FINAL)
            self._buf.clear()
        super().close()

    def abort(self) -> None:
        """Close without the final record (io's finalizer would otherwise call close() and finish a partial
        archive): what was written stays a truncated archive, which every reader refuses."""
        self._buf.clear()
        super().close()


class DecryptingReader(io.RawIOBase):
    """A read-only file object over the plaintext of an archive; `finish()` proves it was read to its end."""

    def __init__(self, f: BinaryIO, key: ArchiveKey) -> None:
        super().__init__()
        recipient, self._chunk, sealed, stream_header = read_recipient(f)
        if recipient != key.public_key:
            raise ArchiveError(
                f"the archive is encrypted to {format_recipient(recipient)}, not to this key "
                f"({format_recipient(key.public_key)})"
            )
        archive_key = key.unseal(sealed)
        if len(archive_key) != KEY_BYTES:
            raise ArchiveError("the sealed archive key has the wrong size (damaged header)")
        self._f = f
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        try:
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, stream_header, archive_key)
        except (nacl.exceptions.CryptoError, ValueError):
            raise ArchiveError("archive stream header is damaged") from None
        self._ad: bytes | None = _FIXED.pack(MAGIC, VERSION, self._chunk, recipient) + sealed + stream_header
        self._buf = b""
        self._final = False
        self.records = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf and not self._final:
            self._buf = self._pull()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def _pull(self) -> bytes:
        raw_len = self._f.read(_LEN.size)
        if len(raw_len) < _LEN.size:
            raise ArchiveError(f"archive truncated after {self.records} records (no final record)")
        (length,) = _LEN.unpack(raw_len)
        if not ABYTES <= length <= self._chunk + ABYTES:
            raise ArchiveError(f"archive record {self.records} has an impossible length {length} (damaged)")
        record = self._f.read(length)
        if len(record) < length:
            raise ArchiveError(f"archive truncated inside record {self.records}")
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(self._state, record, self._ad)
        except (nacl.exceptions.CryptoError, ValueError):
            raise ArchiveError(
                f"archive record {self.records} does not authenticate (tampered, reordered, or another key's)"
            ) from None
        self._ad = None
        self.records += 1
        if tag == _TAG_FINAL:
            self._final = True
            if self._f.read(1):
                raise ArchiveError("data after the archive's final record (tampered)")
        elif tag != _TAG_MESSAGE:
            raise ArchiveError(f"archive record {self.records - 1} has an unexpected tag {tag}")
        return plain

    def finish(self) -> None:
        """Read whatever the tar reader left (its end padding) and require the final record."""
        while not self._final:
            self._pull()
        self._buf = b""


def format_recipient(public_key: bytes) -> str:
    """A backup public key as operators pass it to --encrypt-to: 'pnbk' + 64 hex (not a node's Ed25519 key)."""
    return "pnbk" + public_key.hex()


def parse_recipient(text: str) -> bytes:
    """The 32-byte X25519 public key of 'pnbk' + 64 hex; the prefix keeps node keys from being mistaken for it."""
    text = text.strip()
    if not text.startswith("pnbk") or len(text) != 68:
        raise ArchiveError(f"{text[:80]!r} is not a backup public key ('pnbk' + 64 hex, from `backup-key generate`)")
    try:
        return bytes.fromhex(text[4:])
    except ValueError:
        raise ArchiveError(f"{text[:80]!r} is not a backup public key (bad hex)") from None


# -- tar payload -------------------------------------------------------------------------------------------


def write_archive(src: Path, out: BinaryIO, recipient: bytes, chunk_size: int = DEFAULT_CHUNK) -> None:
    """Write every file and directory under `src` (relative names, sorted) as an archive to `out`."""
    writer = EncryptingWriter(out, recipient, chunk_size)
    try:
        _write_tar(src, writer)
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _write_tar(src: Path, writer: EncryptingWriter) -> None:
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path in sorted(src.rglob("*")):
            name = path.relative_to(src).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise ArchiveError(f"{path} is not a regular file or directory; refusing to archive it")
            info = tarfile.TarInfo(name)
            st = path.stat()
            info.mtime = int(st.st_mtime)
            info.mode = 0o700 if path.is_dir() else 0o600  # no owner names or uids leave the machine
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)


def extract_archive(f: BinaryIO, key: ArchiveKey, dest: Path) -> int:
    """Decrypt and unpack the archive `f` into the existing empty directory `dest`; returns the member count.

    On any error `dest` may hold a partial, unverified tree: the caller removes it (it is a staging dir).
    """
    reader = DecryptingReader(f, key)
    count = 0
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                count += 1
                if count > MAX_MEMBERS:
                    raise ArchiveError(f"archive has more than {MAX_MEMBERS} members")
                target = dest.joinpath(*_safe_parts(member))
                if member.isdir():
                    target.mkdir(mode=0o700, exist_ok=True)
                elif member.isreg():
                    _extract_file(tar, member, target)
                else:
                    raise ArchiveError(f"archive member {member.name!r} is a link or device; refused")
    except tarfile.TarError as exc:
        raise ArchiveError(f"archive payload is not a valid tar stream ({exc})") from None
    except OSError as exc:  # e.g. a file where a member's directory should be
        raise ArchiveError(f"archive member cannot be unpacked: {exc.strerror} ({exc.filename})") from None
    reader.finish()
    return count


def _safe_parts(member: tarfile.TarInfo) -> tuple[str, ...]:
    """The member's path components, refusing anything that could land outside the target directory."""
    name = member.name
    if len(name.encode()) > MAX_NAME_BYTES or "\x00" in name or "\\" in name:
        raise ArchiveError(f"archive member name {name[:80]!r} is too long or has forbidden characters")
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("..", ".", "") for p in path.parts):
        raise ArchiveError(f"archive member {name[:80]!r} has an absolute or '..' path; refused")
    return path.parts


def _extract_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise ArchiveError(f"archive member {member.name!r} has no data")
    if not target.parent.is_dir() or target.parent.is_symlink():
        raise ArchiveError(f"archive member {member.name!r} comes before its directory")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ArchiveError(f"archive member {member.name!r} appears twice") from None
    with os.fdopen(fd, "wb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            out.write(block)
