"""The encrypted backup archive format (node/backup_archive.py): round trip, and every kind of damage refused."""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import nacl.public
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.keystore import TEST_ONLY_KDF, KeystoreError
from node import backup_archive as ba
from node.backup_key import FileBackupKey, generate, public_key_of

PRIVATE = nacl.public.PrivateKey.generate()
OTHER = nacl.public.PrivateKey.generate()


def key(private: nacl.public.PrivateKey = PRIVATE) -> FileBackupKey:
    return FileBackupKey(private)


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def archive_of(src: Path, chunk: int = ba.MIN_CHUNK) -> bytes:
    out = io.BytesIO()
    ba.write_archive(src, out, bytes(PRIVATE.public_key), chunk)
    return out.getvalue()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


FILES = {"manifest.json": b'{"a": 1}', "data/chain/000005.ldb": bytes(range(256)) * 40, "data/chain/CURRENT": b"M\n",
         "empty": b""}


def test_round_trip_modes_and_no_plaintext(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", FILES)
    blob = archive_of(src)
    assert blob.startswith(ba.MAGIC) and b"manifest.json" not in blob and bytes(range(64)) not in blob
    dest = tmp_path / "out"
    dest.mkdir()
    assert ba.extract_archive(io.BytesIO(blob), key(), dest) == 6  # 4 files + data + data/chain
    assert tree(dest) == FILES
    assert all((p.stat().st_mode & 0o777) in (0o600, 0o700) for p in dest.rglob("*"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}", fullmatch=True), st.binary(max_size=5000),
                             max_size=6),
       chunk=st.sampled_from([ba.MIN_CHUNK, 4096, ba.DEFAULT_CHUNK]))
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], chunk: int) -> None:
    # a name that is also another's directory cannot exist in a real tree: drop such clashes
    files = {n: d for n, d in files.items() if not any(o.startswith(n + "/") for o in files)}
    root = tmp_path_factory.mktemp("rt")
    src = make_tree(root / "src", files)
    dest = root / "out"
    dest.mkdir()
    ba.extract_archive(io.BytesIO(archive_of(src, chunk)), key(), dest)
    assert tree(dest) == files


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return archive_of(make_tree(tmp_path_factory.mktemp("b") / "src", FILES))


def refused(data: bytes, tmp_path: Path, private: nacl.public.PrivateKey = PRIVATE) -> str:
    dest = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    dest.mkdir()
    with pytest.raises(ba.ArchiveError) as err:
        ba.extract_archive(io.BytesIO(data), key(private), dest)
    return str(err.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_is_refused(tmp_path: Path, blob: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(blob) - 1))
    flip = data.draw(st.integers(1, 255))
    damaged = blob[:i] + bytes([blob[i] ^ flip]) + blob[i + 1 :]
    refused(damaged, tmp_path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_truncation_or_extension_is_refused(tmp_path: Path, blob: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(blob) - 1))
    refused(blob[:cut], tmp_path)
    refused(blob + data.draw(st.binary(min_size=1, max_size=40)), tmp_path)


def test_clear_errors(tmp_path: Path, blob: bytes) -> None:
    assert "encrypted to pnbk" in refused(blob, tmp_path, OTHER)
    assert "bad magic" in refused(b"PK\x03\x04" + blob[4:], tmp_path)
    assert "truncated after" in refused(blob[: ba.HEADER_BYTES], tmp_path)
    version = blob[:8] + b"\x02" + blob[9:]
    assert "unsupported archive version 2" in refused(version, tmp_path)
    huge = blob[:9] + struct.pack(">I", 1 << 30) + blob[13:]
    assert "chunk size" in refused(huge, tmp_path)
    length = blob[: ba.HEADER_BYTES] + struct.pack(">I", 1 << 31) + blob[ba.HEADER_BYTES + 4 :]
    assert "impossible length" in refused(length, tmp_path)


def test_records_cannot_be_reordered_or_dropped(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"big": bytes(range(256)) * 64})
    blob = archive_of(src, ba.MIN_CHUNK)
    records, pos = [], ba.HEADER_BYTES
    while pos < len(blob):
        (n,) = struct.unpack_from(">I", blob, pos)
        records.append(blob[pos : pos + 4 + n])
        pos += 4 + n
    assert len(records) > 4
    head = blob[: ba.HEADER_BYTES]
    swapped = head + records[0] + records[2] + records[1] + b"".join(records[3:])
    assert "does not authenticate" in refused(swapped, tmp_path)
    dropped = head + records[0] + b"".join(records[2:])
    assert "does not authenticate" in refused(dropped, tmp_path)
    assert "no final record" in refused(head + b"".join(records[:-1]), tmp_path)


def _evil_archive(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A correctly encrypted archive whose tar stream was built by hand (what an attacker with the public key can do)."""
    out = io.BytesIO()
    writer = ba.EncryptingWriter(out, bytes(PRIVATE.public_key), ba.MIN_CHUNK)
    with tarfile.open(fileobj=writer, mode="w|") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    writer.close()
    return out.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(("members", "text"), [
    ([(_member("../escape"), b"x")], "'..' path"),
    ([(_member("a/../../escape"), b"x")], "'..' path"),
    ([(_member("/tmp/abs"), b"x")], "absolute"),
    ([(_member("link", tarfile.SYMTYPE, "/etc/passwd"), b"")], "link or device"),
    ([(_member("hard", tarfile.LNKTYPE, "manifest.json"), b"")], "link or device"),
    ([(_member("dev", tarfile.CHRTYPE), b"")], "link or device"),
    ([(_member("fifo", tarfile.FIFOTYPE), b"")], "link or device"),
    ([(_member("dup"), b"1"), (_member("dup"), b"2")], "appears twice"),
    ([(_member("nodir/file"), b"x")], "before its directory"),
])
def test_extraction_refuses_path_tricks(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], text: str) -> None:
    assert text in refused(_evil_archive(members), tmp_path)
    assert not (tmp_path / "escape").exists() and not Path("/tmp/abs").exists()


def test_backup_key_file(tmp_path: Path) -> None:
    path = tmp_path / "bk.json"
    public = generate(path, "backup key passphrase", TEST_ONLY_KDF)
    assert public_key_of(path) == public and path.stat().st_mode & 0o777 == 0o600
    unlocked = FileBackupKey.unlock(path, "backup key passphrase")
    assert unlocked.public_key == public
    assert bytes(nacl.public.PrivateKey.generate().public_key) != public
    src = make_tree(tmp_path / "src", FILES)
    out = io.BytesIO()
    ba.write_archive(src, out, public)
    dest = tmp_path / "out"
    dest.mkdir()
    ba.extract_archive(io.BytesIO(out.getvalue()), unlocked, dest)
    assert tree(dest) == FILES
    with pytest.raises(KeystoreError):
        generate(path, "backup key passphrase", TEST_ONLY_KDF)  # never overwritten
    assert ba.parse_recipient(ba.format_recipient(public)) == public
    with pytest.raises(ba.ArchiveError, match="not a backup public key"):
        ba.parse_recipient(public.hex())  # a bare hex key (e.g. a node's Ed25519 key) is not taken


def test_a_failed_write_never_looks_complete(tmp_path: Path) -> None:
    """An error mid-archive (here a FIFO, which is refused) leaves a truncated archive, even after the writer
    is garbage-collected (io's finalizer calls close(), which must not add the final record)."""
    import gc
    import os

    src = make_tree(tmp_path / "src", {"a": b"x" * 5000, "b": b"y" * 5000})
    os.mkfifo(src / "zz-fifo")
    out = io.BytesIO()
    with pytest.raises(ba.ArchiveError, match="not a regular file"):
        ba.write_archive(src, out, bytes(PRIVATE.public_key), ba.MIN_CHUNK)
    gc.collect()
    assert "no final record" in refused(out.getvalue(), tmp_path)
