"""Light client rules (wallet/lightclient.py) on in-memory chains of real headers and real signed
certificates: same-set and skipping verification, bisection, refusals, attacks, the trust file."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import crypto
from chain.block import make_block
from chain.ledger import VALIDATORS_KEY
from chain.state_tree import EmptyNodes, StateTree
from chain.validators import ValidatorSet
from consensus.certificate import CommitCertificate
from tests.wallet.wallet_testkit import CHAIN_ID, certificate, keys, vset
from wallet.lightclient import (
    MAX_TRUSTED_HEADERS,
    HeaderUnavailable,
    LightBlock,
    LightClient,
    LightClientAttack,
    LightClientError,
    TrustState,
    encode_validators,
)
from wallet.verified import validators_proof_ok

POOL = keys("lc-pool", 40)


class MemorySource:
    """A node that serves a prepared chain (honest or forged); counts what it was asked for."""

    def __init__(self, blocks: dict[int, LightBlock], name: str = "mem://node") -> None:
        self.blocks, self.name, self.asked = blocks, name, []  # type: list[int]

    async def light_block(self, height: int) -> LightBlock:
        self.asked.append(height)
        if height not in self.blocks:
            raise HeaderUnavailable(f"no header {height}")
        return self.blocks[height]


def build_chain(sets: list[list[crypto.PrivateKey]], chain_id: str = CHAIN_ID,
                signers: dict[int, list[crypto.PrivateKey]] | None = None, salt: bytes = b"",
                state_roots: dict[int, bytes] | None = None) -> dict[int, LightBlock]:
    """Heights 1..len(sets)-1; sets[h] signs height h (sets[0] is the genesis set)."""
    out: dict[int, LightBlock] = {}
    prev = crypto.sha256(b"genesis" + salt)
    for h in range(1, len(sets)):
        vs = vset(sets[h])
        b = make_block(chain_id=chain_id, height=h, time_ms=1_000 * h, prev_hash=prev,
                       state_root=(state_roots or {}).get(h, crypto.sha256(salt + h.to_bytes(8, "big"))),
                       proposer=crypto.address_of(vs.validators[0].pubkey), validators_hash=vs.hash, txs=())
        who = (signers or {}).get(h, sets[h])
        cert = CommitCertificate.decode(certificate(who, b, chain_id=chain_id))
        out[h] = LightBlock(b.header, cert, vs)
        prev = b.hash
    return out


def client(genesis: list[crypto.PrivateKey], saved: list[dict] | None = None) -> LightClient:
    state = TrustState.from_genesis_set(CHAIN_ID, vset(genesis))
    return LightClient(state, persist=(lambda s: saved.append(s.to_json())) if saved is not None else None)


def verify(lc: LightClient, src: MemorySource, height: int):  # type: ignore[no-untyped-def]
    return asyncio.run(lc.verify(src, height))


def rotating_sets(n: int, heights: int, every: int) -> list[list[crypto.PrivateKey]]:
    """n validators; every `every` heights one is replaced by a fresh key (so the set drifts away)."""
    current = POOL[:n]
    nxt = n
    out = []
    for h in range(heights + 1):
        if h and h % every == 0:
            current = current[1:] + [POOL[nxt % len(POOL)]]
            nxt += 1
        out.append(list(current))
    return out


def test_same_set_verifies_directly_and_is_persisted() -> None:
    sets = [POOL[:4]] * 30
    saved: list[dict] = []
    lc = client(POOL[:4], saved)
    src = MemorySource(build_chain(sets))
    t = verify(lc, src, 29)
    assert t.height == 29 and t.hash == src.blocks[29].header.hash
    assert src.asked == [29] and lc.state.latest.height == 29
    assert saved and TrustState.from_json(json.loads(json.dumps(saved[-1]))).latest.hash == t.hash


def test_changed_set_with_more_than_a_third_of_trusted_power_skips() -> None:
    sets = [POOL[:4]] * 10 + [POOL[:3] + [POOL[10]]] * 10  # one validator replaced at height 10
    lc = client(POOL[:4])
    src = MemorySource(build_chain(sets))
    assert verify(lc, src, 19).validators == vset(sets[19])
    assert src.asked == [19]


def test_drifted_set_needs_bisection_and_verifies() -> None:
    sets = rotating_sets(4, 64, 8)  # by height 32 none of the genesis validators is left
    lc = client(POOL[:4])
    src = MemorySource(build_chain(sets))
    t = verify(lc, src, 64)
    assert t.hash == src.blocks[64].header.hash
    assert len(src.asked) > 1, "no bisection happened"
    assert all(0 < h <= 64 for h in src.asked)
    # later heights start from the new anchor: one fetch
    src.asked.clear()
    src.blocks.update(build_chain(sets + [sets[-1]] * 3))
    verify(lc, src, 66)
    assert src.asked == [66]


def test_whole_set_replaced_in_one_block_is_refused_without_a_set_proof() -> None:
    sets = [POOL[:4]] * 5 + [POOL[20:24]] * 5
    lc = client(POOL[:4])
    with pytest.raises(LightClientError, match="shares too little power"):
        verify(lc, MemorySource(build_chain(sets)), 9)


def test_set_proof_bridges_a_full_replacement_between_adjacent_heights() -> None:
    sets = [POOL[:4]] * 5 + [POOL[20:24]] * 5
    blocks = build_chain(sets)
    blocks = {h: LightBlock(b.header, b.certificate, b.validators, validators_proof=f"proof-{h}")
              for h, b in blocks.items()}
    proven: list[tuple[bytes, int]] = []

    def check(state_root: bytes, lb: LightBlock) -> bool:
        proven.append((state_root, lb.height))
        return lb.validators_proof == f"proof-{lb.height}" and state_root == blocks[lb.height - 1].header.state_root

    lc = LightClient(TrustState.from_genesis_set(CHAIN_ID, vset(POOL[:4])), verify_validators_proof=check)
    assert verify(lc, MemorySource(blocks), 9).height == 9
    assert (blocks[4].header.state_root, 5) in proven


def _validator_set_state(keys_: list[crypto.PrivateKey]) -> tuple[bytes, str]:
    """(state root, hex StateProof of the validator-set key) of a real state tree holding that set."""
    tree = StateTree.empty().apply({VALIDATORS_KEY: encode_validators(vset(keys_)), b"a" + bytes(20): b"\x90"}, 4)
    value, proof = tree.tree_over(EmptyNodes()).prove(VALIDATORS_KEY)
    assert value == encode_validators(vset(keys_))
    return tree.root_hash, proof.encode().hex()


@pytest.mark.parametrize("proven_set", ["right", "wrong"])
def test_real_state_proof_of_the_set_bridges_a_full_replacement(proven_set: str) -> None:
    """Block 4's state root holds the set that signs block 5 (all four validators replaced): the real
    state-tree proof of that set is what lets the client cross; a proof of another set is refused."""
    sets = [POOL[:4]] * 5 + [POOL[20:24]] * 5
    root, _ = _validator_set_state(POOL[20:24])
    _, proof = _validator_set_state(POOL[20:24] if proven_set == "right" else POOL[30:34])
    blocks = build_chain(sets, state_roots={4: root})
    blocks[5] = LightBlock(blocks[5].header, blocks[5].certificate, blocks[5].validators, validators_proof=proof)
    lc = LightClient(TrustState.from_genesis_set(CHAIN_ID, vset(POOL[:4])), verify_validators_proof=validators_proof_ok)
    if proven_set == "right":
        assert verify(lc, MemorySource(blocks), 9).validators == vset(POOL[20:24])
    else:
        with pytest.raises(LightClientError, match="no validator-set proof verifies it"):
            verify(lc, MemorySource(blocks), 9)


def test_forged_header_signed_by_strangers_is_refused() -> None:
    honest = build_chain([POOL[:4]] * 10)
    forged = build_chain([POOL[:4]] * 9 + [POOL[30:34]], salt=b"fork")
    src = MemorySource({**honest, 9: forged[9]})
    with pytest.raises(LightClientError):
        verify(client(POOL[:4]), src, 9)


def test_certificate_below_two_thirds_of_its_own_set_is_refused() -> None:
    blocks = build_chain([POOL[:4]] * 5, signers={4: POOL[:2]})
    with pytest.raises(LightClientError, match="needs more than 2/3"):
        verify(client(POOL[:4]), MemorySource(blocks), 4)


def test_served_set_must_hash_to_validators_hash() -> None:
    b = build_chain([POOL[:4]] * 5)[4]
    lying = LightBlock(b.header, b.certificate, vset(POOL[:5]))
    with pytest.raises(LightClientError, match="does not hash to validators_hash"):
        verify(client(POOL[:4]), MemorySource({4: lying}), 4)


def test_conflicting_header_at_a_verified_height_is_an_attack() -> None:
    lc = client(POOL[:4])
    verify(lc, MemorySource(build_chain([POOL[:4]] * 10)), 9)
    # A second node with a different (validly signed!) block 9: a fork or a lie. Either way, an attack.
    other = MemorySource(build_chain([POOL[:4]] * 10, salt=b"fork"), name="http://liar")
    with pytest.raises(LightClientAttack, match="conflicting header at height 9") as e:
        verify(lc, other, 9)
    assert e.value.source == "http://liar"


def test_header_of_another_chain_is_an_attack() -> None:
    blocks = build_chain([POOL[:4]] * 5, chain_id="other-chain")
    with pytest.raises(LightClientAttack, match="other-chain"):
        verify(client(POOL[:4]), MemorySource(blocks), 4)


def test_height_zero_and_unavailable_headers() -> None:
    lc = client(POOL[:4])
    with pytest.raises(HeaderUnavailable):
        verify(lc, MemorySource({}), 0)
    with pytest.raises(HeaderUnavailable):
        verify(lc, MemorySource({}), 3)


def test_trust_file_is_bounded_and_refuses_damage() -> None:
    sets = [POOL[:4]] * (MAX_TRUSTED_HEADERS + 10)
    lc = client(POOL[:4])
    src = MemorySource(build_chain(sets))
    for h in range(1, len(sets)):
        verify(lc, src, h)
    assert len(lc.state.headers) == MAX_TRUSTED_HEADERS
    obj = lc.state.to_json()
    assert TrustState.from_json(obj).latest.hash == lc.state.latest.hash
    bad = json.loads(json.dumps(obj))
    key = next(iter(bad["validator_sets"]))
    bad["validator_sets"][key][0][1] = 7
    with pytest.raises(ValueError):
        TrustState.from_json(bad)


def test_below_the_newest_header_verifies_from_an_older_anchor() -> None:
    sets = rotating_sets(4, 40, 5)
    lc = client(POOL[:4])
    src = MemorySource(build_chain(sets))
    verify(lc, src, 40)
    t = verify(lc, src, 17)
    assert t.hash == src.blocks[17].header.hash


# -- properties ----------------------------------------------------------------------------------------


@st.composite
def drifting_chains(draw: st.DrawFn) -> tuple[list[list[crypto.PrivateKey]], int]:
    """Honest chains whose set changes by at most one validator per change, any number of changes."""
    n = draw(st.integers(3, 7))
    length = draw(st.integers(2, 60))
    sets, current, fresh = [], POOL[:n], n
    for h in range(length + 1):
        if h and draw(st.integers(0, 3)) == 0 and fresh < len(POOL):
            current = current[1:] + [POOL[fresh]]
            fresh += 1
        sets.append(list(current))
    return sets, draw(st.integers(1, length))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drifting_chains())
def test_property_an_honest_drifting_chain_always_verifies(case: tuple[list[list[crypto.PrivateKey]], int]) -> None:
    sets, target = case
    n = len(sets[0])
    lc = client(sets[0])
    src = MemorySource(build_chain(sets))
    t = verify(lc, src, target)
    assert t.hash == src.blocks[target].header.hash
    assert len(src.asked) <= 2 * (target.bit_length() + 1) * n  # bisection stays logarithmic-ish


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(4, 7), st.integers(2, 40), st.data())
def test_property_a_fork_signed_by_less_than_a_third_of_trusted_power_never_verifies(
    n: int, length: int, data: st.DataObject
) -> None:
    """The attacker holds every key outside the trusted set and fewer than 1/3 of the trusted power, and
    builds a whole alternative chain with those keys (any sets, any signers): it is always refused."""
    trusted = POOL[:n]
    corrupt = trusted[: (n - 1) // 3]  # power < 1/3 of n
    attackers = POOL[20:30]
    sets = [trusted]
    for _ in range(length):
        extra = data.draw(st.lists(st.sampled_from(attackers), min_size=1, max_size=6, unique=True))
        sets.append(corrupt + extra)
    target = data.draw(st.integers(1, length))
    with pytest.raises(LightClientError):
        verify(client(trusted), MemorySource(build_chain(sets, salt=b"attack")), target)


def test_trusted_power_counts_each_signer_once() -> None:
    from wallet.lightclient import trusted_signed_power

    b = build_chain([POOL[:4]] * 3)[2]
    assert b.certificate is not None
    assert trusted_signed_power(b.certificate, vset(POOL[:4])) == 4
    assert trusted_signed_power(b.certificate, ValidatorSet.from_pairs([(POOL[0].public_key, 5)])) == 5


def test_wallet_home_trust_file_round_trip_damage_and_re_pin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from wallet.errors import WalletError
    from wallet.store import PinnedValidator, WalletConfig, WalletHome

    def config(ks: list[crypto.PrivateKey]) -> WalletConfig:
        return WalletConfig(nodes=["http://127.0.0.1:1"], chain_id=CHAIN_ID, pinned_from="test",
                            validators=[PinnedValidator(pubkey=k.public_key.hex(), power=1) for k in ks])

    home = WalletHome(tmp_path / "w")
    cfg = config(POOL[:4])
    lc = LightClient(home.load_trust(cfg), persist=home.save_trust)
    verify(lc, MemorySource(build_chain([POOL[:4]] * 6)), 5)
    assert home.load_trust(cfg).latest.height == 5 and not list(home.root.glob("*.tmp"))
    assert home.load_trust(config(POOL[1:5])).latest.height == 0  # re-pinned: trust starts over
    home.light_client_path.write_text(home.light_client_path.read_text()[:-40])
    with pytest.raises(WalletError, match="damaged"):
        home.load_trust(cfg)


def test_malformed_header_answers_are_the_node_s_fault() -> None:
    good = build_chain([POOL[:4]] * 3)[2]
    answer = {"header_raw": good.header.encode().hex(), "certificate": good.certificate.encode().hex(),  # type: ignore[union-attr]
              "validators": [{"pubkey": v.pubkey.hex(), "power": v.power} for v in good.validators.validators]}
    assert LightBlock.from_json(answer).header == good.header
    for field, value in [("header_raw", "zz"), ("header_raw", good.header.encode().hex() + "00"),
                         ("certificate", "c0"), ("validators", []), ("validators", [{"pubkey": "00", "power": 1}]),
                         ("validators", [{"pubkey": POOL[0].public_key.hex(), "power": 1.5}])]:
        with pytest.raises(LightClientError, match="malformed header answer"):
            LightBlock.from_json({**answer, field: value}, "http://n")
