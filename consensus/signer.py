"""The double-sign guard: every consensus signature a validator makes goes through one signer.

The model is CometBFT's privval (`FilePV` with its `priv_validator_state.json`): the signer remembers
what it signed at the latest height, persists that record durably BEFORE the signature is returned,
and refuses any later request that would conflict with it:

- a (height, round, step) it already signed, with identical signed bytes -> the same signature again
  (a restart re-sending what it already said is harmless);
- a (height, round, step) it already signed, with different bytes -> `SignRefused` (that pair would
  be equivocation evidence); the exception carries the signature given there, which the caller may
  send instead;
- any other request below the last signed (height, round, step) -> `SignRefused` (the validator
  already moved on; signing now could contradict what it said later);
- a height at or below `floor` -> `SignRefused` (the node found its own precommits in committed
  blocks above what this state file remembers, e.g. after a restore from an old backup).

The WAL alone cannot give this promise: it lives with the data directory, which a backup restore
replaces with an older copy. The state file lives beside the key, and `FileSignerState` writes it by
tmp file + fsync + rename + directory fsync, so a crash leaves either the old or the new record,
never a torn one; damage is reported as `SignerStateError` rather than guessed around.

Steps within a round: proposal (1) < prevote (2) < precommit (3), the order the core signs them in.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from chain import crypto
from consensus.messages import (
    PROPOSAL_DOMAIN,
    VOTE_DOMAIN,
    Proposal,
    Vote,
    VoteType,
    proposal_sign_bytes,
    vote_sign_bytes,
)

STEP_PROPOSAL = 1
STEP_PREVOTE = 2
STEP_PRECOMMIT = 3

_VOTE_STEP = {VoteType.PREVOTE: STEP_PREVOTE, VoteType.PRECOMMIT: STEP_PRECOMMIT}
STATE_VERSION = 1


class SignRefused(Exception):
    """The requested signature would conflict with one this validator already gave.

    `given` is the signature already given for exactly the requested (height, round, step), if the
    signer still holds it. The caller may use THAT signature instead (it is already given; sending it
    conflicts with nothing): that is how a validator whose WAL tail was lost in a crash keeps voting."""

    def __init__(self, message: str, given: "LastSigned | None" = None) -> None:
        super().__init__(message)
        self.given = given


class SignerStateError(Exception):
    """The signer's state could not be read or written; the message names the file and the remedy."""


@dataclass(frozen=True)
class LastSigned:
    """The last signature given: where (height, round, step), for what, and the exact signed bytes
    (domain + chain id + payload, so identical requests can be recognised byte for byte)."""

    height: int
    round: int
    step: int
    block_hash: bytes | None
    signature: bytes
    signed: bytes

    @property
    def hrs(self) -> tuple[int, int, int]:
        return (self.height, self.round, self.step)


RECENT_KEPT = 8
"""Signatures of the latest height kept besides the last one: after a crash that lost the WAL tail,
the restarted core may ask again for a vote it signed a step or two before the last signature (a
prevote, when the last is the precommit after it); handing back that same signature keeps the round
from being one honest vote short, and it conflicts with nothing."""


@dataclass(frozen=True)
class SignerState:
    """What a state store persists: the recent signatures (the last one last) and the height floor."""

    public_key: bytes | None = None
    recent: tuple[LastSigned, ...] = ()
    floor: int = 0

    @property
    def last(self) -> LastSigned | None:
        return self.recent[-1] if self.recent else None

    def given(self, height: int, round: int, step: int) -> LastSigned | None:
        """The signature given at exactly (height, round, step), if still held."""
        for rec in self.recent:
            if rec.hrs == (height, round, step):
                return rec
        return None


class SignerStateStore(Protocol):
    """Durable home of a `SignerState`. `save` returns only once the state is durable."""

    location: str

    def load(self) -> SignerState: ...

    def save(self, state: SignerState) -> None: ...


class SigningKey(Protocol):
    """What the guard signs with: a file key (`crypto.PrivateKey`) or a token-held one
    (`custody.pkcs11_key.Pkcs11Key`). Both sign `crypto.signing_message(domain, chain_id, payload)`."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, domain: bytes, chain_id: str, payload: bytes) -> bytes: ...


class Signer(Protocol):
    """Every signature the consensus core makes (votes and proposals) goes through this."""

    public_key: bytes

    def sign_vote(
        self, chain_id: str, vote_type: VoteType, height: int, round: int, block_hash: bytes | None
    ) -> Vote: ...

    def sign_proposal(
        self, chain_id: str, height: int, round: int, pol_round: int, block_hash: bytes, payload: bytes
    ) -> Proposal: ...


class GuardSigner(Signer, Protocol):
    """A signer with the guard's record as the node driver uses it: a local `GuardedSigner` or the
    remote signer's client (custody/remote.py), whose guard lives in the `paynet-signer` process."""

    @property
    def last(self) -> LastSigned | None: ...

    def raise_floor(self, height: int) -> None: ...


class GuardedSigner:
    """A key plus a persisted last-signed record; refuses conflicting signatures (module docstring)."""

    def __init__(self, key: SigningKey, state: SignerStateStore) -> None:
        self._key = key
        self._store = state
        self.public_key = key.public_key
        loaded = state.load()
        if loaded.public_key is not None and loaded.public_key != self.public_key:
            raise SignerStateError(
                f"signer state {state.location} belongs to validator key {loaded.public_key.hex()[:16]}, "
                f"not {self.public_key.hex()[:16]}: point the node at the state file kept beside this key"
            )
        self._state = replace(loaded, public_key=self.public_key)

    def __repr__(self) -> str:
        return f"GuardedSigner(pub={self.public_key.hex()[:16]}, last={self.last and self.last.hrs}, floor={self.floor})"

    @property
    def last(self) -> LastSigned | None:
        return self._state.last

    @property
    def floor(self) -> int:
        return self._state.floor

    def raise_floor(self, height: int) -> None:
        """Refuse every signature at heights <= `height` from now on (persisted).

        Used at start-up when the node finds its own precommits in recently committed blocks at or
        above the height this state remembers: something signed there that this file does not know of.
        """
        if height > self._state.floor:
            new = replace(self._state, floor=height)
            self._store.save(new)
            self._state = new

    def sign_vote(
        self, chain_id: str, vote_type: VoteType, height: int, round: int, block_hash: bytes | None
    ) -> Vote:
        payload = vote_sign_bytes(vote_type, height, round, block_hash)
        step = _VOTE_STEP[VoteType(vote_type)]
        sig = self._sign(VOTE_DOMAIN, chain_id, payload, height, round, step, block_hash)
        return Vote(VoteType(vote_type), height, round, block_hash, self.public_key, sig)

    def sign_proposal(
        self, chain_id: str, height: int, round: int, pol_round: int, block_hash: bytes, payload: bytes
    ) -> Proposal:
        signed = proposal_sign_bytes(height, round, pol_round, block_hash)
        sig = self._sign(PROPOSAL_DOMAIN, chain_id, signed, height, round, STEP_PROPOSAL, block_hash)
        return Proposal(height, round, pol_round, block_hash, self.public_key, sig, payload)

    def _sign(
        self, domain: bytes, chain_id: str, payload: bytes, height: int, round: int, step: int, block_hash: bytes | None
    ) -> bytes:
        """Check the request against the last signature, persist the new one, then hand it out."""
        if height <= self._state.floor:
            raise SignRefused(f"height {height} is at or below the signing floor {self._state.floor}")
        signed = crypto.signing_message(domain, chain_id, payload)
        hrs = (height, round, step)
        given = self._state.given(*hrs)
        if given is not None:
            if signed == given.signed:
                return given.signature  # the same request again (a restart re-sending): same answer
            raise SignRefused(f"conflicting signature requested at (height, round, step) {hrs}", given)
        last = self._state.last
        if last is not None and hrs <= last.hrs:
            raise SignRefused(f"(height, round, step) {hrs} is below the last signed {last.hrs}")
        sig = self._key.sign(domain, chain_id, payload)
        record = LastSigned(height, round, step, block_hash, sig, signed)
        recent = tuple(r for r in self._state.recent if r.height == height)[-RECENT_KEPT:] + (record,)
        new = replace(self._state, recent=recent)
        self._store.save(new)  # durable before the signature leaves this function
        self._state = new
        return sig


class MemorySignerState:
    """In-memory store: for tests and the simulator, where the object survives a simulated crash
    exactly as a file would (every save is 'durable' at once)."""

    def __init__(self) -> None:
        self.location = "<memory>"
        self.state = SignerState()
        self.saves = 0

    def load(self) -> SignerState:
        return self.state

    def save(self, state: SignerState) -> None:
        self.state = state
        self.saves += 1


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _hex_or_none(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def state_to_json(state: SignerState) -> bytes:
    """A readable JSON record (operators inspect it like CometBFT's state file) with a checksum."""
    body: dict[str, Any] = {
        "version": STATE_VERSION,
        "public_key": _hex_or_none(state.public_key),
        "floor": state.floor,
        "recent": [
            {
                "height": rec.height,
                "round": rec.round,
                "step": rec.step,
                "block_hash": _hex_or_none(rec.block_hash),
                "signature": rec.signature.hex(),
                "signed": rec.signed.hex(),
            }
            for rec in state.recent
        ],
    }
    return (json.dumps({**body, "checksum": _checksum(body)}, indent=1) + "\n").encode()


def state_from_json(data: bytes) -> SignerState:
    """Parse and check a state record; raise ValueError for anything but an intact record."""
    obj = json.loads(data)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    checksum = obj.pop("checksum", None)
    if checksum != _checksum(obj):
        raise ValueError("checksum mismatch")
    if obj.get("version") != STATE_VERSION:
        raise ValueError(f"unknown version {obj.get('version')!r}")
    pk = obj["public_key"]
    floor = obj["floor"]
    if not isinstance(floor, int) or floor < 0:
        raise ValueError("bad floor")
    recent: list[LastSigned] = []
    for raw in obj["recent"]:
        fields = (raw["height"], raw["round"], raw["step"])
        if not all(isinstance(x, int) and x >= 0 for x in fields) or raw["step"] not in (1, 2, 3):
            raise ValueError("bad height/round/step")
        bh = raw["block_hash"]
        recent.append(
            LastSigned(
                raw["height"],
                raw["round"],
                raw["step"],
                None if bh is None else bytes.fromhex(bh),
                bytes.fromhex(raw["signature"]),
                bytes.fromhex(raw["signed"]),
            )
        )
    if any(a.hrs >= b.hrs for a, b in zip(recent, recent[1:])):
        raise ValueError("recent signatures out of order")
    return SignerState(None if pk is None else bytes.fromhex(pk), tuple(recent), floor)


class FileSignerState:
    """A JSON state file, replaced atomically (tmp + fsync + rename + directory fsync) on every save.

    A crash mid-save leaves the previous file intact (and a stray `.tmp`, ignored and overwritten);
    anything else that is unreadable is damage and raises `SignerStateError` -- never silently
    treated as "nothing signed", which is exactly the state that would allow a double sign.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")

    def load(self) -> SignerState:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return SignerState()
        except OSError as exc:
            raise SignerStateError(f"signer state {self.path} cannot be read ({exc}): fix the file's permissions or disk") from None
        try:
            return state_from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise SignerStateError(
                f"signer state {self.path} is damaged ({exc}): restore it from a copy kept beside the key; "
                f"never just delete it (an empty state would let this validator sign conflicting votes)"
            ) from None

    def save(self, state: SignerState) -> None:
        data = state_to_json(state)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(self._tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise SignerStateError(f"signer state {self.path} cannot be written ({exc}): check the disk") from None
