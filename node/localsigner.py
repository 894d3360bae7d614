"""A local `paynet-signer` for one validator of a `LocalNet` (tests, `scripts/testnet.py up --remote-signer I`).

Provisioning runs the commands an operator runs (docs/operations.md, "Keys in an HSM or a remote
signer"): `paynet-signer init`, `keygen`, `bind-tls` for the node's TLS key, `paynet-node ca issue` for
the signer's own certificate; the node's `[signer]` section then points at it. The consensus key is an
encrypted file here (the signer's `file` backend), so no token is needed for a local network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from node.localnet import NodeProc, _apply_overrides, _env

PID_FILE = "signer.pid"


def run_module(*argv: str) -> str:
    """`python -m ARGV...` with the local network's environment; its stdout, or RuntimeError with stderr."""
    out = subprocess.run([sys.executable, "-m", *argv], env=_env(), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {out.stderr.strip()}")
    return out.stdout.strip()


@dataclass
class LocalSigner:
    home: Path
    port: int
    ca_dir: Path
    retry_ms: int = 200

    @property
    def log_path(self) -> Path:
        return self.home / "signer.log"

    def provision(self, n: NodeProc) -> Path:
        """`LocalNet.provision`'s split hook for node `n`: set up the signer, return the node's binding."""
        h = str(self.home)
        init = json.loads(run_module("custody.cli", "init", "--home", h, "--listen", f"127.0.0.1:{self.port}",
                               "--backend", "file", "--allow-node", n.pubkey.hex(),
                               "--ca-cert", str(self.ca_dir / "ca.crt")))
        run_module("custody.cli", "keygen", "--home", h)
        run_module("node.cli", "ca", "issue", "--dir", str(self.ca_dir), "--pubkey", init["tls_pubkey"],
             "--name", "signer", "--out", str(self.home / "signer.crt"))
        out = n.home / "binding.json"
        run_module("custody.cli", "bind-tls", "--home", h, "--tls-pubkey", n.pubkey.hex(), "--out", str(out))
        _apply_overrides(n.home / "config.toml", {"signer": {
            "backend": "remote", "remote_address": f"127.0.0.1:{self.port}", "remote_retry_ms": self.retry_ms}})
        return out

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "custody.cli", "run", "--home", str(self.home)],
                                    env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (self.home / PID_FILE).write_text(str(proc.pid))
        self._proc = proc

    def pid(self) -> int | None:
        try:
            pid = int((self.home / PID_FILE).read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.pid == pid and proc.poll() is not None:
            return None  # exited (a zombie still answers kill 0)
        return pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        """Signal the signer (SIGKILL: the crash case) and wait until it is gone."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            proc = getattr(self, "_proc", None)
            if proc is not None:
                try:
                    proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.05)
        (self.home / PID_FILE).unlink(missing_ok=True)
