"""Which `Signer` a node's consensus core signs with, from `[signer]` in config.toml.

- file (default): the node's key file is both its TLS key and its consensus key, guarded by
  `signer_state_file` (consensus/signer.py). Unchanged from before there was a choice.
- pkcs11: the consensus key is in a PKCS#11 token (custody/pkcs11_key.py); the guard's state file
  stays on the node, beside the key file.
- remote: a `paynet-signer` process holds key and guard (custody/remote.py).

With pkcs11 and remote the key file is only the TLS key, and the node certificate must name the
consensus key (network/binding.py); it is checked here against the key the token or signer holds, so a
mismatch fails at start with both keys named, not as a validator that silently never votes.
"""

from __future__ import annotations

import logging

from chain import crypto
from consensus.signer import FileSignerState, GuardedSigner, GuardSigner, MemorySignerState
from custody.keys import open_pkcs11
from custody.remote import RemoteSigner, SignerUnavailable
from custody.protocol import StateRequest
from network.pki import PkiError, build_tls_context, load_cert, node_identity
from node import faults
from node.config import NodeConfig

log = logging.getLogger("paynet.node")


def _state_store(config: NodeConfig) -> FileSignerState | MemorySignerState:
    # The double-sign guard's state lives beside the key, outside data/ (which a restore replaces).
    if faults.signer_amnesia():
        return MemorySignerState()
    return FileSignerState(config.path(config.node.signer_state_file))


def build_signer(config: NodeConfig, tls_key: crypto.PrivateKey, cert_pem: bytes, ca_cert_pem: bytes) -> GuardSigner:
    """The configured signer; raises PkiError/HsmError/ValueError with the remedy when keys disagree."""
    sc = config.signer
    sc.check()
    identity = node_identity(load_cert(cert_pem))
    if sc.backend == "file":
        if identity != tls_key.public_key:
            raise PkiError(
                f"the node certificate names consensus key {identity.hex()[:16]}... (split identity) but [signer] "
                "backend is file: set backend pkcs11 or remote, or use a certificate for the key file's key"
            )
        return GuardedSigner(tls_key, _state_store(config))
    if identity == tls_key.public_key:
        raise PkiError(
            f"[signer] backend {sc.backend} needs a node certificate that binds the TLS key to the consensus key "
            "(`paynet-node bind-tls`, then `paynet-node ca issue --binding`); this one carries no binding"
        )
    if sc.backend == "pkcs11":
        key = open_pkcs11(sc, config.path)
        if key.public_key != identity:
            key.close()
            raise PkiError(f"token key {sc.key_label!r} is {key.public_key.hex()[:16]}..., but the node certificate "
                           f"names consensus key {identity.hex()[:16]}...")
        return GuardedSigner(key, _state_store(config))
    host, _, port = sc.remote_address.rpartition(":")
    ctx = build_tls_context(tls_key.seed, cert_pem, ca_cert_pem, server=False)
    remote = RemoteSigner((host, int(port)), ctx, identity, sc.remote_timeout_ms / 1000, sc.remote_retry_ms / 1000)
    try:
        if remote.connect():
            remote.request(StateRequest(op="state"))
            log.info("remote signer at %s holds this node's consensus key %s...", sc.remote_address, identity.hex()[:16])
    except SignerUnavailable as exc:
        log.error("remote signer at %s not usable at start (%s): the node runs and votes once it is", sc.remote_address, exc)
    return remote
