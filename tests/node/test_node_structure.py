"""The node's code structure (issue 19): each concern in one module, views typed, test modes injected.

These read the source, because what they guard is where code lives, not what it does (the behaviour
is covered by the API, sync and byzantine tests, which run unchanged against the moved code).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from node import node_view

ROOT = Path(__file__).resolve().parents[2]
SPLIT_MODULES = ["node/app.py", "node/sync.py", "node/api/handlers.py", "node/api/chain_routes.py",
                 "node/api/status_routes.py", "node/api/params.py", "node/node_view.py", "node/mempool_errors.py"]


@pytest.mark.parametrize("module", SPLIT_MODULES)
def test_module_under_500_lines(module: str) -> None:
    assert len((ROOT / module).read_text().splitlines()) < 500


def _names_used(module: str) -> set[str]:
    tree = ast.parse((ROOT / module).read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.Name):
            out.add(node.id)
    return out


def test_node_never_reads_the_environment() -> None:
    """Byzantine test modes and the TEST ONLY extra protocol version reach `Node` as parameters from
    `paynet-node run`, never from os.environ."""
    for module in ("node/app.py", "node/sync.py", "node/driver.py", "node/api/gov_routes.py"):
        used = _names_used(module)
        assert "environ" not in used and "getenv" not in used, module
        assert "modes" not in used, module  # byzantine.modes() reads the environment: the CLI's job
        assert "supported_versions" not in used, module  # so does the TEST ONLY extra protocol version
    assert "modes" in _names_used("node/cli.py") and "supported_versions" in _names_used("node/cli.py")


def test_block_sync_lives_in_node_sync() -> None:
    used = _names_used("node/app.py")
    for name in ("SyncPlanner", "_apply_answer", "_commit_certified", "certified_block_problem", "peer_heights"):
        assert name not in used, name
    assert {"_apply_answer", "_commit_certified", "SyncPlanner"} <= _names_used("node/sync.py")


def test_view_answers_are_dataclasses() -> None:
    hints = {name: inspect.signature(getattr(node_view.NodeView, name)).return_annotation
             for name in ("mempool_summary", "consensus_status", "peers")}
    assert hints == {"mempool_summary": "MempoolSummary", "consensus_status": "ConsensusStatus",
                     "peers": "list[PeerSummary]"}
    for cls in (node_view.MempoolSummary, node_view.ConsensusStatus, node_view.PeerSummary):
        assert dataclasses.is_dataclass(cls)


def test_api_reads_the_view_without_dict_defaults() -> None:
    for module in ("node/api/handlers.py", "node/api/chain_routes.py", "node/api/status_routes.py"):
        text = (ROOT / module).read_text()
        assert "-> Any" not in text and 's.get("' not in text and 'cs.get("' not in text, module


def test_api_calls_the_view_directly() -> None:
    """A view method looked up with getattr and a fallback fails open: a view without it silently
    turns the rule off (admission_refusal did so for the settle bound)."""
    for module in sorted((ROOT / "node" / "api").glob("*.py")):
        text = module.read_text()
        assert "getattr(self.view" not in text and "getattr(view" not in text, module.name


def test_mempool_errors_belong_to_the_mempool() -> None:
    import node.mempool as mempool
    import node.mempool_errors as errors

    assert mempool.TxRejected is errors.TxRejected and mempool.MempoolFull is errors.MempoolFull
    assert "class TxRejected" not in (ROOT / "node/node_view.py").read_text()


def test_validator_names_built_in_one_place() -> None:
    for module in ("node/app.py", "node/api/handlers.py", "node/api/chain_routes.py", "node/api/status_routes.py"):
        assert "v.name for v in" not in (ROOT / module).read_text(), module
