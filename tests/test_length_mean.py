"""A length written with its mean (what billing data gives) instead of its p90: the log-normal is
fitted through the median and the mean of the lengths as served (capped), every consumer reads that
one distribution, and bad means are one line naming the file and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from planner import io, paths
from planner.lengths import (
    LengthFitError,
    lognormal_mean,
    lognormal_second_moment,
    running_output,
    sigma_for_mean,
)
from planner.schema import Scenario

DATA = Path(__file__).parent / "data"
CC = DATA / "claude_code_slice.b512.jsonl.gz"


@pytest.mark.parametrize(("median", "mean"), [(216, 440), (1000, 1001), (100_000, 250_000)])
def test_an_uncapped_mean_gives_the_closed_form_shape(median, mean):
    """Uncapped, mean = median x exp(sigma^2 / 2), so sigma = sqrt(2 ln(mean / median))."""
    assert sigma_for_mean(median, mean, 1e12) == pytest.approx(math.sqrt(2.0 * math.log(mean / median)), rel=1e-6)


def test_a_capped_mean_is_the_mean_of_the_capped_draws():
    """Under a cap the shape is wider than the closed form; the capped draws average the mean asked for."""
    median, mean, cap = 216.0, 440.0, 4096.0
    sigma = sigma_for_mean(median, mean, cap)
    assert sigma > math.sqrt(2.0 * math.log(mean / median))
    draws = np.minimum(median * np.exp(sigma * np.random.default_rng(0).standard_normal(2_000_000)), cap)
    assert float(draws.mean()) == pytest.approx(mean, rel=0.005)
    assert lognormal_mean(median, sigma, cap) == pytest.approx(mean, rel=1e-6)


def test_a_mean_no_capped_lognormal_reaches_is_refused():
    with pytest.raises(LengthFitError, match="at most"):
        sigma_for_mean(216, 4000, 4096)
    with pytest.raises(LengthFitError, match="below the median"):
        sigma_for_mean(216, 200, 4096)
    assert sigma_for_mean(216, 216, 4096) == 0.0


def _scenario_text(output_table: str) -> str:
    text = (paths.scenarios_dir() / "agentic-coding.toml").read_text()
    start = text.index("[workload.output_tokens]")
    end = text.index("\n[", start + 1)
    return text[:start] + output_table + text[end:]


def test_solve_plans_by_the_written_mean(invoke, tmp_path):
    """The JSON's output mean is the one written (not the 401 the p90 implies), and the bill per
    output token follows it."""
    path, p90_path = tmp_path / "mean.toml", tmp_path / "p90.toml"
    path.write_text(_scenario_text("[workload.output_tokens]\nmedian = 216\nmean = 440\nmax = 4096\n"))
    p90_path.write_text(_scenario_text("[workload.output_tokens]\nmedian = 216\np90 = 898\nmax = 4096\n"))
    by_mean = invoke("solve", path, "--format", "json", "--top", "1")
    by_p90 = invoke("solve", p90_path, "--format", "json", "--top", "1")
    assert by_mean.exit_code == 0 and by_p90.exit_code == 0, by_mean.output + by_p90.output
    mean_run, p90_run = json.loads(by_mean.stdout), json.loads(by_p90.stdout)
    assert mean_run["workload"]["output_tokens_mean"] == pytest.approx(440.0, abs=0.5)
    sigma = math.log(898 / 216) / 1.2815515655446004  # median 216, p90 898, max 4096
    capped = np.minimum(216 * np.exp(sigma * np.random.default_rng(1).standard_normal(2_000_000)), 4096)
    assert p90_run["workload"]["output_tokens_mean"] == pytest.approx(float(capped.mean()), rel=0.005)
    # the same plan serving 10 % more output tokens per request bills less per output token
    if mean_run["best"]["monthly_usd"] == p90_run["best"]["monthly_usd"]:
        assert mean_run["best"]["usd_per_mtok_output"] < p90_run["best"]["usd_per_mtok_output"]


def test_set_mean_replaces_the_files_p90(invoke, tmp_path):
    path = tmp_path / "p90.toml"
    path.write_text(_scenario_text("[workload.output_tokens]\nmedian = 216\np90 = 898\nmax = 4096\n"))
    result = invoke("solve", path, "--set", "workload.output_tokens.mean=440", "--format", "json", "--top", "1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["workload"]["output_tokens_mean"] == pytest.approx(440.0, abs=0.5)


@pytest.mark.parametrize(("table", "field", "why"), [
    ("median = 216\np90 = 898\nmean = 440\n", "workload.output_tokens", "give p90 or mean, not both"),
    ("median = 216\nmean = 200\n", "workload.output_tokens.mean", "mean must be >= median"),
    ("median = 216\nmean = 4000\nmax = 4096\n", "workload.output_tokens.mean", "at most 1,533"),
])
def test_a_bad_mean_is_one_line_naming_file_and_field(invoke, tmp_path, table, field, why):
    path = tmp_path / "bad.toml"
    path.write_text(_scenario_text("[workload.output_tokens]\n" + table))
    result = invoke("solve", path)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and field in lines[0] and why in lines[0], result.output
    assert "Traceback" not in result.output


def test_a_trace_fits_its_outputs_through_their_mean(catalog):
    """`with_trace` takes the outputs' median and mean from the trace (their mean is what decode work
    and $/Mtok out follow; through the p90 the Claude Code slice's would be ~21 % low), and the
    screen's output mean is the trace's."""
    from planner.grid import load_arrays
    from planner.traces.readers import read_trace
    from planner.traces.scenario import with_trace

    base = io.validate(Scenario, io.read_toml(paths.scenarios_dir() / "agentic-coding.toml"), "test")
    scenario, note = with_trace(base, paths.scenarios_dir() / "agentic-coding.toml", CC)
    outputs = np.asarray(read_trace(CC).output_tokens, dtype=float)
    assert scenario.workload.output_tokens.p90 is None
    assert scenario.workload.output_tokens.mean == pytest.approx(outputs.mean(), abs=0.1)
    assert f"mean {outputs.mean():,.0f}" in note and "output tokens against" not in note
    load = load_arrays(scenario, catalog.model(scenario.model.id), catalog)
    assert float(load.out_mean) == pytest.approx(outputs.mean(), rel=1e-3)


def test_tui_edit_of_a_mean_replaces_the_p90(catalog):
    from planner.tui.document import ScenarioDocument

    doc = ScenarioDocument.from_file(paths.scenarios_dir() / "agentic-coding.toml", catalog, bundled=True)
    doc.set("workload.output_tokens.p90", 898)
    assert doc.get("workload.output_tokens.mean") is None and doc.validate() is not None
    doc.set("workload.output_tokens.mean", 440.0)
    assert doc.get("workload.output_tokens.p90") is None and doc.validate() is not None
    doc.set("workload.output_tokens.mean", 4000.0)
    assert doc.validate() is None and doc.errors[0].loc == "workload.output_tokens.mean"


@pytest.fixture(scope="module")
def catalog():
    from planner.catalog import load_catalog

    return load_catalog()


def test_the_simulators_synthetic_outputs_average_the_written_mean(catalog):
    """The replay draws the same capped log-normal the screen integrates: its outputs average the mean."""
    from planner.grid import load_arrays
    from planner.simulate.arrivals import synthetic

    base = io.validate(Scenario, io.read_toml(paths.scenarios_dir() / "agentic-coding.toml"), "test")
    assert base.workload.output_tokens.mean == 425  # the bundled default gives its outputs' mean
    load = load_arrays(base, catalog.model(base.model.id), catalog)
    outputs = synthetic(load, 20_000.0, seed=3).output_tokens
    assert outputs.size > 30_000
    assert float(np.mean(outputs)) == pytest.approx(425.0, rel=0.03)


def test_a_running_sequence_is_further_into_a_long_reply_than_half_the_mean():
    """Requests stay in the batch as many steps as they generate, so the batch holds replies in
    proportion to their length: a running sequence has generated E[o^2] / (2 E[o]) tokens, the
    mean over draws weighted by o of a uniform point in each (checked here by drawing them)."""
    median, p90, cap = 8000.0, 20000.0, 32768.0
    sigma = math.log(p90 / median) / 1.2815515655446004
    draws = np.minimum(median * np.exp(sigma * np.random.default_rng(1).standard_normal(2_000_000)), cap)
    weighted_midpoint = float((draws * draws / 2.0).sum() / draws.sum())
    assert running_output(median, sigma, cap) == pytest.approx(weighted_midpoint, rel=0.005)
    assert running_output(median, sigma, cap) > 1.4 * lognormal_mean(median, sigma, cap) / 2.0
    assert lognormal_second_moment(median, sigma, cap) == pytest.approx(float((draws**2).mean()), rel=0.005)
    assert running_output(500.0, 0.0, 4096.0) == 250.0  # a fixed length: halfway, as before
    assert running_output(5000.0, 0.0, 4096.0) == 2048.0  # capped
