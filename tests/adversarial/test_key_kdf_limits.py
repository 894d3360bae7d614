"""Validator and CA keys at rest (issue 13, item 6), against real files and real processes.

Before: validator and CA keys used Argon2id INTERACTIVE limits (2 passes, 64 MiB; the CA key was a
PKCS#8 PEM under PBKDF2); the KDF limits in a keystore file were used unchecked, so a damaged or
planted file could hang the node for hours or make it allocate terabytes; the passphrase stayed in the
node's environment (/proc/PID/environ, and every child process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nacl.pwhash
import pytest

from chain import crypto
from chain.keystore import save_key
from node.localnet import PASSPHRASE, LocalNet
from node.provision import WEAK_KDF_TEST_ENV

pytestmark = pytest.mark.integration

BASE_PORT = 29370
SENSITIVE = (nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE)


def _production_env(**extra: str) -> dict[str, str]:
    """The environment of a real deployment: no test-only switch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYNET_UNSAFE_")}
    return {**env, **extra}


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _kdf(path: Path) -> tuple[int, int]:
    kdf = json.loads(path.read_text())["kdf"]
    return kdf["opslimit"], kdf["memlimit"]


def test_validator_and_ca_keys_are_made_with_sensitive_limits(tmp_path: Path) -> None:
    env = _production_env(PAYNET_NODE_PASSPHRASE=PASSPHRASE, PAYNET_CA_PASSPHRASE=PASSPHRASE)
    out = _cli("init", "--home", str(tmp_path / "home"), "--name", "v0", env=env)
    assert out.returncode == 0, out.stderr
    assert _kdf(tmp_path / "home" / "node_key.json") == SENSITIVE
    out = _cli("ca", "create", "--dir", str(tmp_path / "ca"), env=env)
    assert out.returncode == 0, out.stderr
    assert _kdf(tmp_path / "ca" / "ca_key.json") == SENSITIVE
    assert not (tmp_path / "ca" / "ca_key.pem").exists()
    assert "UNSAFE" not in out.stderr


def _load_in_child(path: Path, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """load_key in a child process under a 4 GiB address-space cap; None if it is still running at `timeout`."""
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
        "from chain.keystore import load_key, KeystoreError\n"
        f"try: load_key({str(path)!r}, 'correct horse battery')\n"
        "except KeystoreError as e: print(e); sys.exit(3)\n"
    )
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=_production_env())
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize(
    "opslimit, memlimit, named",
    [
        (2**32 - 1, nacl.pwhash.argon2id.MEMLIMIT_MIN, "opslimit"),  # before: ~hours of CPU
        (1, 100 * 2**30, "memlimit"),  # before: a 100 GiB allocation attempt
        (0, 2**16, "opslimit"),
        (1, 1024, "memlimit"),
    ],
)
def test_absurd_kdf_limits_in_a_keystore_file_are_refused_at_once(
    tmp_path: Path, opslimit: int, memlimit: int, named: str
) -> None:
    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "correct horse battery")
    doc = json.loads(path.read_text())
    doc["kdf"].update(opslimit=opslimit, memlimit=memlimit)
    path.write_text(json.dumps(doc))
    t0 = time.monotonic()
    out = _load_in_child(path, timeout=15)
    assert out is not None, "load_key was still deriving after 15 s"
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert named in out.stdout and "limit" in out.stdout and "Traceback" not in out.stderr
    assert time.monotonic() - t0 < 10


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> LocalNet:
    """A one-validator local network, provisioned (like every test network) with test-only cheap keys."""
    return LocalNet.provision(tmp_path_factory.mktemp("keys"), validators=1, base_port=BASE_PORT, demo_accounts=1)


def test_test_only_key_is_refused_by_a_production_node(net: LocalNet) -> None:
    home = net.nodes[0].home
    assert _kdf(home / "node_key.json") < SENSITIVE
    out = _cli("run", "--home", str(home), env=_production_env(PAYNET_NODE_PASSPHRASE=PASSPHRASE), timeout=30)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "below the validator minimum" in out.stderr and f"paynet-node rekey --home {home}" in out.stderr


def test_passphrase_is_removed_from_the_running_node_environment(net: LocalNet) -> None:
    net.start(0)
    try:
        net.wait_for(lambda: net.height(0) is not None, 30, "node answering")
        pid = net.pid(0)
        assert pid is not None
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        log = net.nodes[0].log_path.read_text()
    finally:
        net.stop(0)
    assert PASSPHRASE.encode() not in environ
    assert b"PAYNET_NODE_PASSPHRASE=" not in environ
    assert f"UNSAFE test switch {WEAK_KDF_TEST_ENV}" in log  # the cheap test keys are loud about it


def test_rekey_raises_a_weak_key_to_the_validator_class_in_place(tmp_path: Path) -> None:
    """`paynet-node rekey`, run without the test switch on a test-class key: same key, SENSITIVE file."""
    home = tmp_path / "home"
    env = {**os.environ, "PAYNET_NODE_PASSPHRASE": PASSPHRASE}
    assert _cli("init", "--home", str(home), "--name", "v0", env=env).returncode == 0  # test class (cheap)
    key_file = home / "node_key.json"
    pubkey = json.loads(key_file.read_text())["public_key"]
    assert _kdf(key_file) < SENSITIVE
    out = _cli("rekey", "--home", str(home), env=_production_env(PAYNET_NODE_PASSPHRASE=PASSPHRASE))
    assert out.returncode == 0, out.stderr
    assert _kdf(key_file) == SENSITIVE
    assert json.loads(key_file.read_text())["public_key"] == pubkey
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not list(home.glob("node_key.json.*"))  # no leftover copy of the weak file


def test_old_pem_ca_key_is_refused_then_converted_by_ca_rekey(tmp_path: Path) -> None:
    """A CA made before this change (PKCS#8 PEM, PBKDF2 2048 iterations) keeps its identity through rekey."""
    from network import pki
    from node.provision import CA_CERT, LEGACY_CA_KEY

    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    key, cert_pem = pki.create_ca("old CA")
    (ca_dir / CA_CERT).write_bytes(cert_pem)
    fd = os.open(ca_dir / LEGACY_CA_KEY, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, pki.encrypt_private_key(key, PASSPHRASE.encode()))
    os.close(fd)
    node = crypto.PrivateKey.generate()
    env = {**os.environ, "PAYNET_CA_PASSPHRASE": PASSPHRASE}
    issue = ("ca", "issue", "--dir", str(ca_dir), "--pubkey", node.public_key.hex(), "--name", "n",
             "--out", str(tmp_path / "n.crt"))
    out = _cli(*issue, env=env)
    assert out.returncode == 1 and "paynet-node ca rekey --dir" in out.stderr and "Traceback" not in out.stderr
    out = _cli("ca", "rekey", "--dir", str(ca_dir), env=env)
    assert out.returncode == 0, out.stderr
    assert not (ca_dir / LEGACY_CA_KEY).exists() and (ca_dir / "ca_key.json").stat().st_mode & 0o777 == 0o600
    out = _cli(*issue, env=env)
    assert out.returncode == 0, out.stderr
    assert pki.verify_node_cert((tmp_path / "n.crt").read_bytes(), cert_pem) == node.public_key


def test_cli_passphrase_is_taken_out_of_the_environment(tmp_path: Path) -> None:
    """What every CLI that reads a passphrase does (init, ca create/issue/rekey, rekey, run)."""
    code = (
        "import os\n"
        "from chain.keystore import take_env_secret\n"
        "assert take_env_secret('PAYNET_CA_PASSPHRASE') == 'hunter2-hunter2'\n"
        "env = open('/proc/self/environ', 'rb').read()\n"
        "print('PAYNET_CA_PASSPHRASE' in os.environ, b'hunter2' in env, b'PAYNET_CA_PASSPHRASE' in env)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PAYNET_CA_PASSPHRASE": "hunter2-hunter2"})
    assert out.stdout.split() == ["False", "False", "False"], (out.stdout, out.stderr)
