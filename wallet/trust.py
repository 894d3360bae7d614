"""What `init` pins: the network's genesis validator set, from a genesis file or trusted on first use.

A wallet verifies every receipt and balance against the validator set it pinned here, so this is the
one place that decides what to trust: a genesis file (checked against the nodes), or the first node's
genesis block and validator set (TOFU, accepted only if the two agree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chain.block import BlockHeader
from chain.genesis import Genesis
from chain.validators import ValidatorSet

from wallet.client import NodeClient
from wallet.errors import UsageError, WalletError
from wallet.store import PinnedValidator, WalletConfig


def load_genesis_file(genesis_file: Path) -> Genesis:
    """The genesis file, or a UsageError that names it."""
    try:
        return Genesis.load(genesis_file)
    except (OSError, ValidationError, ValueError) as e:
        raise UsageError(f"{genesis_file} is not a valid genesis file: {e}") from None


async def check_nodes_match(cfg: WalletConfig, timeout: float) -> list[str]:
    """A node on another chain is a config mistake: refuse. An unreachable one is only a warning."""
    warnings = []
    for url in cfg.nodes:
        async with NodeClient([url], timeout_s=timeout) as client:
            try:
                status = await client.status()
            except WalletError as e:
                warnings.append(f"could not check {url}: {e}")
                continue
        if status.get("chain_id") != cfg.chain_id or status.get("genesis_hash") != cfg.genesis_hash:
            raise WalletError(f"node {url} runs chain {status.get('chain_id')!r} with a different genesis than the file")
    return warnings


async def config_from_node(urls: list[str], timeout: float) -> WalletConfig:
    async with NodeClient(urls, timeout_s=timeout) as client:
        status = await client.status()
        vals = await client.get("/validators")
        block0 = await client.get("/blocks/0")
        url = client.current_url
    header = BlockHeader.decode(bytes.fromhex(block0["header_raw"]))
    if header.chain_id != status["chain_id"] or header.height != 0:
        raise WalletError(f"node {url} returned an inconsistent genesis block")
    vset = pinned_set_from_node(vals, header.validators_hash)
    names = {v["pubkey"]: v.get("name") for v in vals["validators"]}
    return WalletConfig(
        nodes=urls,
        chain_id=status["chain_id"],
        genesis_hash=status.get("genesis_hash"),
        validators=[PinnedValidator(name=names.get(v.pubkey.hex()), pubkey=v.pubkey.hex(), power=v.power)
                    for v in vset.validators],
        pinned_from=f"node:{url}",
    )


async def pin(urls: list[str], genesis_file: Path | None, timeout: float) -> tuple[WalletConfig, list[str]]:
    """The config to save and the warnings to show: from the file when given, else trust on first use."""
    if genesis_file is not None:
        genesis = load_genesis_file(genesis_file)
        cfg = WalletConfig.from_genesis(genesis, urls, f"genesis-file:{genesis_file.resolve()}")
        return cfg, await check_nodes_match(cfg, timeout)
    cfg = await config_from_node(urls, timeout)
    return cfg, [f"validator set trusted from {cfg.pinned_from[5:]} on first use; compare it with the genesis file"]


def pinned_set_from_node(validators_json: dict[str, Any], genesis_header_validators_hash: bytes) -> ValidatorSet:
    """Trust-on-first-use: the node's current validator set, accepted only if it is the set that the
    genesis block names (so a set changed by governance cannot be pinned by accident)."""
    vset = ValidatorSet.from_pairs(
        [(bytes.fromhex(v["pubkey"]), int(v["power"])) for v in validators_json["validators"]]
    )
    if vset.hash != genesis_header_validators_hash:
        raise WalletError(
            "the node's current validator set is not the genesis set (changed by governance?);"
            " pin from the genesis file with --genesis instead"
        )
    return vset
