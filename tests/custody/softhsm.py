"""A throwaway SoftHSM2 token in a temp dir, for the PKCS#11 tests (never the system token dir).

SoftHSM reads its token directory from the file named by SOFTHSM2_CONF, so each test points that at
its own config; `token_env` returns the environment for child processes (node, paynet-signer, wallet).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from custody.pkcs11_key import DEFAULT_LIBRARY

USER_PIN = "24681357"
SO_PIN = "97531864"

needs_softhsm = pytest.mark.skipif(
    not (Path(DEFAULT_LIBRARY).exists() and shutil.which("softhsm2-util")),
    reason=f"SoftHSM2 is not installed ({DEFAULT_LIBRARY} / softhsm2-util missing: apt-get install softhsm2)",
)


@dataclass(frozen=True)
class SoftHsm:
    conf: Path
    library: str = DEFAULT_LIBRARY

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str) -> None:
        """Create a token; a library this process already loaded re-reads the token directory (SoftHSM
        sees new tokens only at C_Initialize; no session of an earlier test may still be open)."""
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
            env=self.env(), check=True, capture_output=True, timeout=30,
        )
        import pkcs11

        lib = pkcs11.lib(self.library)
        if lib.initialized:
            lib.reinitialize()


_shared: SoftHsm | None = None


def make_softhsm(directory: Path) -> SoftHsm:
    """A SoftHSM config whose token dir is inside `directory`, with this process pointed at it.

    One per test process: SoftHSM reads SOFTHSM2_CONF once, when the library is first loaded, and
    python-pkcs11 keeps that library loaded for the life of the process. So the first caller's directory
    holds every token of the process, and token labels must be unique across tests."""
    global _shared
    if _shared is None:
        tokens = directory / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        conf = directory / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        _shared = SoftHsm(conf)
    os.environ["SOFTHSM2_CONF"] = str(_shared.conf)
    return _shared


def token_library(tmp_path_factory: pytest.TempPathFactory, label: str) -> str:
    """A fresh token `label` (user PIN `USER_PIN`) in this process's SoftHSM; the library path to open it."""
    hsm = make_softhsm(tmp_path_factory.mktemp("softhsm"))
    hsm.init_token(label)
    return hsm.library
