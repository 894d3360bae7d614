"""Reading committed blocks for the API at a cost that does not grow with what the API does not show.

`Block.decode` re-validates every field of every tx (it is the consensus-grade decoder for blocks
from peers): ~130 ms for a 5,000-tx block. Blocks in our own store were validated before they were
committed, so the API reads them with plain msgpack and decodes only what a response shows:

- a summary (GET /blocks) streams the header, the tx count and the first few txs: ~0.2 ms whatever
  the block size;
- a `LightBlock` (GET /blocks/{ref}, receipts) unpacks the block once and hashes each tx body for the
  tx ids (~20 ms for 5,000 txs), and decodes a tx only when a response includes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from chain import crypto
from chain.block import BlockHeader
from chain.encoding import DecodeError, encode_validated
from chain.tx import SignedTx


def _unpacker(raw: bytes) -> msgpack.Unpacker:
    u = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=True, max_buffer_size=max(len(raw), 1))
    u.feed(raw)
    return u


def summarize(raw: bytes, first: int) -> tuple[BlockHeader, int, list[SignedTx]]:
    """(header, tx count, the first `first` txs) of stored block bytes, reading nothing past those txs."""
    try:
        u = _unpacker(raw)
        if u.read_array_header() != 3:
            raise DecodeError("block: expected array of 3")
        header = BlockHeader.from_list(u.unpack())
        count = u.read_array_header()
        txs = [SignedTx.from_list(u.unpack()) for _ in range(min(first, count))]
    except (ValueError, msgpack.UnpackException) as e:  # DecodeError is a ValueError
        raise DecodeError(f"stored block does not decode: {e}") from None
    return header, count, txs


@dataclass(frozen=True)
class LightBlock:
    """A stored block as the API serves it: header, tx ids, evidence count; txs decoded on demand."""

    header: BlockHeader
    tx_ids: list[bytes]
    evidence_count: int
    size: int
    _tx_objs: list[Any] = field(repr=False)

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def tx_count(self) -> int:
        return len(self.tx_ids)

    def tx(self, index: int) -> SignedTx:
        return SignedTx.from_list(self._tx_objs[index])

    def txs(self, offset: int, limit: int) -> list[SignedTx]:
        return [SignedTx.from_list(o) for o in self._tx_objs[offset : offset + limit]]

    @classmethod
    def from_bytes(cls, raw: bytes) -> "LightBlock":
        try:
            obj = msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=True)
            header_obj, txs_obj, ev_obj = obj
            header = BlockHeader.from_list(header_obj)
            # The tx id is the hash of the canonical body bytes; these objects came out of canonical bytes,
            # so re-encoding a body gives exactly them (as chain.block does for known txs).
            tx_ids = [crypto.sha256(encode_validated(t[0])) for t in txs_obj]
        except (ValueError, TypeError, IndexError, msgpack.UnpackException) as e:
            raise DecodeError(f"stored block does not decode: {e}") from None
        return cls(header, tx_ids, len(ev_obj), len(raw), txs_obj)
