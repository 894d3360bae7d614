"""Suite-wide test settings.

Validator and CA keys are Argon2id SENSITIVE in production (~4.5 s and 1 GiB of memory per key made or
unlocked here: node/provision.py). The suite makes and unlocks hundreds of throwaway keys, in-process and
in the node processes it starts (which inherit this environment), so it turns on the test-only switch
that uses libsodium's minimum limits instead. Tests of the production class remove it from the
environment of the processes they start (tests/adversarial/test_key_kdf_limits.py).
"""

from __future__ import annotations

import os

from node.provision import WEAK_KDF_TEST_ENV

os.environ.setdefault(WEAK_KDF_TEST_ENV, "1")
