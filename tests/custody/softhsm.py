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
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
            env=self.env(), check=True, capture_output=True, timeout=30,
        )


def make_softhsm(directory: Path) -> SoftHsm:
    """Write a SoftHSM config whose token dir is inside `directory`, and point this process at it."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return SoftHsm(conf)
