"""PeerManager over real TLS sockets on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest

from network.framing import HEADER, encode_frame
from network.messages import BlockRequest, BlockResponse, Consensus, Hello, Status, Txs, encode_message
from network.pki import build_tls_context
from network.transport import LinkConfig, tls_connect

from netkit import (
    CHAIN_ID,
    GENESIS,
    Pki,
    raw_client,
    read_until_closed,
    recv_within,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


def addr(pm):
    return pm.listen_address


async def test_two_peers_exchange_messages_both_ways(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    a = await make_manager(a_id, allowed)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: a.connected_peers() == [b_id.pub] and b.connected_peers() == [a_id.pub])

    assert b.send(a_id.pub, Txs((b"tx1", b"tx2")))
    assert await recv_within(a) == (b_id.pub, Txs((b"tx1", b"tx2")))
    assert a.send(b_id.pub, BlockResponse(((b"block", b"cert"),)))
    assert await recv_within(b) == (a_id.pub, BlockResponse(((b"block", b"cert"),)))
    assert a.send(b_id.pub, BlockRequest(5, 3))
    assert await recv_within(b) == (a_id.pub, BlockRequest(5, 3))

    info = a.peer_info(b_id.pub)
    assert info is not None and not info.outbound
    assert a.stats.frames_in >= 1 and a.stats.bytes_out > 0 and a.stats.peers_connected == 1


async def test_three_peers_full_mesh_one_link_per_pair_and_broadcast(pki, make_manager):
    ids = [pki.identity(n) for n in "abc"]
    allowed = {i.pub for i in ids}
    a = await make_manager(ids[0], allowed)
    b = await make_manager(ids[1], allowed, peers=(addr(a),))
    c = await make_manager(ids[2], allowed, peers=(addr(a), addr(b)))
    # a and b also dial everyone: every pair dials in both directions, exercising the tie break.
    a.add_peer_address(*addr(b))
    a.add_peer_address(*addr(c))
    b.add_peer_address(*addr(c))
    pms = [a, b, c]
    await wait_until(lambda: all(len(pm.connected_peers()) == 2 for pm in pms), what="full mesh")

    # Exactly one physical link per pair: the ends agree on who dialled.
    for x in pms:
        for y in pms:
            if x is not y:
                lx, ly = x._links[y.pubkey], y._links[x.pubkey]
                assert lx.outbound != ly.outbound
                dialer = x.pubkey if lx.outbound else y.pubkey
                assert dialer == min(x.pubkey, y.pubkey)

    assert a.broadcast(Consensus(b"vote-from-a")) == 2
    assert await recv_within(b) == (a.pubkey, Consensus(b"vote-from-a"))
    assert await recv_within(c) == (a.pubkey, Consensus(b"vote-from-a"))
    assert c.broadcast(Status(7), exclude=[b.pubkey]) == 1
    assert await recv_within(a) == (c.pubkey, Status(7))
    assert a.peer_info(c.pubkey).height == 7
    assert b.recv_nowait() is None


async def test_client_from_other_ca_cannot_connect(pki, make_manager):
    a_id = pki.identity("a")
    rogue_pki = Pki("rogue")
    rogue = rogue_pki.identity("rogue")
    a = await make_manager(a_id, {a_id.pub, rogue.pub})  # even allowed by key, the CA must match

    # Raw attempt: TLS 1.3 reports the server's rejection of our certificate on first read.
    ctx = build_tls_context(rogue.key.seed, rogue.cert, rogue.ca, server=False)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, asyncio.IncompleteReadError, AssertionError)):
        reader, writer = await tls_connect("127.0.0.1", addr(a)[1], ctx, 2.0)
        writer.write(encode_frame(encode_message(Hello(CHAIN_ID, GENESIS, 0))))
        writer.write(encode_frame(encode_message(Consensus(b"forged"))))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), 5.0)
        assert data, "connection closed"
    # A full manager on the rogue CA cannot link either.
    r = await make_manager(rogue, {a_id.pub, rogue.pub}, peers=(addr(a),))
    await wait_until(lambda: a.stats.handshake_failures >= 2 and r.stats.dial_failures + r.stats.handshake_failures >= 1)
    assert a.connected_peers() == [] and r.connected_peers() == []
    assert a.recv_nowait() is None


async def test_right_ca_but_key_not_allowed_is_refused(pki, make_manager):
    a_id, b_id, stranger = pki.identity("a"), pki.identity("b"), pki.identity("stranger")
    a = await make_manager(a_id, {a_id.pub, b_id.pub})
    s = await make_manager(stranger, {a_id.pub, stranger.pub}, peers=(addr(a),))
    b = await make_manager(b_id, {a_id.pub, b_id.pub}, peers=(addr(a),))
    await wait_until(lambda: a.stats.refused_identity >= 1 and b.pubkey in a.connected_peers())
    assert stranger.pub not in a.connected_peers()
    assert s.connected_peers() == []
    # Governance removes b: refresh drops its link, and its redials are refused.
    allowed_now = {a_id.pub}
    a._allowed_keys = lambda: allowed_now
    a.refresh_allowed()
    await wait_until(lambda: a.connected_peers() == [])
    before = a.stats.refused_identity
    await wait_until(lambda: a.stats.refused_identity > before, what="b's redial refused")
    assert a.connected_peers() == []


async def test_peer_on_other_chain_is_refused(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    a = await make_manager(a_id, allowed)
    b = await make_manager(b_id, allowed, peers=(addr(a),), chain_id="other-chain")
    await wait_until(lambda: a.stats.refused_hello >= 1 and b.stats.refused_hello >= 1)
    assert a.connected_peers() == [] and b.connected_peers() == []


@pytest.mark.parametrize(
    "bad",
    [
        HEADER.pack(2**31) + b"x" * 16,  # announces 2 GiB
        HEADER.pack(6) + b"\xc1garbg",  # 0xc1 is never valid msgpack
        encode_frame(b"\x92\x63\xc0"),  # well-formed envelope, unknown msg type 99
        HEADER.pack(0),  # empty frame
    ],
    ids=["oversized", "garbage", "unknown-type", "empty"],
)
async def test_bad_frame_disconnects_sender_and_server_keeps_serving(pki, make_manager, bad):
    a_id, b_id, evil_id = pki.identity("a"), pki.identity("b"), pki.identity("evil")
    allowed = {a_id.pub, b_id.pub, evil_id.pub}
    a = await make_manager(a_id, allowed)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: b_id.pub in a.connected_peers())

    reader, writer = await raw_client(addr(a)[1], evil_id)
    await wait_until(lambda: evil_id.pub in a.connected_peers())
    writer.write(bad)
    await writer.drain()
    await read_until_closed(reader)
    await wait_until(lambda: evil_id.pub not in a.connected_peers())
    assert a.scores.score(evil_id.pub, time.monotonic()) < 0
    assert a.stats.oversized_frames + a.stats.malformed_frames + a.stats.malformed_messages == 1
    writer.close()

    assert b.send(a_id.pub, Consensus(b"still here"))
    assert await recv_within(a) == (b_id.pub, Consensus(b"still here"))


async def test_garbage_instead_of_hello_is_refused(pki, make_manager):
    a_id, evil_id = pki.identity("a"), pki.identity("evil")
    a = await make_manager(a_id, {a_id.pub, evil_id.pub})
    reader, writer = await raw_client(addr(a)[1], evil_id, hello=None)
    writer.write(b"\xff" * 64)
    await writer.drain()
    await read_until_closed(reader)
    assert a.stats.refused_hello == 1 and a.connected_peers() == []
    writer.close()


async def test_restarted_peer_is_redialled(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    b = await make_manager(b_id, allowed)
    port = addr(b)[1]
    events: list[tuple[str, bytes]] = []
    a = await make_manager(a_id, allowed, peers=(("127.0.0.1", port),), events=events)
    await wait_until(lambda: a.connected_peers() == [b_id.pub])
    assert a.send(b_id.pub, Status(1))
    assert await recv_within(b) == (a_id.pub, Status(1))

    await b.stop()
    await wait_until(lambda: a.connected_peers() == [], what="a notices b is gone")
    await wait_until(lambda: a.stats.dial_failures >= 1, what="a redials while b is down")

    b2 = await make_manager(b_id, allowed, listen_port=port)
    await wait_until(lambda: a.connected_peers() == [b_id.pub] and b2.connected_peers() == [a_id.pub])
    assert a.send(b_id.pub, Status(2))
    assert await recv_within(b2) == (a_id.pub, Status(2))
    assert b2.send(a_id.pub, Status(3))
    assert await recv_within(a) == (b_id.pub, Status(3))
    assert events == [("up", b_id.pub), ("down", b_id.pub), ("up", b_id.pub)]


async def test_send_queue_is_bounded_under_slow_reader(pki, make_manager):
    a_id, slow_id = pki.identity("a"), pki.identity("slow")
    link_cfg = LinkConfig(
        send_queue_items=8, send_queue_bytes=1 << 20, idle_timeout=30.0, keepalive_interval=1.0, write_timeout=30.0
    )
    a = await make_manager(a_id, {a_id.pub, slow_id.pub}, link=link_cfg)
    reader, writer = await raw_client(addr(a)[1], slow_id)  # admitted, then never reads again
    await wait_until(lambda: slow_id.pub in a.connected_peers())
    link = a._links[slow_id.pub]
    payload = Consensus(b"\x00" * 65536)
    for _ in range(400):  # ~26 MB offered to a peer that reads nothing
        a.send(slow_id.pub, payload)
        assert len(link.queue) <= 8 and link.queue.nbytes <= 1 << 20
        await asyncio.sleep(0)
    await wait_until(lambda: a.stats.send_drops > 0)
    assert link.queue.high_water <= 8
    # Everything written went to the kernel/TLS buffers, bounded by asyncio's write high-water mark.
    assert link.bytes_out < 400 * 65536 // 2
    assert a.send(slow_id.pub, payload, refuse=True) is False
    writer.close()


async def test_idle_link_times_out_and_silent_tcp_is_dropped(pki, make_manager):
    a_id, quiet_id = pki.identity("a"), pki.identity("quiet")
    a = await make_manager(
        a_id,
        {a_id.pub, quiet_id.pub},
        inbound_handshake_timeout=0.5,
        link=LinkConfig(idle_timeout=0.5, keepalive_interval=0.2),
    )
    reader, writer = await raw_client(addr(a)[1], quiet_id)  # admitted, then silent
    await read_until_closed(reader)
    assert a.stats.idle_timeouts == 1
    writer.close()

    # Plain TCP that never starts TLS: dropped at the handshake timeout.
    r2, w2 = await asyncio.open_connection(*addr(a))
    await read_until_closed(r2)
    await wait_until(lambda: a.stats.handshake_failures >= 1)
    w2.close()


async def _hold_raw(host_ip: str, port: int, client_hello: bool = False):
    """A stranger's TCP connection from `host_ip` that never authenticates (optionally half-done TLS)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(host_ip, 0))
    if client_hello:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            ctx.wrap_bio(incoming, outgoing).do_handshake()
        except ssl.SSLWantReadError:
            pass
        writer.write(outgoing.read())
    return reader, writer


async def test_handshake_per_ip_cap(pki, make_manager):
    a_id = pki.identity("a")
    a = await make_manager(a_id, {a_id.pub}, max_handshakes=8, max_handshakes_per_ip=2)
    held = [await _hold_raw("127.0.0.2", addr(a)[1]) for _ in range(2)]
    await wait_until(lambda: a.handshakes_in_progress == 2)
    r3, w3 = await _hold_raw("127.0.0.2", addr(a)[1])
    await read_until_closed(r3)
    assert a.stats.refused_handshake_per_ip == 1
    other = await _hold_raw("127.0.0.3", addr(a)[1])  # another address still gets a slot
    await wait_until(lambda: a.handshakes_in_progress == 3)
    for _, w in held + [(r3, w3), other]:
        w.close()


async def test_half_done_tls_is_dropped_at_the_inbound_deadline_and_frees_its_slot(pki, make_manager):
    a_id = pki.identity("a")
    a = await make_manager(a_id, {a_id.pub}, inbound_handshake_timeout=0.3)
    reader, writer = await _hold_raw("127.0.0.2", addr(a)[1], client_hello=True)
    t0 = time.monotonic()
    await read_until_closed(reader, timeout=3)
    assert time.monotonic() - t0 < 2
    await wait_until(lambda: a.handshakes_in_progress == 0 and a.stats.handshake_failures == 1)
    writer.close()


async def test_validator_gets_in_while_strangers_fill_the_handshake_pool(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    # A long deadline: without eviction the strangers would hold every slot for 30 s.
    a = await make_manager(a_id, allowed, max_handshakes=4, max_handshakes_per_ip=2, inbound_handshake_timeout=30)
    strangers = [await _hold_raw(ip, addr(a)[1], client_hello=i % 2 == 0)
                 for i, ip in enumerate(["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"])]
    await wait_until(lambda: a.handshakes_in_progress == 4)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: a.connected_peers() == [b_id.pub] and b.connected_peers() == [a_id.pub])
    assert a.stats.handshakes_evicted >= 1
    assert a.handshakes_in_progress <= 4 and a.inbound_links == 1
    for _, w in strangers:
        w.close()


async def test_established_links_have_their_own_limit(pki, make_manager):
    a_id, b_id, c_id = pki.identity("a"), pki.identity("b"), pki.identity("c")
    allowed = {a_id.pub, b_id.pub, c_id.pub}
    a = await make_manager(a_id, allowed, max_inbound=1, max_handshakes=1)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: a.connected_peers() == [b_id.pub])
    # The link does not hold the only handshake slot: c still gets through TLS and HELLO, and is then
    # refused by the established-link limit, not by a full handshake pool.
    c = await make_manager(c_id, allowed, peers=(addr(a),))
    await wait_until(lambda: a.stats.refused_inbound_limit >= 1)
    assert a.stats.refused_handshake_limit == 0
    assert a.connected_peers() == [b_id.pub] and a.inbound_links == 1
    # c may have counted the link for the moment between its HELLO and a's refusal reaching it.
    await wait_until(lambda: c.connected_peers() == [])
    assert b.connected_peers() == [a_id.pub]


async def test_inbox_is_bounded_in_bytes_and_delivers_everything_in_order(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    a = await make_manager(a_id, allowed, inbox_bytes=200_000)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: a.connected_peers() == [b_id.pub])
    msgs = [Consensus(bytes([i]) * 50_000) for i in range(40)]  # 2 MB in all, 10x the inbox bound
    for m in msgs:
        assert b.send(a_id.pub, m)
    await wait_until(lambda: a._inbox.waiting_writers == 1, what="the link blocked on a full inbox")
    assert a._inbox.nbytes <= 200_000
    got = [await recv_within(a) for _ in msgs]
    assert got == [(b_id.pub, m) for m in msgs]
    assert a._inbox.high_water_bytes <= 200_000


async def test_penalize_bans_and_refuses_redial(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    a = await make_manager(a_id, allowed, ban_seconds=60.0)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: a.connected_peers() == [b_id.pub])
    assert a.penalize(b_id.pub, "invalid_tx") is False
    assert a.connected_peers() == [b_id.pub]  # a small penalty does not cut the link
    assert a.penalize(b_id.pub, "invalid_block", amount=200) is True
    await wait_until(lambda: a.connected_peers() == [] and b.connected_peers() == [])
    refused = a.stats.refused_identity
    await wait_until(lambda: a.stats.refused_identity > refused, what="banned peer's redial refused")
    assert a.connected_peers() == [] and a.stats.bans == 1


async def test_stop_is_clean(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    a = await make_manager(a_id, allowed)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: len(a.connected_peers()) == 1)
    ours = [t for t in asyncio.all_tasks() if "Link(" in t.get_name() or t.get_name().startswith("dial-")]
    assert len(ours) >= 5  # b's dialer + read/write tasks of both link ends
    await a.stop()
    await b.stop()
    assert a.connected_peers() == [] and b.connected_peers() == []
    assert all(t.done() for t in ours), [t for t in ours if not t.done()]
    with pytest.raises((ConnectionError, OSError)):
        await asyncio.open_connection(*addr(a))


async def test_keepalive_holds_an_idle_link_open(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    fast_link = LinkConfig(idle_timeout=0.4, keepalive_interval=0.05)
    a = await make_manager(a_id, allowed, link=fast_link)
    b = await make_manager(b_id, allowed, peers=(addr(a),), link=fast_link)
    await wait_until(lambda: a.connected_peers() == [b_id.pub])
    # Many idle timeouts' worth of PINGs go by without any disconnect.
    await wait_until(lambda: a.stats.frames_in >= 30 and b.stats.frames_in >= 30, timeout=10)
    assert a.stats.disconnects == 0 and b.stats.disconnects == 0 and a.stats.idle_timeouts == 0
    assert a.recv_nowait() is None  # PINGs are not delivered to the node


async def test_block_sized_message_crosses_a_link(pki, make_manager):
    a_id, b_id = pki.identity("a"), pki.identity("b")
    allowed = {a_id.pub, b_id.pub}
    a = await make_manager(a_id, allowed)
    b = await make_manager(b_id, allowed, peers=(addr(a),))
    await wait_until(lambda: a.connected_peers() == [b_id.pub])
    big = BlockResponse(((bytes(range(256)) * (6 * 4096), b"cert"),))  # a 6 MiB block
    assert b.send(a_id.pub, big)
    assert await recv_within(a, timeout=20) == (b_id.pub, big)
