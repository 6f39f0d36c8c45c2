"""The prefix-cache curve in the cost model: interpolation, the bundled calibration, `solve --trace`.

Expected values are derived here from the tables themselves (grid points, edges, the (turns-1)/turns
factor), never copied from a run of the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import io, paths
from planner.grid import build_grid
from planner.model.tiers import HIT_CURVE_SESSIONS, HIT_CURVE_TOKENS, curve_hit_rate
from planner.schema import Scenario
from planner.search import solve
from planner.traces.calibrate import CONTEXT_GRID, bundled_shape, scenario_table
from planner.traces.curve import collapse

DATA = Path(__file__).parent / "data"
CC = DATA / "claude_code_slice.b512.jsonl.gz"
CHAT = DATA / "mooncake_chat_slice.jsonl.gz"
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def catalog():
    from planner.catalog import load_catalog

    return load_catalog()


def _curve(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(0, 1, size=HIT_CURVE_TOKENS.size))


def test_curve_is_exact_at_grid_points_for_the_reference_pool_and_linear_below():
    t = _curve()
    for i in (0, 7, 20, HIT_CURVE_TOKENS.size - 1):
        assert float(curve_hit_rate(t, 0.3, HIT_CURVE_TOKENS[i] * 16, 16.0)) == pytest.approx(t[i], rel=1e-5)
    # half a grid step below the smallest tabulated capacity: half the first value (0 one step below)
    half_step = HIT_CURVE_TOKENS[0] / np.sqrt(HIT_CURVE_TOKENS[1] / HIT_CURVE_TOKENS[0])
    assert float(curve_hit_rate(t, 0.3, half_step * 16, 16.0)) == pytest.approx(t[0] / 2, rel=1e-3)
    assert float(curve_hit_rate(t, 0.3, 0.0, 16.0)) == pytest.approx(0.0, abs=1e-12)


def test_a_larger_pool_reads_the_curve_further_along():
    """With exponent 0.5, 1,600 sessions (100x the reference pool) shift log capacity by +1: a cache
    of T/10 per session reads the table at T."""
    t = _curve(1)
    for i in (5, 12, 30):
        got = float(curve_hit_rate(t, 0.5, HIT_CURVE_TOKENS[i] / 10 * 1600, 1600.0))
        assert got == pytest.approx(t[i], rel=1e-4)
    mid = np.sqrt(HIT_CURVE_TOKENS[10] * HIT_CURVE_TOKENS[11])
    assert float(curve_hit_rate(t, 0.0, mid * 3, 3.0)) == pytest.approx((t[10] + t[11]) / 2, rel=1e-4)


@SETTINGS
@given(st.floats(1.0, 1e9), st.floats(1.1, 10.0), st.floats(0.5, 2000.0))
def test_more_cache_never_hits_less(capacity, factor, sessions):
    t, c = scenario_table(100_000.0, 30.0)
    assert float(curve_hit_rate(t, c, capacity * factor, sessions)) >= float(curve_hit_rate(t, c, capacity, sessions)) - 1e-6


def test_collapse_recovers_a_known_pool_exponent():
    log_x = np.log10(HIT_CURVE_TOKENS)
    h = lambda u: 1.0 / (1.0 + 10 ** (-(u - 4.5) * 1.5))  # noqa: E731
    table = np.stack([h(log_x + 0.4 * np.log10(n / 16)) for n in HIT_CURVE_SESSIONS])
    curve, c, err = collapse(table, log_x)
    assert c == pytest.approx(0.4, abs=0.011)
    assert err < 0.01
    assert curve == pytest.approx(h(log_x), abs=0.01)


def test_bundled_shape_is_a_share_that_rises_to_one_and_collapses_within_5_points():
    shape = bundled_shape()
    assert shape.shape == (HIT_CURVE_SESSIONS.size, CONTEXT_GRID.size)
    assert np.all(np.diff(shape, axis=1) >= -1e-9) and np.all(shape >= 0) and np.all(shape <= 1.0 + 1e-9)
    assert np.allclose(shape[:, -1], 1.0, atol=1e-3)  # 1000 contexts per session: everything fits
    _, c, err = collapse(shape, np.log10(CONTEXT_GRID))
    assert 0.0 < c < 1.0 and err < 0.05


def test_scenario_table_tops_out_at_the_repeat_turns():
    turns = 10.0
    t, _ = scenario_table(50_000.0, turns)
    assert t[-1] == pytest.approx((turns - 1) / turns, abs=1e-3)
    assert np.all(np.diff(t) >= -1e-12)


def _scenario(**updates) -> Scenario:
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = {"hardware": ["h100-sxm", "h200-sxm"], "chips": [1, 2, 4, 8], "batch": [8, 32],
                      "weight_dtype": ["fp8"], "kv_dtype": ["fp8"], "spec_k": [0], "prefix_cache": [False, True],
                      "attention": ["flash"], "dram_fraction": [0.0], "nvme_fraction": [0.0]}
    data["speculative"] = {"method": "none"}
    for key, value in updates.items():
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
    return io.validate(Scenario, data, "test")


def test_random_routing_never_hits_more_than_sticky(catalog):
    sticky = build_grid(_scenario(), catalog)
    data = _scenario().model_dump()
    data["workload"]["sessions"]["routing"] = "random"
    rand = build_grid(Scenario.model_validate(data), catalog)
    a = solve(sticky.scenario, catalog).best
    b = solve(rand.scenario, catalog).best
    assert a is not None and b is not None
    assert b["monthly_usd"] >= a["monthly_usd"] - 1e-6


def test_solve_with_a_trace_records_its_statistics_and_the_assumed_hit(invoke, tmp_path):
    scenario = tmp_path / "s.toml"
    shutil.copy(paths.scenarios_dir() / "agentic-coding.toml", scenario)
    shutil.copy(CC, tmp_path / "cc.jsonl.gz")
    text = scenario.read_text().replace("[workload]\n", '[workload]\ntrace = "cc.jsonl.gz"\n', 1)
    scenario.write_text(text)
    result = invoke("solve", scenario, "--format", "json", "--top", "1")
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    tr = data["trace"]
    assert tr["requests"] == 257 and tr["sessions"] == 6
    assert Path(tr["file"]).name == "cc.jsonl.gz"
    assert data["workload"]["input_tokens_median"] == round(tr["input_tokens"]["p50"])
    if data["best"] is not None:
        assert tr["prefix_hit_assumed"] == pytest.approx(
            data["best"]["prefix_hit_rate"] * data["workload"]["prefix_reuse"], abs=1e-3)
    assert "warning:" in result.stderr and "workload.trace" in result.stderr


def test_solve_trace_flag_takes_a_sessionless_chat_trace(invoke):
    result = invoke("solve", paths.scenarios_dir() / "chat.toml", "--trace", CHAT, "--format", "json", "--top", "1")
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    assert data["trace"]["sessions"] is None and data["trace"]["arrival_source"] == "absolute timestamps"


def test_a_missing_trace_is_one_line_naming_the_scenario_field(invoke, tmp_path):
    scenario = tmp_path / "s.toml"
    text = (paths.scenarios_dir() / "chat.toml").read_text().replace("[workload]\n", '[workload]\ntrace = "nope.jsonl"\n', 1)
    scenario.write_text(text)
    result = invoke("solve", scenario)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "workload.trace" in result.stderr and "nope.jsonl" in result.stderr


def test_a_trace_changes_values_not_shapes(catalog, caplog):
    """The curve is a fixed-shape table: solving with a trace after a solve without one compiles nothing."""
    import jax

    from planner.traces.scenario import with_trace

    base = _scenario()
    solve(base, catalog)
    data = base.model_dump()
    data["workload"]["trace"] = str(CC.resolve())
    traced, _ = with_trace(Scenario.model_validate(data), "test")
    with jax.log_compiles(True):
        caplog.clear()
        solve(traced, catalog)
        later = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert later == []


def test_a_trace_whose_mean_the_lognormal_misses_says_so():
    """The screen's lengths are the log-normal through a trace's p50 and p90; where its mean misses the
    trace's own by more than 5 % the trace note says by how much (work and $/Mtok follow the mean).
    Claude Code slice: outputs miss by ~-21 %, inputs by ~+6 %; Mooncake chat slice: outputs ~+12 %,
    inputs within 5 % (not named)."""
    import math
    import re

    from planner.traces.curve import trace_workload
    from planner.traces.scenario import mean_gaps

    def lognormal_mean(median, p90):  # uncapped: these slices' maxima sit far above their p90
        sigma = math.log(p90 / median) / 1.2815515655446004
        return median * math.exp(sigma * sigma / 2.0)

    for path, named in ((CC, ["input", "output"]), (CHAT, ["output"])):
        tw = trace_workload(path)
        inputs, outputs = _lengths(path)
        gaps = mean_gaps(tw)
        assert [g.split(" tokens")[0].split()[-1] for g in gaps] == named
        for gap in gaps:
            kind = gap.split(" tokens")[0].split()[-1]
            fitted, actual = (float(x.replace(",", "")) for x in re.findall(r"[\d,]+(?= )", gap)[:2])
            lengths = inputs if kind == "input" else outputs
            median, p90 = (tw.input_median, tw.input_p90) if kind == "input" else (tw.output_median, tw.output_p90)
            assert actual == pytest.approx(float(np.mean(lengths)), abs=0.5)
            assert fitted == pytest.approx(lognormal_mean(median, p90), rel=0.01)
            assert abs(fitted / actual - 1.0) > 0.05


def _lengths(path):
    from planner.traces.readers import read_trace

    trace = read_trace(path)
    return trace.input_tokens, trace.output_tokens


def test_a_trace_sets_the_think_time_to_its_mean_gap_after_a_reply():
    """workload.sessions.think_time_s is the mean gap from a reply to the session's next request (the
    simulator draws think times around it); a trace sets it from its rows: per session, in time
    order, the next request's timestamp minus this one's timestamp and API time, at least 0. It
    was the median (9.5 s where the mean is 141 s on the whole Claude Code trace)."""
    import gzip
    import json
    from collections import defaultdict

    from planner.traces.scenario import with_trace

    sessions = defaultdict(list)
    with gzip.open(CC, "rt") as f:
        for line in f:
            row = json.loads(line)
            sessions[row["session_id"]].append((row["timestamp"] / 1000.0, row.get("api_time_s") or 0.0))
    gaps = [max(b[0] - (a[0] + a[1]), 0.0) for rows in sessions.values()
            for a, b in zip(sorted(rows), sorted(rows)[1:], strict=False)]
    data = _scenario().model_dump()
    data["workload"]["trace"] = str(CC.resolve())
    traced, _ = with_trace(Scenario.model_validate(data), "test")
    # (requests sharing a timestamp may pair up in another order here: 0.1 % apart)
    assert traced.workload.sessions.think_time_s == pytest.approx(float(np.mean(gaps)), rel=3e-3)
    assert traced.workload.sessions.think_time_s > 2.0 * float(np.median(gaps))
