"""The chain store's key layout: one LevelDB, keys by prefix (values are canonical msgpack).

    m:genesis         genesis hash (written last at creation: its presence means "initialised")
    m:head            [height, block hash]
    m:delta           encoded writes of the head block (encode_changes), to verify the head at open
    m:tree_oldest     u64: oldest height whose state tree is kept (state proofs answer heights oldest..head)
    b + u64 height    block bytes            r + u64 height   header bytes (cheap header reads)
    h + block hash    u64 height             t + tx id        [height, index]
    c + u64 height    commit certificate (opaque bytes owned by consensus)
    s + state key     state value (see chain.ledger)
    V + u64 height    validator set that signs blocks from that height on (written when it changes;
                      kept for the evidence window: `validators_at`)
    E + evidence id   u64 height of the block that carried that evidence (`evidence_committed_at`)
    n + node key      state tree node (chain/state_tree.py: u64 version it was created at + position)
    z + u64 h + node key   stale index: the node is unreachable from the tree of height h on
    R + u64 height    root of the state tree after that height (`encode_root`)
    x + address + u64 height + u32 index   tx id: the account index, txs that touch an account
                      (sender or recipient), newest first for `account_history`

State keys (after `s`) are chain/ledger.py's: b"a" + address (account), b"s" + asset id (asset), b"v"
(validator set), and governance's b"m" (members) and b"g..." entries (proposals, open-proposal
index, protocol upgrade; chain/governance.py).
"""

from __future__ import annotations

import struct

K_GENESIS = b"m:genesis"
K_HEAD = b"m:head"
K_DELTA = b"m:delta"
K_TREE_OLDEST = b"m:tree_oldest"
P_BLOCK = b"b"
P_HEADER = b"r"
P_HASH = b"h"
P_TX = b"t"
P_CERT = b"c"
P_STATE = b"s"
P_ACCOUNT_TX = b"x"  # address + height + index -> tx id: txs that touch an account (sender or recipient)
P_VALSET = b"V"  # u64 height -> validator set signing from that height on (only when it changes)
P_EVIDENCE = b"E"  # evidence id -> u64 height of the block that committed it
P_TREE_NODE = b"n"  # state tree node key -> node
P_TREE_STALE = b"z"  # u64 stale-since height + node key -> b""
P_TREE_ROOT = b"R"  # u64 height -> root reference of that height's tree

U64 = struct.Struct(">Q")


























def hkey(height: int) -> bytes:
    """The key suffix of a height-keyed entry: big-endian, so key order is height order."""
    return U64.pack(height)
