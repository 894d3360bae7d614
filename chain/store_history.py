"""The evidence window in the chain store: which validator set signed each recent height, and which
evidence is already committed (so a block cannot carry it twice).

A mixin of ChainStore (chain/store.py), written in each block's own batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import plyvel

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, Block, BlockHeader, evidence_hash, evidence_id
from chain.encoding import decode, encode
from chain.genesis import Genesis
from chain.governance import GovReplay, Members
from chain.leveldb_checked import CheckedDB, CorruptStore
from chain.state import State
from chain.store_keys import P_EVIDENCE, P_VALSET, U64, hkey
from chain.tx import GovApprove, GovPropose
from chain.validators import ValidatorSet

_NO_EVIDENCE = evidence_hash(())


class ValidatorHistory:
    """ChainStore's validator-set history and committed-evidence index (see the module docstring)."""

    _db: CheckedDB
    genesis: Genesis
    head_height: int
    _valset_cache: dict[bytes, ValidatorSet]

    if TYPE_CHECKING:  # provided by ChainStore

        def _check_open(self) -> None: ...

        def headers(self, start: int, stop: int) -> Iterator[BlockHeader]: ...

        def get_header(self, height: int) -> BlockHeader | None: ...

        def get_block(self, height: int) -> Block | None: ...

        def state(self) -> State: ...

    def validators_at(self, height: int) -> ValidatorSet | None:
        """The validator set that signs (signed) block `height`, or None outside the evidence window.

        Evidence is judged against the set at its own height, not the current one: after governance
        removes a double-signer, its evidence is still valid (issue 12). The window is
        [head+1 - EVIDENCE_MAX_AGE_HEIGHTS, head+1], the heights whose evidence a block at head+1 may carry.
        """
        self._check_open()
        head_next = self.head_height + 1
        if not max(0, head_next - EVIDENCE_MAX_AGE_HEIGHTS) <= height <= head_next:
            return None
        with self._db.iterator(start=P_VALSET, stop=P_VALSET + hkey(height + 1), reverse=True) as it:
            item = next(it, None)
        if item is None:
            return None
        key, raw = item
        cached = self._valset_cache.get(key)
        if cached is None:
            try:
                cached = ValidatorSet.from_list(decode(raw))
            except ValueError as exc:
                raise CorruptStore(f"validator set stored for height {U64.unpack(key[1:])[0]}: {exc}") from None
            if len(self._valset_cache) >= 32:
                self._valset_cache.clear()
            self._valset_cache[key] = cached
        return cached

    def evidence_committed_at(self, ev_id: bytes) -> int | None:
        """Height of the block that committed the evidence with this id (`chain.block.evidence_id`), or None."""
        self._check_open()
        raw = self._db.get(P_EVIDENCE + ev_id)
        return None if raw is None else U64.unpack(raw)[0]

    def _put_evidence_window(self, wb: plyvel.WriteBatch, block: Block, new_state: State, set_changed: bool) -> None:
        """In the block's own batch: index its evidence, record the next height's set if governance
        changed it, and delete sets that no longer cover any height of the window."""
        for raw in block.evidence:
            wb.put(P_EVIDENCE + evidence_id(raw), hkey(block.height))
        if set_changed:
            wb.put(P_VALSET + hkey(block.height + 1), encode(new_state.validators.to_list()))
        oldest = block.height + 1 - EVIDENCE_MAX_AGE_HEIGHTS
        with self._db.iterator(start=P_VALSET, stop=P_VALSET + hkey(max(oldest, 0) + 1), include_value=False) as it:
            covering = list(it)
        for key in covering[:-1]:  # the newest entry at or below `oldest` still covers it
            wb.delete(key)

    def _ensure_validator_history(self) -> None:
        """A store written before the history existed: rebuild it once from the headers and blocks.

        Every block is decoded once (a governance action may execute blocks after it was proposed, so the
        proposals must be replayed too, with chain.governance's rules); every rebuilt set is checked
        against the next header.
        """
        with self._db.iterator(prefix=P_VALSET, include_value=False) as it:
            if next(it, None) is not None:
                return
        vset = self.genesis.validator_set()
        replay = GovReplay(Members(self.genesis.threshold, self.genesis.member_list()), vset,
                           (a.id for a in self.genesis.assets))
        sets = {0: vset}
        oldest = self.head_height + 1 - EVIDENCE_MAX_AGE_HEIGHTS
        with self._db.write_batch(transaction=True, sync=True) as wb:
            for hdr in self.headers(1, self.head_height + 1):
                if hdr.validators_hash != vset.hash:
                    raise CorruptStore(f"block {hdr.height}: validators_hash is not the replayed validator set")
                next_hdr = self.get_header(hdr.height + 1)
                next_hash = next_hdr.validators_hash if next_hdr else self.state().validators.hash
                evidence_here = hdr.height >= oldest and hdr.evidence_hash != _NO_EVIDENCE
                block = self.get_block(hdr.height)
                assert block is not None
                if evidence_here:
                    for raw in block.evidence:
                        wb.put(P_EVIDENCE + evidence_id(raw), hkey(hdr.height))
                vset = replay.block(hdr.height, ((tx.tx_id, tx.body.sender, tx.body.payload) for tx in block.txs
                                                 if isinstance(tx.body.payload, (GovPropose, GovApprove))))
                if next_hash != vset.hash:
                    raise CorruptStore(f"block {hdr.height}: replayed validator set differs from the next one")
                if sets[max(sets)] is not vset:
                    sets[hdr.height + 1] = vset
            keep = [h for h in sets if h > oldest]
            keep.append(max((h for h in sets if h <= oldest), default=0))
            for h in keep:
                wb.put(P_VALSET + hkey(h), encode(sets[h].to_list()))
