"""Transaction outcome codes and receipts.

Kept apart from the state transition so the API, mempool and wallet can name outcomes without
importing the execution engine. Codes are stable integers: they go over the wire and into logs,
so new codes are only ever appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class TxCode(IntEnum):
    """Why a transaction was accepted (OK) or refused; each refusal names one specific rule."""

    OK = 0
    MALFORMED = 1  # structurally impossible object (e.g. hand-built with a wrong payload type)
    WRONG_CHAIN = 2  # signed for another network
    BAD_SIGNATURE = 3
    BAD_NONCE = 4  # not the sender's next nonce (replays land here)
    EXPIRED = 5  # block height is past the tx's expiry height
    INSUFFICIENT_FUNDS = 6
    UNKNOWN_ASSET = 7
    NOT_ISSUER = 8  # issue/burn by someone other than the asset's issuer
    NOT_ADMIN = 9  # governance tx by a key that is not a current governance member
    SUPPLY_OVERFLOW = 10  # issue would take supply above chain.tx.MAX_AMOUNT
    ASSET_EXISTS = 11
    SELF_TRANSFER = 12  # transfer to the sender's own address: always a client mistake
    INVALID_VALIDATOR_SET = 13  # update would leave the set empty, too concentrated, or too large
    BAD_PROPOSAL = 14  # proposal expiry out of range, or an upgrade that is not newer / gives too little notice
    TOO_MANY_PROPOSALS = 15  # the open-proposal bound (total or per member) is reached
    UNKNOWN_PROPOSAL = 16  # approval of a proposal id that was never proposed
    PROPOSAL_CLOSED = 17  # approval of a proposal that already executed
    PROPOSAL_EXPIRED = 18  # approval of a proposal past its expiry height
    ALREADY_APPROVED = 19  # a member approving the same proposal twice


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one transaction. `message` is for humans; `code` is for programs."""

    tx_id: bytes
    code: TxCode
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code is TxCode.OK

    def to_list(self) -> list[Any]:
        return [self.tx_id, int(self.code), self.message]

    @classmethod
    def from_list(cls, obj: Any) -> "Receipt":
        from chain.encoding import DecodeError, want_bytes, want_int, want_list, want_str

        tx_id, code, message = want_list(obj, 3, "receipt")
        try:
            code_enum = TxCode(want_int(code, "code", 0, 255))
        except ValueError:
            raise DecodeError(f"unknown receipt code {code}") from None
        return cls(want_bytes(tx_id, "tx_id", 32), code_enum, want_str(message, "message", 1024))
