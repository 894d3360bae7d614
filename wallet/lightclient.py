"""Light client: trust a newer block header from a trusted one, following validator-set changes.

The wallet starts from the genesis validator set (pinned at `init`) and, for every header it is asked
to believe, checks signatures instead of replaying blocks. The rules are CometBFT's light-client rules
(light/verifier.go), adapted to paynet headers, which name the set that signs them
(`validators_hash`) but not the next one:

* same set: the untrusted header's set is the trusted header's set -> more than 2/3 of its power
  must have precommitted the header (the commit certificate);
* changed set ("skipping" verification): the certificate must carry more than 1/3 of the TRUSTED
  set's power (so at least one honest validator we already trust vouches for the new set) and more
  than 2/3 of the header's own set (fetched from the node, checked against `validators_hash`);
* neither: the jump is too long; verify the header halfway first, then continue from it (bisection).
  Between two adjacent heights a node may instead prove the new set with a state proof of the
  validator-set key against the trusted header's `state_root` (the set after block h signs h+1).

Security assumption, as CometBFT's: fewer than 1/3 of the power of every set the client has trusted
is byzantine. paynet has no unbonding period (validators are known institutions removed by
governance), so trust does not expire with time; the client moves its anchor forward with every
verification, so old sets matter only for headers below the newest trusted one.

A node that serves a header conflicting with one already verified at the same height, or a header of
another chain, raises `LightClientAttack` naming the node: the caller stops using it.

Pure logic and an abstract `HeaderSource`: no HTTP here (see wallet/verified.py), no file I/O (the
caller persists `TrustState` through the `persist` callback, atomically: wallet/store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from chain import crypto
from chain.block import BlockHeader
from chain.encoding import DecodeError, encode
from chain.validators import MAX_VALIDATORS
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate

from wallet.errors import WalletError

MAX_TRUSTED_HEADERS = 32
"""Verified headers kept (besides the root): anchors for headers below the newest one. Bounded file."""
MAX_BISECTION_STEPS = 64
"""Headers fetched to verify one target; a chain of 2^63 heights needs fewer than 64 halvings."""
MAX_HEADER_HEX = 4096
MAX_CERT_HEX = 2 * (1024 * 110 + 128)
TRUST_STATE_VERSION = 1


class LightClientError(WalletError):
    """A node's header does not verify (forged, wrong set, bad certificate): refuse it and that node."""

    exit_code = 3

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(f"{message} (from {source})" if source else message)
        self.reason, self.source = message, source


class LightClientAttack(LightClientError):
    """A node served a header that conflicts with one already verified, or one of another chain.
    Proof of a lying node (or of a fork): the node must not be used again."""


class HeaderUnavailable(WalletError):
    """The node cannot serve the header (unknown height, pruned, unreachable): not a lie, try another."""


class NotEnoughTrust(Exception):
    """Internal: the trusted set's signers carry 1/3 or less of its power; bisect."""


@dataclass(frozen=True)
class LightBlock:
    """What a node serves for one height: header, its commit certificate and the set that signed it.

    `validators_proof` (optional) is a state proof of the validator-set key after block height-1, i.e.
    of `validators`, against header height-1's state_root: the adjacent-height fallback."""

    header: BlockHeader
    certificate: CommitCertificate | None
    validators: ValidatorSet
    validators_proof: Any = None

    @property
    def height(self) -> int:
        return self.header.height

    @classmethod
    def from_json(cls, obj: Any, source: str | None = None) -> "LightBlock":
        """Parse a node's `GET /headers/{height}` answer; anything malformed is the node's fault."""
        def bad(why: str) -> LightClientError:
            return LightClientError(f"malformed header answer: {why}", source)

        if not isinstance(obj, Mapping):
            raise bad("not an object")
        header_raw = hex_field(obj.get("header_raw"), "header_raw", MAX_HEADER_HEX, bad)
        header = decode_canonical(header_raw, BlockHeader.decode, "header", bad)
        cert: CommitCertificate | None = None
        if obj.get("certificate") is not None:
            cert_raw = hex_field(obj.get("certificate"), "certificate", MAX_CERT_HEX, bad)
            cert = decode_canonical(cert_raw, CommitCertificate.decode, "certificate", bad)
        vals = obj.get("validators")
        if not isinstance(vals, list) or not 0 < len(vals) <= MAX_VALIDATORS:
            raise bad(f"validators must be a list of 1..{MAX_VALIDATORS}")
        try:
            vset = ValidatorSet.from_pairs([(_pubkey(v, bad), _power(v)) for v in vals])
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise bad(f"validators: {e}") from None
        return cls(header, cert, vset, obj.get("validators_proof"))


def hex_field(value: Any, what: str, max_hex: int, bad: Callable[[str], Exception]) -> bytes:
    """Bytes from a node's hex string, bounded; anything else is `bad(reason)`, the node's fault."""
    if not isinstance(value, str) or len(value) > max_hex:
        raise bad(f"{what} is missing or longer than {max_hex} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise bad(f"{what} is not hex") from None


class _Encodable(Protocol):
    def encode(self) -> bytes: ...


E = TypeVar("E", bound=_Encodable)


def decode_canonical(raw: bytes, decode: Callable[[bytes], E], what: str, bad: Callable[[str], Exception]) -> E:
    """decode(raw), refused unless `raw` is its canonical encoding: the bytes a hash or signature
    covers must be exactly the bytes checked, never a second spelling of them."""
    try:
        obj = decode(raw)
    except (DecodeError, ValueError) as e:
        raise bad(f"{what} does not decode: {e}") from None
    if obj.encode() != raw:
        raise bad(f"{what} is not canonically encoded")
    return obj


def _pubkey(v: Mapping[str, Any], bad: Callable[[str], Exception]) -> bytes:
    key = hex_field(v.get("pubkey"), "pubkey", 2 * crypto.PUBKEY_SIZE, bad)
    if len(key) != crypto.PUBKEY_SIZE:
        raise ValueError(f"pubkey must be {crypto.PUBKEY_SIZE} bytes")
    return key


def _power(v: Mapping[str, Any]) -> int:
    power = v["power"]
    if isinstance(power, bool) or not isinstance(power, int):
        raise ValueError("power must be an integer")
    return power


class HeaderSource(Protocol):
    """Where light blocks come from: one node. `name` (its URL) is what errors name."""

    name: str

    async def light_block(self, height: int) -> LightBlock:
        """The light block at `height`; HeaderUnavailable if the node cannot serve it."""
        ...


@dataclass(frozen=True)
class TrustedHeader:
    """A header this client verified (or the root: height 0, the pinned genesis set, no header)."""

    height: int
    validators: ValidatorSet
    header: BlockHeader | None = None

    @property
    def hash(self) -> bytes | None:
        return self.header.hash if self.header is not None else None

    @property
    def state_root(self) -> bytes | None:
        return self.header.state_root if self.header is not None else None


@dataclass
class TrustState:
    """Everything the light client persists: the chain it follows, the root, the verified headers
    (newest last, at most MAX_TRUSTED_HEADERS besides the root) and the nodes caught lying."""

    chain_id: str
    root: TrustedHeader
    headers: list[TrustedHeader] = field(default_factory=list)
    banned: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_genesis_set(cls, chain_id: str, validators: ValidatorSet) -> "TrustState":
        return cls(chain_id, TrustedHeader(0, validators))

    @property
    def latest(self) -> TrustedHeader:
        return self.headers[-1] if self.headers else self.root

    def at(self, height: int) -> TrustedHeader | None:
        for t in self.headers:
            if t.height == height:
                return t
        return None

    def anchor_below(self, height: int) -> TrustedHeader:
        """The highest trusted header strictly below `height` (the root at worst)."""
        best = self.root
        for t in self.headers:
            if best.height < t.height < height:
                best = t
        return best

    def add(self, t: TrustedHeader) -> None:
        if self.at(t.height) is not None:
            return
        self.headers.append(t)
        self.headers.sort(key=lambda x: x.height)
        while len(self.headers) > MAX_TRUSTED_HEADERS:
            self.headers.pop(0)

    # -- JSON (validator sets written once per distinct set) -----------------------------------------

    def to_json(self) -> dict[str, Any]:
        sets: dict[str, list[list[Any]]] = {}
        for t in [self.root, *self.headers]:
            sets[t.validators.hash.hex()] = [[v.pubkey.hex(), v.power] for v in t.validators.validators]
        return {
            "version": TRUST_STATE_VERSION,
            "chain_id": self.chain_id,
            "root_validators_hash": self.root.validators.hash.hex(),
            "headers": [{"height": t.height, "header_raw": t.header.encode().hex()}
                        for t in self.headers if t.header is not None],
            "validator_sets": sets,
            "banned_nodes": dict(self.banned),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "TrustState":
        """Raises ValueError on anything inconsistent: a damaged trust file is never half-trusted."""
        if obj.get("version") != TRUST_STATE_VERSION:
            raise ValueError(f"unknown light client state version {obj.get('version')!r}")
        sets: dict[bytes, ValidatorSet] = {}
        for h, pairs in dict(obj["validator_sets"]).items():
            vset = ValidatorSet.from_pairs([(bytes.fromhex(pk), int(p)) for pk, p in pairs])
            if vset.hash.hex() != h:
                raise ValueError("a stored validator set does not match its hash")
            sets[vset.hash] = vset
        root = TrustedHeader(0, sets[bytes.fromhex(obj["root_validators_hash"])])
        chain_id = str(obj["chain_id"])
        state = cls(chain_id, root, banned={str(k): str(v) for k, v in dict(obj.get("banned_nodes", {})).items()})
        for item in obj["headers"]:
            header = BlockHeader.decode(bytes.fromhex(item["header_raw"]))
            if header.height != int(item["height"]) or header.chain_id != chain_id:
                raise ValueError(f"stored header {item['height']} is inconsistent")
            state.add(TrustedHeader(header.height, sets[header.validators_hash], header))
        return state


# -- pure verification rules -----------------------------------------------------------------------------


def check_light_block(lb: LightBlock, chain_id: str, source: str | None = None) -> None:
    """Checks that need no trust: right chain, the served set is the one the header names, and more
    than 2/3 of that set precommitted exactly this header. A header of another chain is an attack."""
    if lb.header.chain_id != chain_id:
        raise LightClientAttack(f"header {lb.height} is for chain {lb.header.chain_id!r}, not {chain_id!r}", source)
    if lb.validators.hash != lb.header.validators_hash:
        raise LightClientError(f"header {lb.height}: the validator set served does not hash to validators_hash",
                               source)
    if lb.certificate is None:
        raise LightClientError(f"header {lb.height} has no commit certificate", source)
    try:
        verify_commit_certificate(lb.certificate, lb.validators, chain_id, lb.height, lb.header.hash)
    except CertificateError as e:
        raise LightClientError(f"header {lb.height}: commit certificate: {e}", source) from None


def trusted_signed_power(cert: CommitCertificate, trusted: ValidatorSet) -> int:
    """Power of the TRUSTED set among the certificate's signers. Call after check_light_block: every
    signature in the certificate is then known valid for this chain, height and block hash."""
    return sum(trusted.power_of(pk) for pk in {pk for pk, _ in cert.precommits})


def verify_step(
    trusted: TrustedHeader,
    lb: LightBlock,
    chain_id: str,
    source: str | None = None,
    verify_validators_proof: Callable[[bytes, LightBlock], bool] | None = None,
) -> None:
    """Accept `lb` on the strength of `trusted`, or raise: NotEnoughTrust (bisect) or LightClientError.

    `verify_validators_proof(state_root, lb)` checks lb.validators_proof against a trusted state root
    (the adjacent-height fallback; None when state proofs are not available)."""
    if lb.height <= trusted.height:
        raise LightClientError(f"header {lb.height} is not above the trusted height {trusted.height}", source)
    check_light_block(lb, chain_id, source)
    if trusted.header is not None and lb.header.time_ms < trusted.header.time_ms:
        raise LightClientError(f"header {lb.height} is older than trusted header {trusted.height}", source)
    if trusted.header is not None and lb.height == trusted.height + 1 and lb.header.prev_hash != trusted.hash:
        raise LightClientAttack(f"header {lb.height} does not extend the verified header {trusted.height}", source)
    if lb.validators.hash == trusted.validators.hash:
        return  # same set: check_light_block already found > 2/3 of it
    assert lb.certificate is not None
    if trusted_signed_power(lb.certificate, trusted.validators) >= trusted.validators.one_third_power:
        return
    if (lb.height == trusted.height + 1 and trusted.state_root is not None and verify_validators_proof is not None
            and lb.validators_proof is not None and verify_validators_proof(trusted.state_root, lb)):
        return
    raise NotEnoughTrust()


# -- the client ----------------------------------------------------------------------------------------


class LightClient:
    """Holds a TrustState and moves it forward. One verification at a time (not thread-safe)."""

    def __init__(
        self,
        state: TrustState,
        persist: Callable[[TrustState], None] | None = None,
        verify_validators_proof: Callable[[bytes, LightBlock], bool] | None = None,
    ) -> None:
        self.state = state
        self._persist = persist
        self._verify_validators_proof = verify_validators_proof
        self.fetched = 0  # light blocks fetched for bisection (reporting, tests)

    @property
    def chain_id(self) -> str:
        return self.state.chain_id

    def is_banned(self, source: str) -> bool:
        return source in self.state.banned

    def ban(self, source: str, reason: str) -> None:
        """Remember a node caught lying (persisted: later runs skip it too)."""
        self.state.banned[source] = reason
        self._save()

    async def verify(self, source: HeaderSource, height: int, served: LightBlock | None = None) -> TrustedHeader:
        """The verified header at `height`, fetched from `source` (or `served`, already fetched with a
        proof), bisecting from the highest trusted header below it when the set changed too much."""
        if height <= 0:
            raise HeaderUnavailable("height 0 (genesis) carries no signatures; wait for block 1")
        target = served if served is not None else await self._fetch(source, height)
        known = self._known(target, height, source.name)
        if known is not None:
            return known
        trusted = self.state.anchor_below(height)
        pending = [target]
        steps = 0
        while pending:
            candidate = pending[-1]
            try:
                verify_step(trusted, candidate, self.chain_id, source.name, self._verify_validators_proof)
            except NotEnoughTrust:
                if candidate.height == trusted.height + 1:
                    raise LightClientError(
                        f"header {candidate.height}: its validator set shares too little power with the verified"
                        f" set of header {trusted.height} and no validator-set proof verifies it", source.name
                    ) from None
                steps += 1
                if steps > MAX_BISECTION_STEPS:
                    raise LightClientError(f"more than {MAX_BISECTION_STEPS} bisection steps", source.name) from None
                pending.append(await self._fetch(source, (trusted.height + candidate.height) // 2))
                continue
            pending.pop()
            trusted = TrustedHeader(candidate.height, candidate.validators, candidate.header)
            self.state.add(trusted)
        self._save()
        return trusted

    async def _fetch(self, source: HeaderSource, height: int) -> LightBlock:
        lb = await source.light_block(height)
        self.fetched += 1
        self._known(lb, height, source.name)
        return lb

    def _known(self, lb: LightBlock, height: int, source: str) -> TrustedHeader | None:
        """The header already verified at `height` (None if none), after checking that `lb` is for that
        height and, if one was verified there, is that very header: anything else is an attack."""
        if lb.height != height:
            raise LightClientError(f"asked for header {height}, got {lb.height}", source)
        known = self.state.at(height)
        if known is not None and known.hash != lb.header.hash:
            raise LightClientAttack(
                f"conflicting header at height {height}: {lb.header.hash.hex()[:16]}… differs from the verified"
                f" {known.hash.hex()[:16] if known.hash else '?'}…", source
            )
        return known

    def _save(self) -> None:
        if self._persist is not None:
            self._persist(self.state)


def encode_validators(vset: ValidatorSet) -> bytes:
    """The state value of the validator-set key: canonical [[pubkey, power]...] (chain/ledger.py)."""
    return encode(vset.to_list())


__all__ = [
    "HeaderSource", "HeaderUnavailable", "LightBlock", "LightClient", "LightClientAttack", "LightClientError",
    "MAX_TRUSTED_HEADERS", "TrustState", "TrustedHeader", "check_light_block", "decode_canonical", "encode_validators", "hex_field",
    "trusted_signed_power", "verify_step",
]
