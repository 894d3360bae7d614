"""RFC 6962 Merkle tree: Certificate Transparency test vectors and inclusion proofs."""

from __future__ import annotations

import pytest

from chain.merkle import inclusion_proof, leaf_hash, merkle_root, verify_inclusion

# The 8 leaves of the CT / RFC 6962 reference test data, and the published roots of their prefixes.
CT_LEAVES = [
    bytes.fromhex(x)
    for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# Published audit paths: (leaf index, tree size) -> path.
CT_PATHS = {
    (0, 1): [],
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (4, 5): ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}


@pytest.mark.parametrize("size", range(0, 9))
def test_roots_match_certificate_transparency_vectors(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


def test_leaf_hash_of_empty_leaf() -> None:
    # Leaf 0 is the empty string: its hash is SHA-256(0x00), which is also the CT 1-leaf root.
    assert leaf_hash(b"").hex() == CT_ROOTS[1]


@pytest.mark.parametrize("index, size", list(CT_PATHS))
def test_published_audit_paths(index: int, size: int) -> None:
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in proof] == CT_PATHS[(index, size)]


def test_every_inclusion_proof_verifies_and_every_mutation_fails() -> None:
    for size in range(1, 9):
        leaves = CT_LEAVES[:size]
        root = merkle_root(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            assert verify_inclusion(leaves[index], index, size, proof, root)
            # wrong leaf, wrong index, wrong size, wrong root
            assert not verify_inclusion(leaves[index] + b"x", index, size, proof, root)
            if size > 1:
                assert not verify_inclusion(leaves[index], (index + 1) % size, size, proof, root)
            # (a wrong *size* is not always detectable: RFC 6962 roots do not bind the tree size
            # where the audit path has the same shape, e.g. leaf 0 of 3 and of 4 leaves)
            assert not verify_inclusion(leaves[index], index, 2 * size + 1, proof, root)
            assert not verify_inclusion(leaves[index], index, size, proof, bytes(32))
            # each proof element with one bit flipped, a dropped element, an extra element
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
                assert not verify_inclusion(leaves[index], index, size, bad, root)
            if proof:
                assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)
            assert not verify_inclusion(leaves[index], index, size, proof + [bytes(32)], root)


def test_large_tree_matches_recursive_definition() -> None:
    def mth(d: list[bytes]) -> bytes:
        from chain.merkle import node_hash

        if len(d) == 1:
            return leaf_hash(d[0])
        k = 1 << ((len(d) - 1).bit_length() - 1)
        return node_hash(mth(d[:k]), mth(d[k:]))

    leaves = [i.to_bytes(4, "big") for i in range(1, 70)]
    for n in (9, 15, 16, 17, 33, 69):
        assert merkle_root(leaves[:n]) == mth(leaves[:n])
        for idx in (0, n // 2, n - 1):
            assert verify_inclusion(leaves[idx], idx, n, inclusion_proof(leaves[:n], idx), mth(leaves[:n]))


def test_out_of_range_index() -> None:
    with pytest.raises(IndexError):
        inclusion_proof(CT_LEAVES, 8)
    assert not verify_inclusion(b"", 8, 8, [], merkle_root(CT_LEAVES))
