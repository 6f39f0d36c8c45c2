"""The simulator's synthetic agent sessions against what the Claude Code trace says about real ones:
think times (mostly seconds, now and then hours), the request rate they deliver as a closed loop,
and how unevenly turns add new tokens.

Expected figures come from the trace's README statistics (../shared/traces/README.md, quoted in
scenarios/agentic-coding.toml) or from arithmetic on the inputs, not from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from planner.catalog import load_catalog
from planner.cli.file_cmds import load_scenario
from planner.grid import load_arrays
from planner.simulate import arrivals
from planner.traces.calibrate import new_token_shape, quantile_at, quantile_mean, think_time_shape


@pytest.fixture(scope="module")
def agentic_load():
    catalog = load_catalog()
    scenario = load_scenario(Path("scenarios/agentic-coding.toml"), [], catalog)
    return load_arrays(scenario, catalog.model(scenario.model.id), catalog)


def test_think_times_have_the_traces_shape_at_the_scenarios_mean():
    """At the trace's mean gap (140.7 s from a reply to the session's next request), the draws have
    the trace's median (9.5 s), p90 (117 s) and share over 5 minutes (4.9-5.1 % of gaps); an exponential
    at that mean would have a median of 97 s and 12 % over 5 minutes."""
    rng = np.random.default_rng(1)
    draws = arrivals.think_times(rng, 2_000_000, 140.7)
    assert draws.mean() == pytest.approx(140.7, rel=0.03)
    assert np.median(draws) == pytest.approx(9.5, rel=0.05)
    assert np.percentile(draws, 90) == pytest.approx(117.0, rel=0.05)
    assert (draws > 300.0).mean() == pytest.approx(0.05, abs=0.006)


@pytest.mark.parametrize("shape", [think_time_shape, new_token_shape])
def test_a_stored_shape_has_mean_one_as_drawn(shape):
    """The stored quantiles are rescaled so that the distribution the simulator draws from (geometric
    between positive quantiles) has mean 1: the scenario's mean stays its mean."""
    p, q = shape()
    assert quantile_mean(p, q) == pytest.approx(1.0, abs=1e-12)
    u = (np.arange(4_000_000) + 0.5) / 4_000_000
    assert quantile_at(p, q, u).mean() == pytest.approx(1.0, rel=2e-3)


def _closed_loop_arrivals(reqs: arrivals.Requests, reply_s: float, duration_s: float) -> int:
    """Arrivals in [0, duration) when every reply takes `reply_s` and a session's next turn comes a
    think time after its reply (what the fleet does, without a server)."""
    t = np.array(reqs.arrival_s)
    count = 0
    for i in range(reqs.count):
        if not np.isfinite(t[i]) or t[i] >= duration_s:
            continue
        count += 1
        nxt = int(reqs.next_turn[i])
        if nxt >= 0:
            t[nxt] = t[i] + reply_s + float(reqs.think_s[i])
    return count


def test_sessions_deliver_the_scenarios_rate(agentic_load):
    """69-turn sessions at 3 requests/s with the trace's heavy-tailed think times (mean 141 s) and
    10.7 s replies: the sessions in progress at t = 0 (3 x (141 + 10.7) = 455 of them, each a
    length-biased residual cycle from its next turn) and those that start during the run deliver
    3 requests/s over an hour. A fresh think time for the sessions in progress delivered ~2x the
    rate over the first 30 minutes, the residual of the think time alone (the reply left out) ~8 %
    less."""
    rates = []
    for seed in range(4):
        reqs = arrivals.synthetic(agentic_load, 3600.0, seed, reply_s=10.7)
        rates.append(_closed_loop_arrivals(reqs, 10.7, 3600.0) / 3600.0)
    assert np.mean(rates) == pytest.approx(3.0, rel=0.04)


def test_turns_add_new_tokens_as_unevenly_as_the_scenario_states(agentic_load):
    """With uncached_scv 23.0 (the trace's later turns), a turn's new tokens keep the stated share of
    the prompt tokens (1 - 0.96) and have the stated cs^2, spread like the trace's (`planner trace
    stats`, new tokens of a later turn: p50 955, p90 4,441, p99 61,423): most turns add ~1 % of a 100k
    prompt, a few over half of it. With uncached_scv unset every turn adds a near-fixed share of its
    prompt, plus its growth over the previous context."""
    reqs = arrivals.synthetic(agentic_load, 20_000.0, 0, reply_s=10.7)
    later = reqs.later_turns()
    new = (reqs.input_tokens - reqs.reusable_tokens)[later].astype(np.float64)
    assert new.sum() / reqs.input_tokens[later].sum() == pytest.approx(0.04, abs=0.002)
    assert new.var() / new.mean() ** 2 == pytest.approx(23.0, rel=0.05)
    assert np.median(new) < 1_500
    assert 3_000 < np.percentile(new, 90) < 8_000
    assert np.percentile(new, 99) > 0.5 * 103_659
    spread = new.var() / new.mean() ** 2

    steady = arrivals.synthetic(agentic_load._replace(uncached_scv=np.float32(0.0)), 20_000.0, 0, reply_s=10.7)
    later = steady.later_turns()
    new = (steady.input_tokens - steady.reusable_tokens)[later].astype(np.float64)
    assert spread > 5.0 * (new.var() / new.mean() ** 2)


def _spread_of_new_tokens(previous_share: float, share: float, scv: float) -> tuple[float, float]:
    """(new share, cs^2 of the new tokens) of 200,000 later turns of 10,000-token prompts whose
    previous context is `previous_share` of the prompt, spread for `share` and `scv`."""
    prompt = np.full(200_000, 10_000.0)
    later = np.ones(prompt.size, dtype=bool)
    reuse = arrivals.spread_reuse(np.random.default_rng(3), share, prompt, previous_share * prompt, later, scv)
    new = prompt - reuse
    return float(new.sum() / prompt.sum()), float(new.var() / new.mean() ** 2)


@pytest.mark.parametrize(("previous_share", "scv"), [(np.inf, 0.5), (np.inf, 5.0), (np.inf, 15.0), (0.98, 0.5),
                                                     (0.98, 5.0)])
def test_new_tokens_take_the_stated_share_and_spread(previous_share, scv):
    """The power and scale are solved on the draws themselves: the stated share of new tokens and
    cs^2 come out, also where every turn's growth over its previous context (2 % of the prompt)
    already adds half of the 4 % asked (that floor leaves cs^2 15 out of reach: below)."""
    share, spread = _spread_of_new_tokens(previous_share, 0.04, scv)
    assert share == pytest.approx(0.04, rel=1e-3)
    assert spread == pytest.approx(scv, rel=0.02)


@pytest.mark.parametrize(("previous_share", "asked", "reached"), [(np.inf, 1_000.0, (15.0, 24.0)),
                                                                  (0.98, 15.0, (5.0, 15.0))])
def test_a_spread_beyond_reach_takes_the_widest_power(previous_share, asked, reached):
    """A share capped at the whole prompt cannot spread more than all-or-nothing does (cs^2 = 1 /
    share - 1 = 24 at 4 %), and a growth every turn adds floors the new tokens: asked for more, the
    turns get the widest spread the shape allows, at the stated share, and fall short of the asked
    cs^2 rather than missing the share."""
    share, spread = _spread_of_new_tokens(previous_share, 0.04, asked)
    assert share == pytest.approx(0.04, rel=1e-3)
    assert reached[0] < spread < reached[1]


def test_the_shapes_regenerate_from_a_trace_as_quantile_functions_of_mean_one():
    """`python -m planner.traces.calibrate TRACE` prints the shapes from a trace: on the bundled slice
    of six Claude Code sessions they are quantile functions (non-decreasing) over the mean, so the
    distribution drawn through them has mean ~1 before the loader's exact rescaling (0.88 for the
    slice's 251 think times, whose tail 33 probabilities resolve coarsely; 1.017 on the whole trace)."""
    from planner.traces.calibrate import (
        SHAPE_PROBABILITIES,
        new_token_shape_from_trace,
        think_shape_from_trace,
    )

    slice_path = str(Path(__file__).parent / "data" / "claude_code_slice.b512.jsonl.gz")
    new_q, new_mean, growth = new_token_shape_from_trace(slice_path)
    assert 0.0 < growth <= 1.0
    for q, mean in (think_shape_from_trace(slice_path), (new_q, new_mean)):
        assert q.shape == SHAPE_PROBABILITIES.shape and mean > 0.0
        assert np.all(np.diff(q) >= 0.0)
        assert quantile_mean(SHAPE_PROBABILITIES, q) == pytest.approx(1.0, abs=0.15)


def test_later_turns_leave_out_the_first_turn_of_sessions_starting_in_the_run():
    """Three sessions stored one after another: the first was in progress at t = 0 (warm: its first
    request in the run is a later turn), the other two start during the run; -1 has no session."""
    session = np.array([0, 0, 1, 1, 1, 2, -1])
    reqs = arrivals.Requests(arrival_s=np.zeros(7), input_tokens=np.ones(7, np.int64),
                             output_tokens=np.ones(7, np.int64), session=session,
                             reusable_tokens=np.zeros(7, np.int64), block_tokens=512, warm=np.array([0]))
    assert reqs.later_turns().tolist() == [True, True, False, True, True, False, False]


def test_the_simulate_report_shows_the_spread_its_turns_realised():
    """`planner simulate` reports the cs^2 of its later turns' new tokens beside the screen's: the
    window's own turns, counted from the request arrays."""
    from planner.simulate.stats import new_tokens_scv

    new = np.array([100, 100, 400, 100], dtype=np.int64)  # the later turns' new tokens
    reqs = arrivals.Requests(arrival_s=np.zeros(6), input_tokens=np.full(6, 1_000, np.int64),
                             output_tokens=np.ones(6, np.int64), session=np.array([0, 0, 0, 1, 1, 1]),
                             reusable_tokens=np.r_[0, 1_000 - new[:2], 0, 1_000 - new[2:]], block_tokens=512)
    assert new_tokens_scv(reqs, np.ones(6, dtype=bool)) == pytest.approx(new.var() / new.mean() ** 2)
    window = np.array([True, True, False, True, True, True])
    assert new_tokens_scv(reqs, window) == pytest.approx(np.var([100, 400, 100]) / 200.0**2)


def test_the_screens_spread_of_new_tokens_is_the_stated_one_or_the_prompts(agentic_load):
    """The analytic column: the stated 23.0, or without it the prompts' own spread (an uncapped
    log-normal's cs^2 is e^(sigma^2) - 1)."""
    from planner.simulate.analytic import new_tokens_scv

    assert new_tokens_scv(agentic_load) == pytest.approx(23.0, rel=1e-5)
    wide = agentic_load._replace(uncached_scv=np.float32(0.0), in_cap=np.float32(1e12))
    sigma = float(agentic_load.in_sigma)
    assert new_tokens_scv(wide) == pytest.approx(np.expm1(sigma**2), rel=1e-4)
