"""Canonical encoding and tx decoding: one object, one byte string; everything else refused."""

from __future__ import annotations

import msgpack
import pytest

from chain.encoding import MAX_INT, DecodeError, EncodeError, decode, encode
from chain.tx import MAX_TX_BYTES, SignedTx, Transfer, TxBody, TxKind
from ledger_testkit import USERS, tx


def test_round_trip_of_allowed_types() -> None:
    obj = [0, 1, -1, MAX_INT, -MAX_INT - 1, b"", b"\x00\xff", "", "héllo", True, False, None, [[1, [2]], []]]
    assert decode(encode(obj)) == obj
    assert encode((1, 2)) == encode([1, 2])  # tuples and lists are the same array


@pytest.mark.parametrize("bad", [{"a": 1}, 1.5, {1, 2}, bytearray(b"x"), object(), 2**63, -(2**63) - 1])
def test_encode_refuses_types_outside_the_canonical_form(bad: object) -> None:
    with pytest.raises(EncodeError):
        encode([bad])


def test_encode_refuses_deep_nesting() -> None:
    deep: list = []
    for _ in range(20):
        deep = [deep]
    with pytest.raises(EncodeError):
        encode(deep)


@pytest.mark.parametrize(
    "raw",
    [
        msgpack.packb({"a": 1}),  # map
        msgpack.packb([{}]),  # nested map
        msgpack.packb(1.5),  # float64
        msgpack.packb(1.5, use_single_float=True),  # float32
        msgpack.packb(msgpack.ExtType(5, b"x")),  # ext type
        b"\xcd\x00\x01",  # 1 as uint16: non-canonical (canonical is the fixint 0x01)
        b"\xd9\x01a",  # "a" as str8: non-canonical
        b"\xdc\x00\x00",  # empty array as array16
        b"\xc4\x00" + b"",  # fine bin8 of length 0 is canonical -> covered by the test below
        b"\xcf" + (2**63).to_bytes(8, "big"),  # uint64 above the signed range
        b"\x91",  # truncated array
        b"\x01\x02",  # trailing bytes
        b"\xc1",  # never-used byte
        b"\xa2\xff\xfe",  # str that is not UTF-8
    ],
)
def test_decode_refuses_non_canonical_or_foreign_bytes(raw: bytes) -> None:
    if raw == b"\xc4\x00":
        assert decode(raw) == b""
        return
    with pytest.raises(DecodeError):
        decode(raw)


def test_decode_refuses_oversize_and_non_bytes() -> None:
    data = encode(b"x" * 100)
    assert decode(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(DecodeError):
        decode(data, max_size=len(data) - 1)
    with pytest.raises(DecodeError):
        decode("not bytes")  # type: ignore[arg-type]


# -- transactions ------------------------------------------------------------------------------------


def _good_tx() -> SignedTx:
    return tx(USERS[0], 3, Transfer(USERS[1].address, "USD", 250), memo="rent")


def test_signed_tx_round_trip_and_id_ignores_signature_bytes() -> None:
    t = _good_tx()
    again = SignedTx.decode(t.encode())
    assert again == t and again.tx_id == t.tx_id and again.verify_signature()
    assert again.body.kind is TxKind.TRANSFER


def _mutated(fn) -> bytes:  # type: ignore[no-untyped-def]
    obj = decode(_good_tx().encode())
    fn(obj)
    return encode(obj)


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda o: o.append(1), "signed tx: expected array of 2"),
        (lambda o: o[0].__setitem__(0, 2), "version"),
        (lambda o: o[0].__setitem__(2, 77), "unknown tx kind"),
        (lambda o: o[0].__setitem__(2, TxKind.BURN), "burn"),  # payload shape does not fit the kind
        (lambda o: o[0].__setitem__(3, b"\x00" * 31), "sender"),
        (lambda o: o[0].__setitem__(4, -1), "nonce"),
        (lambda o: o[0].__setitem__(4, True), "nonce"),
        (lambda o: o[0].__setitem__(5, "10"), "expiry_height"),
        (lambda o: o[0][6].__setitem__(0, b"\x01" * 19), "to"),
        (lambda o: o[0][6].__setitem__(1, "usd"), "asset id"),
        (lambda o: o[0][6].__setitem__(2, 0), "amount"),
        (lambda o: o[0][6].__setitem__(2, 2**62 + 1), "amount"),
        (lambda o: o[0].__setitem__(7, "m" * 257), "memo"),
        (lambda o: o.__setitem__(1, b"\x00" * 63), "signature"),
        (lambda o: o[0].__setitem__(1, "c" * 65), "chain_id"),
    ],
)
def test_tx_decode_errors_name_the_field(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError, match=why):
        SignedTx.decode(_mutated(mutate))


def test_tx_decode_refuses_oversize_bytes() -> None:
    huge = _mutated(lambda o: o[0].__setitem__(7, "x" * 200))
    assert len(huge) < MAX_TX_BYTES
    padded = encode([decode(huge)[0], b"\x00" * 64, b"y" * MAX_TX_BYTES])
    with pytest.raises(DecodeError, match="exceeds limit"):
        SignedTx.decode(padded)


def test_sign_refuses_the_wrong_key() -> None:
    body = TxBody("c", USERS[0].public_key, 0, 10, Transfer(USERS[1].address, "USD", 1))
    with pytest.raises(ValueError):
        body.sign(USERS[1])


def test_block_decode_reuses_known_txs_only_when_identical() -> None:
    import dataclasses

    from chain import crypto as _crypto
    from chain.block import Block, make_block
    from chain.tx import Transfer, TxBody

    key = _crypto.PrivateKey(b"\x07" * 32)
    txs = tuple(TxBody("c", key.public_key, n, 9, Transfer(b"\x01" * 20, "USD", 1)).sign(key) for n in range(3))
    block = make_block(chain_id="c", height=1, time_ms=0, prev_hash=bytes(32), state_root=bytes(32),
                       proposer=bytes(20), validators_hash=bytes(32), txs=txs)
    data = block.encode()
    pool = {txs[0].tx_id: txs[0], txs[1].tx_id: dataclasses.replace(txs[1], signature=bytes(64))}
    decoded = Block.decode(data, known=pool.get)
    assert decoded == Block.decode(data) == block
    assert decoded.txs[0] is txs[0]  # reused
    assert decoded.txs[1] is not pool[txs[1].tx_id] and decoded.txs[1].signature == txs[1].signature  # not reused


def test_header_v2_carries_tx_count_and_refuses_v1_and_out_of_range_counts() -> None:
    from chain.block import BLOCK_VERSION, MAX_BLOCK_TXS, BlockHeader, make_block

    header = make_block(chain_id="c", height=1, time_ms=0, prev_hash=bytes(32), state_root=bytes(32),
                        proposer=bytes(20), validators_hash=bytes(32), txs=(tx(USERS[0], 0, Transfer(USERS[1].address, "USD", 1)),)).header
    assert BLOCK_VERSION == 2 and header.tx_count == 1
    assert BlockHeader.decode(header.encode()) == header
    fields = header.to_list()
    v1 = [1] + fields[1:6] + fields[7:]  # version 1: no tx_count
    for bad, why in ((v1, "array of 11"), (fields[:6] + [MAX_BLOCK_TXS + 1] + fields[7:], "tx_count"),
                     (fields[:6] + [-1] + fields[7:], "tx_count"), ([1] + fields[1:], "version")):
        with pytest.raises(DecodeError, match=why):
            BlockHeader.decode(encode(bad))
