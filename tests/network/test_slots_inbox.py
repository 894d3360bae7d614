"""Handshake slot pool (pure) and the byte-bounded inbox (asyncio, no sockets)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from network.inbox import Inbox
from network.slots import HandshakePool, KnownAddresses

IPS = [f"10.0.0.{i}" for i in range(8)]


# -- handshake pool ---------------------------------------------------------------------------------


def test_per_ip_cap_refuses_the_extra_connection():
    pool = HandshakePool(max_total=10, max_per_ip=2)
    assert pool.admit("1.1.1.1").admitted and pool.admit("1.1.1.1").admitted
    refused = pool.admit("1.1.1.1")
    assert not refused.admitted and refused.reason == "per_ip"
    assert pool.admit("2.2.2.2").admitted


def test_full_pool_evicts_the_oldest_slot_of_the_busiest_stranger():
    pool = HandshakePool(max_total=4, max_per_ip=4)
    a = [pool.admit("6.6.6.6").slot for _ in range(3)]
    b = pool.admit("7.7.7.7").slot
    new = pool.admit("1.2.3.4")
    assert new.admitted and new.evicted == (a[0],)
    assert b is not None and pool.held_by("6.6.6.6") == 2
    pool.check()


def test_a_stranger_cannot_evict_to_gain_more_than_its_victim():
    pool = HandshakePool(max_total=2, max_per_ip=4)
    pool.admit("6.6.6.6")
    pool.admit("7.7.7.7")
    again = pool.admit("6.6.6.6")  # would hold 2 against the victim's 1
    assert not again.admitted and again.reason == "full"


def test_known_address_evicts_any_stranger_and_is_never_evicted_by_one():
    pool = HandshakePool(max_total=2, max_per_ip=2)
    pool.admit("6.6.6.6")
    pool.admit("7.7.7.7")
    v1 = pool.admit("127.0.0.1", known=True)
    assert v1.admitted and len(v1.evicted) == 1
    v2 = pool.admit("127.0.0.1", known=True)
    assert v2.admitted and len(v2.evicted) == 1
    stranger = pool.admit("8.8.8.8")  # only known slots left: nothing to evict
    assert not stranger.admitted and stranger.reason == "full"


def test_release_is_idempotent():
    pool = HandshakePool(max_total=2, max_per_ip=2)
    slot = pool.admit("1.1.1.1").slot
    assert slot is not None
    pool.release(slot)
    pool.release(slot)
    assert len(pool) == 0 and pool.held_by("1.1.1.1") == 0
    pool.check()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(IPS), st.booleans(), st.integers(0, 40)), max_size=120))
def test_pool_bounds_hold_and_known_addresses_always_get_in(ops):
    pool = HandshakePool(max_total=5, max_per_ip=2)
    known_ips = set(IPS[:2])
    held: list[int] = []
    for ip, release, pick in ops:
        if release and held:
            pool.release(held.pop(pick % len(held)))
            continue
        known = ip in known_ips
        strangers_before = sum(1 for s in pool._slots.values() if not s.known)
        room_for_ip = pool.held_by(ip) < pool.max_per_ip
        adm = pool.admit(ip, known=known)
        for v in adm.evicted:
            assert v in held
            held.remove(v)
        if adm.admitted:
            assert adm.slot is not None
            held.append(adm.slot)
        if known and room_for_ip:
            # A known address is refused only when every slot is already held by known addresses.
            assert adm.admitted or strangers_before == 0
        pool.check()
        assert sorted(held) == sorted(pool._slots)


def test_known_addresses_forget_the_oldest_beyond_the_limit():
    known = KnownAddresses(limit=2)
    for ip in ("a", "b", "a", "c"):
        known.add(ip)
    assert "a" in known and "c" in known and "b" not in known and len(known) == 2


# -- inbox --------------------------------------------------------------------------------------------


async def test_inbox_bounds_bytes_and_blocks_the_writer():
    inbox: Inbox[str] = Inbox(max_items=100, max_bytes=1000)
    await inbox.put("a", 600)
    writer = asyncio.create_task(inbox.put("b", 600))
    await asyncio.sleep(0)
    assert not writer.done() and inbox.nbytes == 600 and inbox.waiting_writers == 1
    assert await inbox.get() == "a"
    await asyncio.wait_for(writer, 1)
    assert inbox.nbytes == 600 and await inbox.get() == "b"


async def test_inbox_admits_one_oversized_message_when_empty():
    inbox: Inbox[str] = Inbox(max_items=10, max_bytes=100)
    await asyncio.wait_for(inbox.put("huge", 10_000), 1)
    assert inbox.get_nowait() == "huge" and inbox.get_nowait() is None


async def test_inbox_serves_waiting_writers_in_arrival_order():
    inbox: Inbox[str] = Inbox(max_items=1, max_bytes=10**6)
    await inbox.put("first", 1)
    writers = [asyncio.create_task(inbox.put(name, 1)) for name in ("x", "y", "z")]
    await asyncio.sleep(0)
    got = [await asyncio.wait_for(inbox.get(), 1) for _ in range(4)]
    assert got == ["first", "x", "y", "z"]
    await asyncio.gather(*writers)


async def test_cancelled_writer_at_the_head_lets_the_next_one_through():
    inbox: Inbox[str] = Inbox(max_items=1, max_bytes=10**6)
    await inbox.put("first", 1)
    head = asyncio.create_task(inbox.put("cancelled", 1))
    nxt = asyncio.create_task(inbox.put("next", 1))
    await asyncio.sleep(0)
    head.cancel()
    await asyncio.gather(head, return_exceptions=True)
    assert await inbox.get() == "first"
    await asyncio.wait_for(nxt, 1)
    assert await inbox.get() == "next" and inbox.waiting_writers == 0


async def test_getter_waits_for_a_message():
    inbox: Inbox[int] = Inbox(max_items=4, max_bytes=100)
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not getter.done()
    await inbox.put(7, 1)
    assert await asyncio.wait_for(getter, 1) == 7


@pytest.mark.parametrize("seed", range(5))
async def test_inbox_random_traffic_keeps_order_and_bound(seed):
    import random

    rng = random.Random(seed)
    inbox: Inbox[tuple[int, int]] = Inbox(max_items=8, max_bytes=500)
    sizes = {w: [rng.randint(1, 300) for _ in range(30)] for w in range(4)}

    async def writer(w: int) -> None:
        for i, size in enumerate(sizes[w]):
            await inbox.put((w, i), size)
            if rng.random() < 0.3:
                await asyncio.sleep(0)

    tasks = [asyncio.create_task(writer(w)) for w in range(4)]
    seen: dict[int, list[int]] = {w: [] for w in range(4)}
    for _ in range(120):
        w, i = await asyncio.wait_for(inbox.get(), 2)
        seen[w].append(i)
        assert inbox.nbytes <= 500 and len(inbox) <= 8
    await asyncio.gather(*tasks)
    assert all(seen[w] == list(range(30)) for w in range(4))
    assert inbox.high_water_bytes <= 500
