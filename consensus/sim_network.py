"""The simulator's network model: per-message loss, duplication and delay (hence reordering) and a
partition that heals, all before GST; bounded delay after it; and the simplified block sync a node
offers a peer that lags behind a height it committed.

Separate from the fault scripts (consensus/sim_faults.py), which decide what a node sends, and from the
runner (consensus/sim.py), which delivers: this module only decides whether and when bytes arrive.
"""

from __future__ import annotations

from consensus.sim_model import SimNode, SimState


class SimNetwork(SimState):
    """Sending between simulated nodes under the seed's network faults."""

    def _send(self, src: SimNode, dst: SimNode, raw: bytes) -> None:
        r = self.rng
        if self.now < self.gst:
            if self.partition and self.partition[0] <= self.now < self.partition[1]:
                if (src.idx in self.partition[2]) != (dst.idx in self.partition[2]):
                    return
            if self.loss and r.random() < self.loss:
                return
            copies = 2 if self.dup and r.random() < self.dup else 1
            for _ in range(copies):
                self._push(self.now + r.randint(1, self.max_delay), "msg", dst.idx, (src.idx, raw))
        else:
            self._push(self.now + r.randint(1, 50), "msg", dst.idx, (src.idx, raw))

    def _broadcast(self, src: SimNode, raw: bytes, to: list[SimNode] | None = None) -> None:
        for dst in to if to is not None else self.nodes:
            if dst is not src:
                self._send(src, dst, raw)

    def _status_sync(self, nd: SimNode) -> None:
        """The node's periodic status announcement: an honest peer that has committed the height `nd`
        is working on sends it that block (the node's block sync). Without it a node that lags and has
        nothing to say at its height -- its signer refused what its lost WAL tail would have repeated --
        would never hear of the block it misses."""
        assert nd.core is not None
        height = nd.core.height
        for peer in self.nodes:
            if peer is not nd and peer.alive and not peer.byzantine and height in peer.committed:
                self._offer_sync(peer, nd, height)
                return

    def _offer_sync(self, nd: SimNode, peer: SimNode, height: int) -> None:
        """Block sync, simplified: a node that sees a peer still working on a height it already
        committed sends it the block and certificate (rate-limited per peer and height)."""
        last = self._sync_sent.get((peer.idx, height))
        if last is not None and self.now - last < 500:
            return
        self._sync_sent[(peer.idx, height)] = self.now
        _hash, payload, cert = nd.committed[height]
        if self.now < self.gst and self.cfg.adversarial:
            return  # the adversary delays block sync until GST
        if self.now >= self.gst or not (self.loss and self.rng.random() < self.loss):
            self._push(self.now + self.rng.randint(1, 50), "sync", peer.idx, (cert, payload))
