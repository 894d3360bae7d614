"""Connection-slot exhaustion on the peer port (issue 13, item 3), on real processes.

An attacker without any certificate opens many TCP connections to every validator's peer port from
127.0.0.2-127.0.0.41: half of them send nothing, half send a TLS ClientHello and then stall (a
half-done handshake), and every connection that gets closed is reopened after a short pause. While
the attack runs, validator 3 is restarted; it must get back its links to all three peers quickly.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
import urllib.request

import pytest

from node.localnet import LocalNet

pytestmark = pytest.mark.integration

ATTACK_IPS = [f"127.0.0.{i}" for i in range(2, 42)]
PER_TARGET = 80
"""Connections held per peer port: more than the old shared limit of 64."""
RECONNECT_DELAY_S = 0.2
RECONNECT_LIMIT_S = 10.0


def client_hello() -> bytes:
    """A fresh TLS ClientHello (the first flight of a handshake the attacker never finishes)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class SlotAttacker:
    """Holds connections open on peer ports from many source addresses, in a thread of its own."""

    def __init__(self, ports: list[int], per_target: int = PER_TARGET) -> None:
        self.ports = ports
        self.per_target = per_target
        self.opened = 0
        self.failed = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slot-attacker", daemon=True)
        self._tasks: list[asyncio.Future[None]] = []

    def start(self) -> None:
        self._thread.start()
        for port in self.ports:
            for i in range(self.per_target):
                ip = ATTACK_IPS[i % len(ATTACK_IPS)]
                fut = asyncio.run_coroutine_threadsafe(self._hold(port, ip, half_tls=i % 2 == 1), self._loop)
                self._tasks.append(fut)

    def stop(self) -> None:
        """Cancel every connection loop, wait for them to close their sockets, then end the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _cancel_all(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _hold(self, port: int, ip: str, half_tls: bool) -> None:
        while True:
            writer = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0))
                self.opened += 1
                if half_tls:
                    writer.write(client_hello())
                while await reader.read(65536):  # hold the slot until the server gives up on us
                    pass
            except OSError:
                self.failed += 1
            finally:
                if writer is not None:
                    writer.transport.abort()
            await asyncio.sleep(RECONNECT_DELAY_S)


def _time_to_all_peers(net: LocalNet, i: int, limit: float) -> tuple[float, int]:
    """Poll node i's peer count until it has all 3 peers or `limit` seconds pass: (seconds, peers)."""
    t0 = time.monotonic()
    peers = 0
    while time.monotonic() - t0 < limit:
        try:
            peers = int(net.get(i, "/status")["peer_count"])
        except OSError:
            peers = 0  # still starting
        if peers == 3:
            break
        time.sleep(0.2)
    return time.monotonic() - t0, peers


def _slot_pressure(net: LocalNet, i: int) -> dict[str, int]:
    """Node i's handshake-pool counters from /metrics, if the attack has shown up in them yet."""
    with urllib.request.urlopen(net.nodes[i].api_url + "/metrics", timeout=3) as resp:
        text = resp.read().decode()
    names = ("handshakes_evicted", "refused_handshake_per_ip", "refused_handshake_limit", "handshake_failures")
    found = {n: int(float(m.group(1))) for n in names
             if (m := re.search(rf'paynet_p2p\{{counter="{n}"\}} ([0-9.e+]+)', text))}
    return found if found.get("handshakes_evicted", 0) + found.get("refused_handshake_per_ip", 0) > 0 else {}


def test_restarted_validator_reconnects_under_slot_attack(tmp_path) -> None:
    net = LocalNet.provision(tmp_path, validators=4, base_port=30700, demo_accounts=1)
    attacker = SlotAttacker([n.p2p_port for n in net.nodes])
    try:
        net.start_all()
        net.wait_height(2, timeout=60)
        net.stop(3)
        attacker.start()
        net.wait_for(lambda: attacker.opened >= 4 * PER_TARGET, 20, "the attacker holding its connections")
        t0 = time.monotonic()
        net.start(3)
        seconds, peers = _time_to_all_peers(net, 3, RECONNECT_LIMIT_S)
        print(f"\nrestarted validator: {peers}/3 peers, {seconds:.1f} s after restart, under attack "
              f"({attacker.opened} attacker connections opened)")
        assert peers == 3, f"only {peers}/3 peers {RECONNECT_LIMIT_S:.0f} s after the restart"
        pressure = net.wait_for(lambda: _slot_pressure(net, 3), 5, "the attack showing in node 3's p2p counters")
        print(f"node 3 p2p counters under attack: {pressure}")
        height = net.height(0) or 0
        net.wait_height(height + 2, timeout=30)  # and the four keep committing together
    finally:
        attacker.stop()
        net.stop_all()
