"""The analytic screen answers to the simulator: every bundled scenario's best plan of each serving
mode (aggregated, and disaggregated: a prefill pool, a decode pool and the KV shipped between), simulated.

For each scenario the analytic p95 TTFT and TPOT (what `solve` ranks by) must be within 20 % of the
simulated p95, or sit in the documented band with the documented reason. The reasons were found by
taking each run apart (README, "Simulation: the analytic screen against a replay"); when the
analytic model is improved these bands should tighten, and this test says which one moved.
Durations are the shortest that reach steady state and give a few thousand measured requests (a
sample of batch-offline's 54 identical replicas).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.catalog import load_catalog
from planner.cli.file_cmds import load_scenario
from planner.cli.simulate_cmd import run_simulation
from planner.search import solve

WITHIN = (0.8, 1.2)  # analytic / simulated p95 when they agree
FULL_BATCH = ("the screen prices every decode step at the full batch; the simulated replicas run fewer "
              "sequences than the batch most of the time, so a joining request waits on shorter steps")
RUNNING_CONTEXT = ("; since 2026-12-03 the screen prices the running batch's length-biased context (E[in] + "
                   "E[out^2] / (2 E[out])), which the replay confirms (reasoning, 5,400 s: 8,994 tokens on the "
                   "screen, 9,141 per simulated sequence-step, where E[in] + E[out] / 2 is 6,464), so the "
                   "full-batch gap shows whole: TPOT ratios 1.2-1.4 -> 1.4-1.6")
# scenario -> (seconds of arrivals, {metric: (low, high, why)}); metrics not listed must be WITHIN
SAMPLE = {"batch-offline": 18}  # replicas simulated of the plan's many (affinity: they never interact)
NEW_TOKEN_SPREAD = ("the screen takes a turn's new tokens at the scenario's cs^2 23.0 (the Claude Code trace's later "
                    "turns) in a Kingman M/G/1 queue; the synthetic turns realise it (p50 / p90 / p99 ~600 / 5,600 / "
                    "128,000 tokens against the trace's 955 / 4,441 / 61,423: their rare large turns lose a whole "
                    "prompt where the trace's mostly follow a compaction, at shorter prompts). Before 2026-12-04 the "
                    "turns' prompts grew by sorted draws that floored every turn's new tokens at ~4 % (cs^2 ~10), and "
                    "earlier still came back after memoryless think times. The trace itself, replayed on the plan "
                    "solved for it (1,800 s), reads 6.1-33.7 s over four seeds against the screen's 10.6 s: a "
                    "window's rate swings with real sessions")
FIRST_TURNS = ("the screen counts a session's first turn as an average prompt; sessions grow, so first turns are "
               "the shortest and (turns - 1) / turns of the tokens are more than the stated share cached (the Claude "
               "Code trace's first turns are shorter in the median but heavy-tailed, second moment 1.10x all prompts': "
               "for agent traffic the synthetic first turns are the light side; README, Simulation)")
CASES = {
    # ttft measured 1.42 once the screen's mean prefill became the mean over prompt lengths and
    # hits/misses (serving.mean_prefill): before, it priced the mean prompt and under-counted the
    # prefill load by 25 % on a plan that then simulated at 0.62 (prefill busy 0.44 vs 0.35; now 0.32 vs 0.30)
    # ttft 1.42 with the outputs through their p90 (a 392-token mean), 1.03 through their mean (425):
    # the simulated requests' longer slot holds now add slot waits that offset the lighter queue
    # ttft measured 0.69 since DeepSeek-V4-Flash's published FP8 attention and shared experts run FP8
    # GEMMs: the best aggregated plan became one 4 x h200 replica sized for 3.017 req/s (0.6 %
    # headroom), and seed 0's first 1,200 s bring 3.04 req/s: past its sized rate the queue grows.
    # Over 2,400 s (2.95 req/s) the ratio is 2.86, over 3,600 s 1.97 (1.03 on the earlier 8 x gaudi3 plan)
    # 0.78 / 1.29 with memoryless think times and a steady 4 % of new tokens per turn; 1.85 / 1.34
    # since sessions come back with the trace's timing and add its uneven new tokens (2026-12-04), in
    # a window where 3.32 req/s arrive (heavy-tailed think times make a window's rate swing); 1.60 / 1.39
    # with the later turns' cs^2 (23.0, not 28.5 over every request), 1.21 / 1.12 once the turns
    # realise it (prefill busy 0.33 on the screen, 0.32 simulated)
    "agentic-coding": (1200.0, {
        "ttft": (0.8, 1.5, NEW_TOKEN_SPREAD + "; measured 1.21"),
    }),
    "batch-offline": (300.0, {
        "ttft": (0.8, 1.5, "the M/G/1 tail keeps an exponential shape at the Pollaczek-Khinchine mean; for "
                 "prompts capped at 32k (sigma 0.86) the simulated tail is ~20 % lighter"),
        "tpot": (0.8, 1.7, FULL_BATCH + " (measured 1.39 at 57 x 1 gb200, prefill busy 0.56 vs 0.57)"
                 + RUNNING_CONTEXT + " (measured 1.56)"),
    }),
    "chat": (300.0, {"ttft": (0.8, 1.6, FIRST_TURNS)}),
    "rag": (600.0, {"ttft": (0.8, 1.8, FIRST_TURNS)}),
    # a 5 x 4 h200 plan at batch 512 running ~330 sequences (5 req/s x ~330 s lifetimes / 5 replicas):
    # measured 1.40 (ttft) and 1.26 (tpot)
    "reasoning-qwen3": (900.0, {"ttft": (0.8, 1.5, FULL_BATCH),
                                "tpot": (0.8, 1.7, FULL_BATCH + RUNNING_CONTEXT + " (measured 1.57)")}),
    "reasoning": (1800.0, {"ttft": (0.8, 1.5, FULL_BATCH), "tpot": (0.8, 1.5, FULL_BATCH)}),
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


_SOLVED: dict[str, tuple] = {}


def _solved(name: str, catalog):
    """(scenario, solve result) of a bundled scenario: solved once for both modes' tests."""
    if name not in _SOLVED:
        scenario = load_scenario(Path("scenarios") / f"{name}.toml", [], catalog)
        _SOLVED[name] = scenario, solve(scenario, catalog)
    return _SOLVED[name]


def _simulated(name: str, catalog, mode: str, duration: float, sample: int | None = None):
    """The report of the scenario's best plan of `mode`, simulated for `duration` s (seed 0)."""
    scenario, result = _solved(name, catalog)
    best = result.disagg.best_per_mode[mode] if result.disagg is not None else result.best
    assert best is not None
    doc, _ = run_simulation(scenario, catalog, best, f"scenarios/{name}.toml", duration=duration, warmup=None,
                            seed=0, sample=sample)
    assert doc["mode"] == mode
    return doc


@pytest.mark.parametrize("name", sorted(CASES))
def test_analytic_p95_against_simulation(name, catalog):
    duration, expected = CASES[name]
    _within_bands(name, _simulated(name, catalog, "aggregated", duration, SAMPLE.get(name)), expected)


# Disaggregated plans: scenario -> (seconds of arrivals, bands); every best plan is simulated whole
# (its prefill replicas share the decode pool, so no sample), batch-offline's 125 replicas briefly.
DISAGG_CASES = {
    # measured 2.06 with an int4 gaudi3 prefill pool, 1.51 with the fp8 one chosen since host memory
    # is billed at the sessions an instance holds (the same bill: the tie now keeps the better dtype)
    # 2.61 with the 2 x 2 gh200 pp2 prefill pool (int4, FP8 non-expert GEMMs) sized at 1 % headroom;
    # 1.28 with the 1 x 1 gb200 int4 one (Blackwell's weight-only expert GEMMs at moe_efficiency 0.8):
    # analytic 17.85 s / simulated 13.9 s, prefill pool sized for 3.44 req/s against 3. Its TPOT p95
    # then reads 28.4 / 36.7 ms (0.77, the screen optimistic; within 0.8-1.2 before): the decode pool
    # is the same 1 x 2 gh200 b48 sized for 3.08 req/s, but the prefill pool in front of it is no
    # longer saturated (3.04 -> 3.44 req/s), so it passes bursts on (not measured apart); 1.15 (14.46 /
    # 12.55 s) once Blackwell's expert GEMMs took Hopper's efficiency (2026-12-03): the same pool
    # prefills faster and is sized for 3.78 req/s
    # 3.22 / 1.18 since the synthetic sessions' think times and new tokens follow the trace (2026-12-04;
    # 14.46 / 4.50 s, prefill busy 0.53 simulated against 0.59; 1.15 / 1.05 before); 2.52 with the later
    # turns' cs^2 (23.0), 1.57 once the turns realise it (12.60 / 8.02 s)
    "agentic-coding": (1200.0, {"ttft": (1.1, 2.0, NEW_TOKEN_SPREAD + "; and the screen's prefill pool is "
                                         "12 % busier (0.59 against 0.53; " + FIRST_TURNS + "), ~1.3x on the "
                                         "wait at that load; measured 1.57"),
                                "tpot": (0.75, 1.35, FULL_BATCH + " (decode occupancy 0.60 on the screen, 0.44 "
                                         "simulated; measured 1.18); an unsaturated prefill pool once passed "
                                         "arrival bursts to a decode pool at 97 % of its sized rate (measured "
                                         "0.77)")}),
    "batch-offline": (150.0, {"ttft": (0.8, 2.6, "the screen loads each of the 81 prefill instances to 0.95, "
                               "where the queue relaxes over ~S / (1 - rho)^2 ~ 150 s, so the p95 wait of a "
                               "short run swings with the window: 2.36 over 150 s, 1.48 over 600 s (77 "
                               "instances before the mean prefill was taken over prompt lengths: 1.32 over "
                               "150 s, 0.92 over 300 s)")}),
    "chat": (300.0, {"ttft": (0.8, 1.8, FIRST_TURNS)}),
    "rag": (600.0, {"ttft": (0.8, 1.8, FIRST_TURNS), "tpot": (0.8, 1.5, FULL_BATCH)}),
    "reasoning-qwen3": (900.0, {"tpot": (0.8, 1.7, FULL_BATCH + RUNNING_CONTEXT + " (measured 1.56)")}),
    # measured 1.42 with a gaudi3 prefill pool; with the vendor rule (search.mix_vendors) the
    # cheapest pool was 4 h100-nvl at tp2 x pp2, which held DeepSeek-V3's KV for a p95 prompt only:
    # the simulator rejected 1.3 % of requests and read 2.13 (0.90 s against 1.91); every instance
    # now holds one p99.9 request alone (serving.LONGEST_HELD): tp2 x pp2 x cp2, 2.27 / 2.01 s = 1.13
    "reasoning": (1800.0, {"ttft": (0.8, 1.5, "the M/G/1 wait's exponential tail (Kingman's scaling of the "
                                "M/M/1 form) is heavier than the simulated one; measured 1.13"),
                           "tpot": (0.8, 1.6, FULL_BATCH + " (decode occupancy 0.79 on the screen, 0.56 "
                                    "simulated over 5,400 s)" + RUNNING_CONTEXT + " (measured 1.42)")}),
}


@pytest.mark.parametrize("name", sorted(DISAGG_CASES))
def test_disaggregated_analytic_p95_against_simulation(name, catalog):
    duration, expected = DISAGG_CASES[name]
    _within_bands(name, _simulated(name, catalog, "disaggregated", duration), expected)


def _within_bands(name: str, doc, expected) -> None:
    assert doc["simulated"]["requests"]["measured"] > 500
    # the screen plans every instance to hold one p99.9 request alone (serving.LONGEST_HELD): a
    # request rejected for memory is one the plan cannot serve (reasoning's prefill pool dropped 1.3 %
    # when only a p95 prompt had to fit)
    assert doc["simulated"]["requests"]["rejected"] == 0, f"{name}: the plan rejects requests it cannot hold"
    for metric in ("ttft", "tpot"):
        row = doc["comparison"][f"{metric}_s"]["p95"]
        ratio = row["analytic"] / row["simulated"]
        low, high, why = expected.get(metric, (*WITHIN, "agree within 20 %"))
        assert low <= ratio <= high, (f"{name} {metric} p95: analytic {row['analytic']:.4g} / simulated "
                                      f"{row['simulated']:.4g} = {ratio:.3f}, documented [{low}, {high}]: {why}")
