"""The deterministic simulator: a 2,000-seed safety/liveness sweep through the production runner (crashes
at action boundaries, torn WAL tails, the double-sign guard), determinism, and proof that the safety
checker fails when the locking rule is switched off."""

from __future__ import annotations


import pytest

from consensus.sim import SimConfig, Simulation, main, replay_trace, run_seed

SWEEP = [  # (validators, byzantine, seeds): 2,000 seeds in all, ~50-70 s on this machine
    (4, 1, 1000),
    (7, 2, 1000),
]


@pytest.mark.parametrize("n,byz,seeds", SWEEP, ids=[f"n{n}-f{b}" for n, b, _ in SWEEP])
def test_sweep_all_safe_and_live(n, byz, seeds):
    cfg = SimConfig(validators=n, byzantine=byz, heights=3)
    failures = []
    crashes = evidence = lost = refusals = multi_crash = 0
    for seed in range(seeds):
        res = run_seed(seed, cfg)
        crashes += res.crashes
        evidence += res.evidence
        lost += res.lost_wal_records
        refusals += res.sign_refusals
        multi_crash += res.crashes >= 3
        if res.failure:
            failures.append((seed, res.failure))
        assert res.heights >= 3 or res.failure
    if failures:
        seed = failures[0][0]
        print(replay_trace(seed, cfg)[:20000])
    assert failures == []
    # the sweep really exercised the faults it claims to
    assert crashes > seeds // 5 and evidence > seeds // 5
    assert multi_crash > seeds // 20, "several crashes per run in some seeds"
    assert lost > seeds // 10, "crashes cut unsynced WAL records (torn tails)"
    assert refusals > 0, "the signer guard was exercised"


CLOCK_JUMP_SEEDS = [1, 123, 164, 183, 339, 2463, 4508, 6505]
"""4/1 seeds where a node's app rejects blocks for a while (a clock jump) and the node used to wedge,
each checked when this was written: 1-339 fail liveness with certified re-validation switched off;
2463 and 6505 also need the re-check after a polka (the others locked on the block the jumped node
had rejected); 4508 needs the status-driven block sync (a lagging node with nothing to say)."""


@pytest.mark.parametrize("seed", CLOCK_JUMP_SEEDS)
def test_clock_jump_node_recovers_through_certified_revalidation(seed: int) -> None:
    sim = Simulation(seed, SimConfig(validators=4, byzantine=1))
    assert any(nd.reject_until >= 0 for nd in sim.nodes), "the seed no longer plans a clock jump"
    res = sim.run()
    assert res.failure is None, res.failure


def test_runs_are_deterministic():
    cfg = SimConfig(validators=4, byzantine=1)
    a, b = replay_trace(7, cfg), replay_trace(7, cfg)
    assert a == b and len(a.splitlines()) > 50
    assert run_seed(7, cfg).events == run_seed(7, cfg).events


UNSAFE = SimConfig(validators=4, byzantine=1, adversarial=True, unsafe_disable_locking=True)


@pytest.fixture(scope="module")
def unsafe_failure():
    """First seed (bounded search) where the locking-disabled cores break agreement."""
    for seed in range(300):
        res = run_seed(seed, UNSAFE)
        if not res.safe:
            return res
    pytest.fail("no safety violation found in 300 seeds with locking disabled")


def test_checker_catches_violation_without_locking(unsafe_failure):
    """With the locking rule disabled, adversarial schedules (lossy network, a byzantine validator
    voting for every proposal and helping only one node decide) break agreement; the checker must
    report it. The same seed with locking enabled stays safe and live."""
    found = unsafe_failure
    assert found.failure and found.failure.startswith("SAFETY")
    assert run_seed(found.seed, UNSAFE).failure == found.failure  # replays exactly from its seed
    trace = replay_trace(found.seed, UNSAFE)
    assert f"--seed {found.seed}" in trace and "COMMIT" in trace
    safe = run_seed(found.seed, SimConfig(validators=4, byzantine=1, adversarial=True))
    assert safe.safe and safe.live, safe.failure


def test_adversarial_schedule_is_safe_with_locking():
    cfg = SimConfig(validators=4, byzantine=1, adversarial=True)
    for seed in range(60):
        res = run_seed(seed, cfg)
        assert res.failure is None, (seed, res.failure)


def test_cli_summary_and_exit_codes(capsys, unsafe_failure):
    assert main(["--validators", "4", "--byzantine", "1", "--seeds", "5", "--heights", "2"]) == 0
    out = capsys.readouterr().out
    assert "seeds=5 safe=5 live=5" in out and "heights_committed=10" in out
    args = ["--validators", "4", "--adversarial", "--unsafe-disable-locking"]
    assert main(args + ["--first-seed", str(unsafe_failure.seed), "--seeds", "1"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL seed={unsafe_failure.seed}: SAFETY" in out and "replay the first failure with" in out
    assert main(args + ["--seed", str(unsafe_failure.seed)]) == 1
    assert "SAFETY" in capsys.readouterr().out
