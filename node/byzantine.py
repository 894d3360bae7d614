"""TEST ONLY: a misbehaving validator, to prove honest nodes survive one.

Enabled solely by the environment variable PAYNET_UNSAFE_BYZANTINE_TEST_MODE (never by config, so an
operator cannot switch it on by editing a file). Modes, comma-separated:
- "equivocate": every vote this node signs is followed by a conflicting vote (same height, round and
  type, random block hash) signed with the same key -- double signing, which honest nodes must record
  as evidence;
- "garbage": every consensus message is followed by undecodable consensus bytes and a batch of junk
  transactions -- honest nodes must drop them, penalise this peer and keep committing;
- "lie_height": every STATUS announces height 2^62 (with the best "proof" one validator can make: a
  certificate holding only its own precommit) and no BLOCK_REQUEST is ever answered -- a node that
  fell behind must still catch up from the honest peers (block sync must not trust the claim);
- "mute_sync": STATUS is truthful but no BLOCK_REQUEST is ever answered -- the peer looks as good as
  an honest one, so sync requests to it must time out, be penalised and back off;
- "junk_sync": block requests are answered with the real commit certificates, each paired with the
  bytes of another block -- the lagging node must refuse them and blame this peer, never hand them to
  consensus (which halts on a certified block that does not validate).
- "vote_flood": after each of its own prevotes, the node floods its peers with consensus messages that
  cost a careless receiver CPU for nothing: the same vote FLOOD_REPLAYS times, FLOOD_STRANGERS votes
  validly signed by keys outside the validator set, and FLOOD_FUTURE votes of its own for the next
  height (random rounds and blocks, to fill a future-height buffer). Honest nodes must drop them
  cheaply, penalise this peer, and still take the honest proposal for the next height.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

from chain.crypto import PrivateKey, sha256
from consensus.certificate import CommitCertificate
from consensus.messages import Message, Vote, VoteType, encode_message
from network import messages as netmsg

ENV_VAR = "PAYNET_UNSAFE_BYZANTINE_TEST_MODE"
LIE_HEIGHT = 2**62
"""The height a "lie_height" node announces: far beyond anything a real chain reaches."""


def modes() -> frozenset[str]:
    """The modes PAYNET_UNSAFE_BYZANTINE_TEST_MODE asks for; read by `paynet-node run` alone, which hands
    them to `Node(byzantine_modes=...)` (the node itself never reads the environment)."""
    return frozenset(m.strip() for m in os.environ.get(ENV_VAR, "").split(",") if m.strip())


def wrap_broadcast(
    key: PrivateKey, chain_id: str, send: Callable[[netmsg.Message], object], active: frozenset[str]
) -> Callable[[Message], None]:
    """A consensus broadcast function that misbehaves according to `active` modes."""

    def broadcast(msg: Message) -> None:
        send(netmsg.Consensus(encode_message(msg)))
        if "equivocate" in active and isinstance(msg, Vote) and msg.validator == key.public_key:
            twin = Vote.create(key, chain_id, msg.vote_type, msg.height, msg.round, os.urandom(32))
            send(netmsg.Consensus(encode_message(twin)))
        if "vote_flood" in active and isinstance(msg, Vote) and msg.vote_type == VoteType.PREVOTE:
            _flood(key, chain_id, send, msg)
        if "garbage" in active:
            send(netmsg.Consensus(os.urandom(64)))
            send(netmsg.Txs(tuple(os.urandom(100) for _ in range(8))))

    return broadcast


FLOOD_REPLAYS = 2_000
FLOOD_STRANGERS = 300
FLOOD_FUTURE = 300


@cache
def _strangers(n: int) -> tuple[PrivateKey, ...]:
    return tuple(PrivateKey(sha256(b"paynet vote_flood stranger %d" % i)) for i in range(n))


def _flood(key: PrivateKey, chain_id: str, send: Callable[[netmsg.Message], object], vote: Vote) -> None:
    raw = encode_message(vote)
    for _ in range(FLOOD_REPLAYS):
        send(netmsg.Consensus(raw))
    for stranger in _strangers(FLOOD_STRANGERS):
        forged = Vote.create(stranger, chain_id, VoteType.PREVOTE, vote.height, vote.round, vote.block_hash)
        send(netmsg.Consensus(encode_message(forged)))
    for i in range(FLOOD_FUTURE):
        junk = Vote.create(key, chain_id, VoteType.PREVOTE, vote.height + 1, i % 50, os.urandom(32))
        send(netmsg.Consensus(encode_message(junk)))


def announced_status(active: frozenset[str], key: PrivateKey, chain_id: str, honest: netmsg.Status) -> netmsg.Status:
    """The STATUS this node sends: `honest` unless a mode makes it lie about its height."""
    if "lie_height" in active:
        return _lie(key, chain_id)
    return honest


@cache
def _lie(key: PrivateKey, chain_id: str) -> netmsg.Status:
    # One fixed block hash: the liar signs a single precommit at 2^62, never two conflicting ones.
    block_hash = sha256(b"paynet lie_height test mode")
    vote = Vote.create(key, chain_id, VoteType.PRECOMMIT, LIE_HEIGHT, 0, block_hash)
    cert = CommitCertificate(LIE_HEIGHT, 0, block_hash, ((key.public_key, vote.signature),))
    return netmsg.Status(LIE_HEIGHT, cert.encode())


def served_blocks(active: frozenset[str], blocks: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The (block, certificate) pairs this node answers with: "junk_sync" shifts the blocks by one, so
    every certificate is real and every block is real, but no block is the one its certificate signs."""
    if "junk_sync" not in active or not blocks:
        return blocks
    bodies = [b for b, _ in blocks]
    bodies = bodies[1:] + bodies[:1] if len(bodies) > 1 else [os.urandom(64)]
    return [(b, c) for b, (_, c) in zip(bodies, blocks)]


def serves_blocks(active: frozenset[str]) -> bool:
    """False when a mode tells this node to leave every block request unanswered."""
    return not ({"lie_height", "mute_sync"} & active)
