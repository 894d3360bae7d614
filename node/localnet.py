"""A local N-validator network on 127.0.0.1: provisioning and process control.

Used by `scripts/testnet.py` and the integration tests. Provisioning runs the same `paynet-node`
commands an operator runs (init, ca create, ca issue, genesis), so the local network exercises the
real set-up path. Demo accounts have keys derived from public seeds: they are for local testing only.

Ports: node i listens for peers on base_port + 2i and serves its API on base_port + 2i + 1. With the
opt-in, test-only `link_proxy` (node/linkproxy.py), base_port + 2N is the proxy's control port and the
next N(N-1) ports are its listeners, one per directed dial link (i->j) in order (0->1, 0->2, ...); each
node's config then lists those proxy ports as its peers, so every validator-to-validator byte crosses
the proxy (the API stays direct).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from chain import crypto
from chain.genesis import Genesis
from node.linkclient import LinkProxyClient

PASSPHRASE = "local-testnet-passphrase"
CHAIN_ID = "paynet-local"
DEMO_ASSET = "USD"
DEMO_DECIMALS = 2
DEMO_BALANCE = 1_000_000_000  # minor units per demo account (10,000,000.00 USD)


def demo_key(i: int) -> crypto.PrivateKey:
    """Deterministic demo account keys (publicly derivable: never use outside a local testnet)."""
    return crypto.PrivateKey(crypto.sha256(f"paynet-demo-account-{i}".encode()))


def issuer_key() -> crypto.PrivateKey:
    return crypto.PrivateKey(crypto.sha256(b"paynet-demo-issuer"))


def admin_key() -> crypto.PrivateKey:
    """The demo network's first governance member (publicly derivable: local testnets only)."""
    return crypto.PrivateKey(crypto.sha256(b"paynet-demo-admin"))


def member_key(i: int) -> crypto.PrivateKey:
    """Governance member i of a local network (member 0 is `admin_key()`); publicly derivable."""
    return admin_key() if i == 0 else crypto.PrivateKey(crypto.sha256(f"paynet-demo-member-{i}".encode()))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PAYNET_NODE_PASSPHRASE"] = PASSPHRASE
    env["PAYNET_CA_PASSPHRASE"] = PASSPHRASE
    env["PAYNET_SIGNER_PASSPHRASE"] = PASSPHRASE  # a local paynet-signer's keys (node/localsigner.py)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # A local network on one machine is for testing and demos: cheap key derivation (the node logs it
    # CRITICAL) instead of 1 GiB and ~4.5 s per key, four times over. Production keys never use it.
    env.setdefault("PAYNET_UNSAFE_WEAK_KDF_TEST_MODE", "1")
    return env


def _cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", *args], env=_env(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"paynet-node {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


@dataclass
class NodeProc:
    index: int
    home: Path
    p2p_port: int
    api_port: int
    pubkey: bytes = b""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "node.pid"


class NodeExited(RuntimeError):
    """A node process this LocalNet started has ended while we waited on it."""


@dataclass
class LocalNet:
    root: Path
    nodes: list[NodeProc] = field(default_factory=list)
    link_proxy_port: int | None = None
    """Control port of the test-only link-fault proxy, if this network was provisioned with one."""
    _proxy_proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- provisioning ------------------------------------------------------------------------------

    @classmethod
    def provision(
        cls,
        root: Path,
        validators: int = 4,
        base_port: int = 26600,
        demo_accounts: int = 10,
        config_overrides: dict[str, dict[str, object]] | None = None,
        link_proxy: bool = False,
        members: int = 1,
        threshold: int = 1,
        split: dict[int, Callable[["NodeProc"], Path]] | None = None,
    ) -> "LocalNet":
        """Make keys, certificates, genesis and configs. `link_proxy` (test-only) routes every peer link
        through node/linkproxy.py so tests and `testnet.py` can inject link faults at run time.
        Governance: `members` demo organisations (`member_key(i)`, named member-i), `threshold` of them
        approve a change; the default (one member, threshold 1) keeps demo flows one tx long.

        `split` maps node index -> a function that gives that node an HSM or remote consensus key: it gets
        the initialised node (its key file is then the TLS key, `n.pubkey`), sets up `[signer]` and returns
        the `bind-tls` JSON; the node's certificate is issued with that binding and the genesis lists the
        consensus key (docs/operations.md, "Keys in an HSM or a remote signer")."""
        root.mkdir(parents=True, exist_ok=True)
        net = cls(root)
        for i in range(validators):
            net.nodes.append(NodeProc(i, root / f"node{i}", base_port + 2 * i, base_port + 2 * i + 1))
        proxy_ports = _write_proxy_spec(root, net.nodes, base_port) if link_proxy else {}
        if link_proxy:
            net.link_proxy_port = base_port + 2 * validators
        for n in net.nodes:
            peers = [f"127.0.0.1:{proxy_ports.get((n.index, m.index), m.p2p_port)}" for m in net.nodes if m is not n]
            args = ["init", "--home", str(n.home), "--name", f"validator-{n.index}",
                    "--p2p-port", str(n.p2p_port), "--api-port", str(n.api_port)]
            for p in peers:
                args += ["--peer", p]
            n.pubkey = bytes.fromhex(json.loads(_cli(*args))["pubkey"])
        ca_dir = root / "ca"
        _cli("ca", "create", "--dir", str(ca_dir))
        for n in net.nodes:
            bind = ["--binding", str(split[n.index](n))] if split and n.index in split else []
            _cli("ca", "issue", "--dir", str(ca_dir), "--pubkey", n.pubkey.hex(),
                 "--name", f"validator-{n.index}", "--out", str(n.home / "node.crt"), *bind)
            if bind:
                n.pubkey = bytes.fromhex(json.loads(Path(bind[1]).read_text())["consensus_pubkey"])
        args = ["genesis", "--chain-id", CHAIN_ID, "--ca-cert", str(ca_dir / "ca.crt"),
                "--out", str(root / "genesis.json"), "--threshold", str(threshold),
                "--asset", f"{DEMO_ASSET}:{crypto.format_address(issuer_key().address)}:{DEMO_DECIMALS}"]
        for i in range(members):
            args += ["--member", f"member-{i}:{member_key(i).public_key.hex()}"]
        for n in net.nodes:
            args += ["--validator", f"validator-{n.index}:{n.pubkey.hex()}:1"]
        for i in range(demo_accounts):
            args += ["--balance", f"{crypto.format_address(demo_key(i).address)}:{DEMO_ASSET}:{DEMO_BALANCE}"]
        _cli(*args)
        for n in net.nodes:
            (n.home / "genesis.json").write_bytes((root / "genesis.json").read_bytes())
            _apply_overrides(n.home / "config.toml", _with_local_api_limits(config_overrides))
        meta: dict[str, object] = {"nodes": [{"home": str(n.home), "p2p_port": n.p2p_port, "api_port": n.api_port,
                                              "pubkey": n.pubkey.hex()} for n in net.nodes]}
        if net.link_proxy_port is not None:
            meta["link_proxy_port"] = net.link_proxy_port
        (root / "localnet.json").write_text(json.dumps(meta, indent=2))
        return net

    @classmethod
    def load(cls, root: Path) -> "LocalNet":
        meta = json.loads((root / "localnet.json").read_text())
        net = cls(root, link_proxy_port=meta.get("link_proxy_port"))
        for i, n in enumerate(meta["nodes"]):
            net.nodes.append(NodeProc(i, Path(n["home"]), n["p2p_port"], n["api_port"], bytes.fromhex(n["pubkey"])))
        return net

    def provision_validator_home(self, index: int, home: Path | None = None) -> NodeProc:
        """A validator home that is not in genesis, made the way an operator makes one (`paynet-node init`,
        then `ca issue` with the network CA, then the network's genesis file): a validator added later by
        governance (index = len(nodes), appended), or a new key for validator `index` (a fresh `home`, same
        ports; replaces that node here once the caller has stopped the old one). It dials every other node."""
        base = self.nodes[0].p2p_port
        p2p, api = base + 2 * index, base + 2 * index + 1
        home = home or self.root / f"node{index}"
        name = f"validator-{index}"
        args = ["init", "--home", str(home), "--name", name, "--p2p-port", str(p2p), "--api-port", str(api)]
        for m in self.nodes:
            if m.index != index:
                args += ["--peer", f"127.0.0.1:{m.p2p_port}"]
        pubkey = bytes.fromhex(json.loads(_cli(*args))["pubkey"])
        _cli("ca", "issue", "--dir", str(self.root / "ca"), "--pubkey", pubkey.hex(), "--name", name,
             "--out", str(home / "node.crt"))
        (home / "genesis.json").write_bytes((self.root / "genesis.json").read_bytes())
        _apply_overrides(home / "config.toml", _with_local_api_limits(None))
        node = NodeProc(index, home, p2p, api, pubkey)
        if index == len(self.nodes):
            self.nodes.append(node)
        return node

    # -- processes ---------------------------------------------------------------------------------

    def start(self, i: int, extra_env: dict[str, str] | None = None) -> None:
        if self.link_proxy_port is not None:
            self.start_proxy()  # its peers are only reachable through it
        n = self.nodes[i]
        with open(n.log_path, "ab") as log:
            n.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "run", "--home", str(n.home)],
                env={**_env(), **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        n.pid_path.write_text(str(n.proc.pid))

    def start_all(self) -> None:
        for i in range(len(self.nodes)):
            self.start(i)

    @contextmanager
    def running(self, height: int = 1, timeout: float = 60) -> Iterator[LocalNet]:
        """Start every node, wait until each has committed `height`, and stop them all on exit (error too)."""
        self.start_all()
        try:
            self.wait_height(height, timeout=timeout)
            yield self
        finally:
            self.stop_all()

    def pid(self, i: int) -> int | None:
        n = self.nodes[i]
        if n.proc is not None:
            return n.proc.pid if n.proc.poll() is None else None
        try:
            pid = int(n.pid_path.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None

    def signal(self, i: int, sig: int) -> bool:
        """Send `sig` to validator i; False if it is not running (also when it exits between the
        liveness check and the signal, which a chaos schedule racing a node's own exit can hit)."""
        pid = self.pid(i)
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def kill(self, i: int) -> None:
        """SIGKILL: the crash case."""
        self.signal(i, signal.SIGKILL)
        self._reap(i, 10)

    def stop(self, i: int, timeout: float = 15) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        self.signal(i, signal.SIGCONT)
        self.signal(i, signal.SIGTERM)
        if not self._reap(i, timeout):
            self.kill(i)

    def _reap(self, i: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid(i) is None:
                n = self.nodes[i]
                n.proc = None
                n.pid_path.unlink(missing_ok=True)
                return True
            n = self.nodes[i]
            if n.proc is not None:
                try:
                    n.proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.05)
        return False

    def stop_all(self) -> None:
        for i in range(len(self.nodes)):
            self.stop(i)
        self.stop_proxy()

    # -- link-fault proxy (test-only) ---------------------------------------------------------------

    @property
    def proxy(self) -> LinkProxyClient:
        """Client for this network's link-fault proxy (node/linkproxy.py); an error if it has none."""
        if self.link_proxy_port is None:
            raise RuntimeError(f"the network at {self.root} was provisioned without link_proxy")
        return LinkProxyClient(self.link_proxy_port)

    def proxy_pid(self) -> int | None:
        try:
            pid = int((self.root / "linkproxy.pid").read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None

    def start_proxy(self, timeout: float = 15) -> None:
        """Start the proxy process (if not running) and wait until its control port answers. It runs in
        its own session so it outlives the caller, like the nodes (`testnet.py` drives it later)."""
        if self.proxy_pid() is not None and self.proxy.ping():
            return
        with open(self.root / "linkproxy.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "node.linkproxy", "serve", str(self.root / "linkproxy.json")],
                env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        (self.root / "linkproxy.pid").write_text(str(proc.pid))
        self._proxy_proc = proc
        deadline = time.monotonic() + timeout
        while not self.proxy.ping():
            if proc.poll() is not None:
                tail = (self.root / "linkproxy.log").read_text(errors="replace").strip().splitlines()[-2:]
                raise NodeExited(f"link proxy exited with code {proc.returncode}: " + " | ".join(tail))
            if time.monotonic() > deadline:
                raise TimeoutError(f"link proxy did not answer on 127.0.0.1:{self.link_proxy_port} in {timeout}s")
            time.sleep(0.05)

    def stop_proxy(self, timeout: float = 10) -> None:
        pid = self.proxy_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        proc, self._proxy_proc = self._proxy_proc, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break  # our child, now reaped (a zombie would still answer kill(pid, 0))
            if proc is None and self.proxy_pid() is None:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (self.root / "linkproxy.pid").unlink(missing_ok=True)

    # -- observing ---------------------------------------------------------------------------------

    def get(self, i: int, path: str, timeout: float = 3) -> dict:
        with urllib.request.urlopen(self.nodes[i].api_url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    @cached_property
    def genesis_hex(self) -> str:
        return Genesis.load(self.root / "genesis.json").hash.hex()

    def height(self, i: int) -> int | None:
        """Node i's committed height; None while it is down, or when the process answering on its port
        belongs to another network (a second testnet on the same ports must not pass for this one)."""
        try:
            status = self.get(i, "/status")
            if status.get("genesis_hash") != self.genesis_hex:
                return None
            return int(status["height"])
        except (OSError, ValueError, KeyError):
            return None

    def exited(self, i: int) -> str | None:
        """If node i was started here and its process has ended: why (the last lines of its log)."""
        n = self.nodes[i]
        if n.proc is None or n.proc.poll() is None:
            return None
        try:
            tail = n.log_path.read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            tail = []
        return f"validator-{i} exited with code {n.proc.returncode}: " + " | ".join(tail)

    def wait_for(self, predicate, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
        """Poll `predicate` until it returns a truthy value or `timeout` passes (then raise)."""
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except NodeExited:
                raise
            except Exception as exc:  # the condition may fail while nodes start
                last_exc = exc
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")

    def wait_height(self, height: int, nodes: list[int] | None = None, timeout: float = 60) -> None:
        """Wait until every node in `nodes` has committed `height`; fail at once if one of them exits."""
        idx = nodes if nodes is not None else list(range(len(self.nodes)))

        def reached() -> bool:
            for i in idx:
                if (why := self.exited(i)) is not None:
                    raise NodeExited(why)
            return all((self.height(i) or -1) >= height for i in idx)

        self.wait_for(reached, timeout, f"height {height} on {idx}")


# Local networks serve tools that all connect from 127.0.0.1 and read thousands of blocks and receipts
# in bursts (scripts/chaos.py's checks, scripts/bench.py's chain follower, the integration tests): the
# production per-IP *request* rate (node/api/config.py, 100/s) would answer them 429. Likewise the per-IP
# tx and body-byte rates (1,000 tx/s, 1 MiB/s per node): every local client is one IP, so they would cap
# scripts/bench.py at 4,000 tx/s on 4 validators, below what the network settles. A local network sets
# those limits explicitly; every other API limit (accounts, signature queue, timeouts) keeps its
# production default. tests/adversarial/test_api_*.py put the production values back.
LOCAL_API_LIMITS: dict[str, object] = {
    "ip_rate_per_s": 5000.0, "ip_burst": 10000.0,
    "ip_tx_rate_per_s": 50_000.0, "ip_tx_burst": 100_000.0,
    "ip_bytes_per_s": 64.0 * 1024 * 1024, "ip_bytes_burst": 128.0 * 1024 * 1024,
}


def _with_local_api_limits(overrides: dict[str, dict[str, object]] | None) -> dict[str, dict[str, object]]:
    out = {k: dict(v) for k, v in (overrides or {}).items()}
    out["api"] = {**LOCAL_API_LIMITS, **out.get("api", {})}
    return out


def _write_proxy_spec(root: Path, nodes: list[NodeProc], base_port: int) -> dict[tuple[int, int], int]:
    """Lay out the proxy's ports (see the module docstring), write its spec file, return (i, j) -> port."""
    ports: dict[tuple[int, int], int] = {}
    nxt = base_port + 2 * len(nodes) + 1
    for a in nodes:
        for b in nodes:
            if a is not b:
                ports[(a.index, b.index)] = nxt
                nxt += 1
    spec = {"host": "127.0.0.1", "control_port": base_port + 2 * len(nodes), "links": [
        {"src": s, "dst": d, "listen_port": p, "target_port": nodes[d].p2p_port} for (s, d), p in ports.items()
    ]}
    (root / "linkproxy.json").write_text(json.dumps(spec, indent=2))
    return ports


def _apply_overrides(path: Path, overrides: dict[str, dict[str, object]]) -> None:
    import tomllib

    from node.config import NodeConfig

    data = tomllib.loads(path.read_text())
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    path.write_text(NodeConfig.model_validate(data).to_toml())
