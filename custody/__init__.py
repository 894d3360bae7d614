"""Key custody: where consensus and wallet signing keys live (file, PKCS#11 token, remote signer).

`pkcs11_key` signs inside a Cryptoki token, `remote` is the node's client of a `paynet-signer`
process and `server` is that process; `protocol` is the wire format between them.
"""
