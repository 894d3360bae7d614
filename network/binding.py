"""Split identities: a node certificate whose TLS key is not the validator's consensus key.

A validator whose consensus key lives in an HSM or a remote signer cannot hand that key to TLS. Its
node certificate then carries a file TLS key plus a non-critical extension (`CONSENSUS_KEY_OID`) with

    consensus public key (32 bytes) || binding signature (64 bytes)

where the binding signature is the consensus key's signature over
`signing_message(TLS_BINDING_DOMAIN, "", tls public key)`. After the TLS handshake (which proves the
peer holds the TLS key) a peer's identity is the consensus key from the extension, checked against the
validator set exactly like a file node's certificate key.

Why the signature and not just the CA's word: the consensus public key of every validator is public.
A CA operator tricked into issuing a certificate for an attacker's TLS key "bound" to validator B's
key would otherwise let the attacker connect as B -- and since a peer keeps one link per identity, push
B's real link out and censor or delay its votes. With the proof of possession, only whoever controls
B's consensus key (B's HSM or signer) can bind a TLS key to B; every peer checks it at every handshake,
and the CA checks it at issuance. The domain (`paynet/tls-binding/v1`) differs from every consensus
and transaction domain, so a binding can never be replayed as a vote, a proposal or a payment.
"""

from __future__ import annotations

from chain import crypto

CONSENSUS_KEY_OID_DOTTED = "2.25.337147243930112220187269013581256925530"
"""A UUID-derived OID (ITU-T X.667 arc 2.25): unique without a registry; paynet's only private extension."""
TLS_BINDING_DOMAIN = b"paynet/tls-binding/v1"
BINDING_LEN = 32 + 64


class BindingError(ValueError):
    """A consensus-key extension is malformed or its proof of possession does not verify."""


def binding_payload(tls_pubkey: bytes) -> tuple[bytes, str, bytes]:
    """(domain, chain id, payload) the consensus key signs to bind `tls_pubkey`: feed it to any `SigningKey`."""
    if len(tls_pubkey) != 32:
        raise BindingError("TLS public key must be 32 raw Ed25519 bytes")
    return TLS_BINDING_DOMAIN, "", tls_pubkey


def sign_binding(key: "crypto.PrivateKey | object", tls_pubkey: bytes) -> bytes:
    """The binding signature by `key` (anything with `sign(domain, chain_id, payload)`) over `tls_pubkey`."""
    return key.sign(*binding_payload(tls_pubkey))  # type: ignore[attr-defined, no-any-return]


def encode_binding(consensus_pubkey: bytes, signature: bytes) -> bytes:
    if len(consensus_pubkey) != 32 or len(signature) != 64:
        raise BindingError("a binding is a 32-byte consensus key and a 64-byte signature")
    return consensus_pubkey + signature


def verify_binding(value: bytes, tls_pubkey: bytes) -> bytes:
    """The consensus key of an extension value, after checking its signature over `tls_pubkey`."""
    if len(value) != BINDING_LEN:
        raise BindingError(f"consensus-key extension is {len(value)} bytes, not {BINDING_LEN}")
    consensus, sig = value[:32], value[32:]
    if consensus == tls_pubkey:
        raise BindingError("consensus-key extension names the TLS key itself; a file-key node carries none")
    if not crypto.verify(consensus, sig, *binding_payload(tls_pubkey)):
        raise BindingError(
            f"consensus key {consensus.hex()[:16]}... did not sign this certificate's TLS key (no proof of possession)"
        )
    return consensus
