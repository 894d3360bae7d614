"""Block-sync checks the node makes on what peers send (helpers for `node/sync.py`'s `BlockSync`).

The planner (`network.sync`) decides whom to ask; this module decides what an answer proves and whose
fault a failure is. The line it draws (issue 12 and 13): a peer is blamed only for what it can be
blamed for -- a certificate that does not verify against our validator set, bytes that are not the
certified block, answers that are not what we asked. A block that *is* certified and still does not
apply here is this node's own divergence (the consensus runner halts the node), and nobody is blamed.
"""

from __future__ import annotations

from collections.abc import Callable

from chain.block import Block
from chain.encoding import DecodeError
from chain.tx import SignedTx
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from network.messages import Status

INVALID_BLOCK = "invalid_block"


class StatusInconsistent(ValueError):
    """A STATUS whose certificate does not match its height (honest nodes never send one); a
    ValueError, so the receive loop penalises the peer as for any invalid message."""


def status_certificate(status: Status) -> CommitCertificate | None:
    """The decoded certificate of a STATUS, checked for shape only (no signatures): None at height 0.

    Raises StatusInconsistent (or DecodeError) when it cannot be an honest node's STATUS."""
    if status.height == 0:
        if status.certificate:
            raise StatusInconsistent("status at height 0 carries a certificate")
        return None
    if not status.certificate:
        raise StatusInconsistent(f"status at height {status.height} carries no certificate")
    cert = CommitCertificate.decode(status.certificate)
    if cert.height != status.height:
        raise StatusInconsistent(f"status says height {status.height}, its certificate {cert.height}")
    return cert


def proves_height(cert: CommitCertificate, validators: ValidatorSet, chain_id: str) -> bool:
    """Does `cert` carry 2/3+ of `validators`' power for its height?

    For a height beyond ours the certificate may be signed by a validator set we do not know yet
    (governance changed it), so False is not proof of a lie and is never penalised: the claim just
    stays unproven."""
    try:
        verify_commit_certificate(cert, validators, chain_id, cert.height, cert.block_hash)
    except CertificateError:
        return False
    return True


def certified_block_problem(
    block_bytes: bytes, cert: CommitCertificate, known: Callable[[bytes], SignedTx | None] | None = None
) -> str | None:
    """Why `block_bytes` are not the block `cert` certifies, or None if they are.

    Vouching for the payload matters: the consensus core halts the node when a certified block does not
    validate, so bytes that merely come with a valid certificate (a real certificate, junk block) must be
    refused here and blamed on the peer, never handed on. Header hash, tx root and evidence hash pin the
    whole block (tx ids are hashes of the signed txs)."""
    try:
        block = Block.decode(block_bytes, known=known)
    except (DecodeError, ValueError) as exc:
        return f"block does not decode: {exc}"
    if block.hash != cert.block_hash:
        return "block hash differs from the certified hash"
    try:
        block.check_roots()
    except ValueError as exc:
        return str(exc)
    return None
