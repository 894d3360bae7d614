"""Verified reads: ask the nodes, believe only what the light client and the proofs confirm.

Each read is tried on one node at a time, the preferred node first (wallet/client.py). A node whose
answer does not verify (a forged header, a bad state proof, a header conflicting with one already
verified) is refused for the rest of the command and the next node is asked; one caught serving a
conflicting header (`LightClientAttack`) is also banned in the trust file, so later commands never
ask it again. A node that only cannot answer (down, behind, pruned) is skipped without blame. The
read fails when no node gives a verified answer; an attack seen on the way is then the error raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from chain import crypto
from chain.ledger import VALIDATORS_KEY

from wallet.amounts import format_amount
from wallet.client import ApiError, NodeClient, NodesUnavailable
from wallet.errors import WalletError
from wallet.lightclient import (
    HeaderUnavailable,
    LightBlock,
    LightClient,
    LightClientAttack,
    LightClientError,
    TrustedHeader,
    TrustState,
    encode_validators,
)
from wallet.store import WalletConfig, WalletHome
from wallet.verify import (
    TRUST_NOTE,
    ReceiptError,
    StateProofError,
    VerifiedReceipt,
    verify_account,
    verify_asset,
    verify_receipt,
    verify_state_value,
)

T = TypeVar("T")
MAX_ASSETS_VERIFIED = 64
"""Asset proofs fetched for one balance (one per asset the account holds, for its decimals)."""


def validators_proof_ok(state_root: bytes, lb: LightBlock) -> bool:
    """lb.validators is the validator-set state value under a trusted header's state_root (the set
    after block h signs block h+1): the light client's adjacent-height fallback."""
    answer = {"height": lb.height - 1, "value": encode_validators(lb.validators).hex(), "proof": lb.validators_proof}
    try:
        verify_state_value(answer, VALIDATORS_KEY, lb.height - 1, state_root)
    except StateProofError:
        return False
    return True


def light_client_for(home: WalletHome, config: WalletConfig) -> LightClient:
    """The wallet's persistent light client (trust state in the wallet home, saved atomically)."""
    return LightClient(home.load_trust(config), persist=home.save_trust, verify_validators_proof=validators_proof_ok)


def memory_light_client(config: WalletConfig) -> LightClient:
    """A light client that starts from the pinned genesis set and keeps nothing (library callers)."""
    return LightClient(TrustState.from_genesis_set(config.chain_id, config.validator_set()),
                       verify_validators_proof=validators_proof_ok)


class NodeHeaderSource:
    """`GET /headers/{height}` of one node, as the light client's HeaderSource."""

    def __init__(self, client: NodeClient, url: str) -> None:
        self.client, self.name = client, url

    async def light_block(self, height: int) -> LightBlock:
        try:
            data = await self.client.get_from(self.name, f"/headers/{height}")
        except ApiError as e:
            raise HeaderUnavailable(f"{self.name}: {e.code}: {e.message}") from None
        except NodesUnavailable as e:
            raise HeaderUnavailable(str(e)) from None
        return LightBlock.from_json(data, self.name)


class VerifiedReader:
    """Verified reads over a NodeClient with failover; `refused` lists (url, why) of nodes refused."""

    def __init__(self, client: NodeClient, light: LightClient) -> None:
        self.client, self.light = client, light
        self.refused: list[tuple[str, str]] = []
        for url, why in light.state.banned.items():
            client.banned.setdefault(url, f"caught lying before: {why}")

    async def _first_verified(self, what: str, attempt: Callable[[str], Awaitable[T]]) -> T:
        errors = [f"{u}: not used ({why})" for u, why in self.client.banned.items() if u in self.client.urls]
        attack: LightClientAttack | None = None
        refusal: WalletError | None = None
        for url in self.client.usable_urls():
            try:
                result = await attempt(url)
            except LightClientAttack as e:
                attack = e
                self.light.ban(url, e.reason)
                self._refuse(url, str(e))
            except (LightClientError, StateProofError, ReceiptError) as e:
                refusal = refusal or e
                self._refuse(url, str(e))
            except (HeaderUnavailable, ApiError, NodesUnavailable) as e:
                errors.append(f"{url}: {e}")
            else:
                self.client.prefer(url)
                return result
        if attack is not None:
            raise attack
        if refusal is not None:
            raise refusal
        raise NodesUnavailable(f"no node could serve a verified {what}: " + "; ".join(errors))

    def _refuse(self, url: str, why: str) -> None:
        self.refused.append((url, why))
        self.client.ban(url, why)

    # -- reads -----------------------------------------------------------------------------------------

    async def header(self, height: int) -> TrustedHeader:
        """The header at `height`, verified by the light client from what it trusts already."""
        return await self._first_verified(
            f"header {height}", lambda url: self.light.verify(NodeHeaderSource(self.client, url), height)
        )

    async def receipt(self, tx_id: bytes, receipt: Mapping[str, Any]) -> VerifiedReceipt:
        """A receipt checked against the header the light client verified at its height."""
        height = receipt.get("height") if isinstance(receipt, Mapping) else None
        if isinstance(height, bool) or not isinstance(height, int) or height <= 0:
            raise ReceiptError("receipt height is missing or not a positive integer")
        trusted = await self.header(height)
        return verify_receipt(tx_id, receipt, trusted.validators, self.light.chain_id, verified_hash=trusted.hash)

    async def balance(self, addr: bytes) -> dict[str, Any]:
        """Nonce and balances of `addr` at a node's latest height, proven against a verified header
        (the decimals too: each held asset's state is proven at the same height)."""
        return await self._first_verified("balance", lambda url: self._balance_from(url, addr))

    async def _balance_from(self, url: str, addr: bytes) -> dict[str, Any]:
        address = crypto.format_address(addr)
        answer = await self.client.get_from(url, f"/accounts/{address}/proof")
        served = LightBlock.from_json(answer.get("block"), url)
        trusted = await self.light.verify(NodeHeaderSource(self.client, url), served.height, served=served)
        header = trusted.header
        assert header is not None  # verify() never returns the root
        account = verify_account(answer, addr, header)
        balances = dict(account.balances) if account is not None else {}
        if len(balances) > MAX_ASSETS_VERIFIED:
            raise WalletError(f"account holds more than {MAX_ASSETS_VERIFIED} assets; not verifying them all")
        out: dict[str, dict[str, Any]] = {}
        for asset, units in sorted(balances.items()):
            asset_answer = await self.client.get_from(url, f"/assets/{asset}/proof?height={header.height}")
            info = verify_asset(asset_answer, asset, header)
            if info is None:
                raise StateProofError(f"the proven account holds {asset}, which the proven state does not have")
            out[asset] = {"amount": format_amount(int(units), int(info.decimals)), "units": int(units)}
        return {
            "address": address,
            "node": url,
            "nonce": int(account.nonce) if account is not None else 0,
            "balances": out,
            "verified": {
                "height": header.height,
                "block_hash": header.hash.hex(),
                "state_root": header.state_root.hex(),
                "validators": len(trusted.validators),
                "trust": TRUST_NOTE,
            },
        }


__all__ = ["NodeHeaderSource", "VerifiedReader", "light_client_for", "memory_light_client", "validators_proof_ok"]
