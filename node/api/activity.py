"""Validator activity for the explorer's heat strip: who signed the commit certificates of the last N
blocks and who proposed them.

A commit certificate holds the precommits the committing node had when it reached quorum, so a live
validator whose vote arrived late can miss one; a stopped validator misses every block. Certificates
of committed blocks never change, so the signer set of each height is cached (bounded).
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice
from typing import Protocol

from chain import crypto
from chain.encoding import DecodeError
from chain.validators import ValidatorSet
from consensus.certificate import CommitCertificate
from node.api.chainscan import headers_down
from node.api.models import ActivityResponse, ValidatorActivity

MAX_ACTIVITY_BLOCKS = 500
DEFAULT_ACTIVITY_BLOCKS = 100
SIGNER_CACHE = 2048


class ActivityStore(Protocol):
    @property
    def head_height(self) -> int: ...

    def items_between(self, start: bytes, stop: bytes, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]: ...

    def get_certificate(self, height: int) -> bytes | None: ...


class ActivityReader:
    """Reads (and caches) each height's certificate signers."""

    def __init__(self, names: dict[bytes, str]) -> None:
        self._names = names
        self._signers: OrderedDict[int, frozenset[bytes]] = OrderedDict()

    def signers(self, store: ActivityStore, height: int) -> frozenset[bytes]:
        cached = self._signers.get(height)
        if cached is not None:
            self._signers.move_to_end(height)
            return cached
        raw = store.get_certificate(height)
        try:
            pks = frozenset(pk for pk, _sig in CommitCertificate.decode(bytes(raw)).precommits) if raw else frozenset()
        except DecodeError:
            pks = frozenset()
        self._signers[height] = pks
        if len(self._signers) > SIGNER_CACHE:
            self._signers.popitem(last=False)
        return pks

    def activity(self, store: ActivityStore, validators: ValidatorSet, last: int) -> ActivityResponse:
        """The last `last` committed blocks (block 0, which has no certificate, excluded), oldest first."""
        newest_first = islice(headers_down(store, store.head_height), last)
        headers = [h for h in reversed(list(newest_first)) if h.height > 0]
        heights = [h.height for h in headers]
        signed_by_height = [self.signers(store, h) for h in heights]
        proposers = [h.proposer for h in headers]
        out = []
        for v in validators.validators:
            signed = [v.pubkey in s for s in signed_by_height]
            out.append(ValidatorActivity(
                name=self._names.get(v.pubkey),
                address=crypto.format_address(v.address),
                pubkey=v.pubkey.hex(),
                power=v.power,
                signed=signed,
                missed=signed.count(False),
                proposed=sum(p == v.address for p in proposers),
            ))
        return ActivityResponse(
            from_height=heights[0] if heights else 0,
            to_height=heights[-1] if heights else 0,
            heights=heights,
            proposers=[crypto.format_address(p) for p in proposers],
            validators=out,
        )
