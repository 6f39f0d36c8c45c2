"""The optimizer: exhaustive argmin, agreement with the numpy twin, and invariants of the answer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import with_dotted

from planner import executables, io, paths
from planner.catalog import load_catalog
from planner.evaluation import EvalCase, evaluate_cases
from planner.grid import AXES, build_grid, gather_spec
from planner.model import numpy_reference
from planner.model.types import Config, Hw, Load
from planner.pareto import pareto_indices
from planner.schema import Scenario
from planner.search import run_grid, solve

SMALL_SEARCH = {
    "hardware": ["h100-sxm", "h200-sxm", "b200", "mi300x"],
    "chips": [1, 2, 4, 8],
    "batch": [4, 16, 64],
    "weight_dtype": ["bf16", "fp8"],
    "kv_dtype": ["bf16", "fp8"],
    "dram_fraction": [0.0, 0.5],
    "nvme_fraction": [0.0],
    "spec_k": [0, 2],
    "prefix_cache": [False, True],
    "attention": ["flash"],
    "serving_mode": ["aggregated"],  # the aggregated optimizer; test_disagg.py checks the pair search
}


DRAFT = {"llama-3.3-70b": "llama-3.2-1b", "qwen3-235b-a22b": "qwen3-0.6b"}  # drafts share their target's tokenizer


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def small_scenario(**updates) -> Scenario:
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = dict(SMALL_SEARCH)
    return io.validate(Scenario, with_dotted(data, updates), "test")


def test_argmin_is_the_brute_force_minimum(catalog):
    """Evaluate every configuration one by one (numpy twin, scalar inputs) and compare."""
    grid = build_grid(small_scenario(**{"slo.tpot_p95_ms": 60.0}), catalog)
    best = solve(grid.scenario, catalog).best
    brute_cost, brute_at = np.inf, None
    h_real = len(grid.hardware)
    for flat in range(int(np.prod(grid.shape))):
        idx = np.unravel_index(flat, grid.shape)
        if idx[0] >= h_real:
            continue
        hw = Hw(*(float(np.broadcast_to(x, grid.shape)[idx]) for x in grid.hw))
        cfg = Config(*(float(np.broadcast_to(x, grid.shape)[idx]) for x in grid.cfg))
        valid = bool(np.broadcast_to(grid.valid, grid.shape)[idx])
        spec, draft = gather_spec(grid, tuple(np.array([i]) for i in idx))
        spec = type(spec)(*(x[0] if np.ndim(x) > 1 else float(x[0]) for x in spec))
        with np.errstate(all="ignore"):
            m = numpy_reference.evaluate_serving(grid.arch, hw, cfg, spec, Load(*(float(x) if np.ndim(x) == 0 else np.asarray(x) for x in grid.load)),
                                                 float(draft[0]), valid)
        if float(m["monthly_usd"]) < brute_cost:
            brute_cost, brute_at = float(m["monthly_usd"]), idx
    assert best is not None and brute_at is not None
    assert best["monthly_usd"] == pytest.approx(brute_cost, rel=1e-4)
    assert best["hardware"] == grid.hardware[brute_at[0]].id


@pytest.mark.parametrize("model_id", ["llama-3.3-70b", "qwen3-235b-a22b"])
def test_numpy_reference_agrees_with_jit(catalog, model_id):
    grid = build_grid(small_scenario(**{"model.id": model_id, "speculative.draft_model": DRAFT[model_id]}), catalog)
    raw = run_grid(grid)
    with np.errstate(all="ignore"):
        ref = numpy_reference.evaluate_serving(grid.arch, grid.hw, grid.cfg, grid.spec, grid.load,
                                               np.float32(grid.draft_weight_bytes), grid.valid)
    ref_monthly = np.broadcast_to(ref["monthly_usd"], grid.shape).ravel()
    assert np.isfinite(ref_monthly).any()
    verdict = numpy_reference.agreement(raw["monthly"], ref_monthly,
                                        np.broadcast_to(ref["worst_ratio"], grid.shape).ravel())
    assert verdict["agrees"], verdict
    real = grid.real()  # padding rows and layout slots are skipped: all inf
    ref_tpot = np.broadcast_to(ref["tpot_p95_s"], grid.shape).ravel()
    np.testing.assert_allclose(raw["tpot95"][real], ref_tpot[real], rtol=1e-4)
    assert np.isinf(raw["tpot95"][~real]).all() and np.isinf(raw["monthly"][~real]).all()


def test_agreement_flags_a_real_disagreement():
    jit = np.array([1.0, 2.0, np.inf, 4.0])
    assert numpy_reference.agreement(jit, jit.copy(), np.array([0.5, 0.5, 2.0, 0.5]))["agrees"]
    moved = np.array([1.0, 2.0, 3.0, 4.0])  # a feasibility flip far from the SLO boundary
    assert not numpy_reference.agreement(jit, moved, np.array([0.5, 0.5, 0.5, 0.5]))["agrees"]
    # the same flip where the jit's own p95 sits on its SLO (25.000002 s against 25; the twin read
    # 24.965 s near a saturated prefill queue): a tie, by either side's reading
    on_slo = np.array([0.5, 0.5, 1.0000001, 0.5])
    assert numpy_reference.agreement(jit, moved, np.array([0.5, 0.5, 0.9986, 0.5]), on_slo)["agrees"]
    assert not numpy_reference.agreement(jit, moved, np.array([0.5, 0.5, 0.9986, 0.5]), np.full(4, 0.5))["agrees"]


def _bill(catalog, **updates) -> float:
    best = solve(small_scenario(**updates), catalog).best
    return np.inf if best is None else best["monthly_usd"]


SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(tpot=st.floats(15, 120), tighter=st.floats(0.3, 1.0))
def test_tighter_tpot_slo_never_lowers_the_bill(catalog, tpot, tighter):
    assert _bill(catalog, **{"slo.tpot_p95_ms": tpot * tighter}) >= _bill(catalog, **{"slo.tpot_p95_ms": tpot})


@SETTINGS
@given(ttft=st.floats(0.2, 5.0), tighter=st.floats(0.3, 1.0))
def test_tighter_ttft_slo_never_lowers_the_bill(catalog, ttft, tighter):
    assert _bill(catalog, **{"slo.ttft_p95_s": ttft * tighter}) >= _bill(catalog, **{"slo.ttft_p95_s": ttft})


@SETTINGS
@given(rate=st.floats(0.5, 200.0), more=st.floats(1.0, 4.0))
def test_higher_arrival_rate_never_lowers_the_bill(catalog, rate, more):
    assert (_bill(catalog, **{"workload.arrival_rate_rps": rate * more})
            >= _bill(catalog, **{"workload.arrival_rate_rps": rate}))


@SETTINGS
@given(subset=st.lists(st.sampled_from(SMALL_SEARCH["hardware"]), min_size=1, max_size=3, unique=True),
       extra=st.sampled_from(SMALL_SEARCH["hardware"]))
def test_adding_a_hardware_option_never_raises_the_bill(catalog, subset, extra):
    with_extra = sorted(set(subset) | {extra})
    assert _bill(catalog, **{"search.hardware": with_extra}) <= _bill(catalog, **{"search.hardware": subset})


def test_best_plan_re_evaluated_with_eval_meets_the_slo(catalog):
    scenario = small_scenario()
    best = solve(scenario, catalog).best
    assert best is not None
    w = scenario.workload
    row = evaluate_cases([EvalCase(hardware=best["hardware"], model=scenario.model.id, chips=best["chips"],
                                   batch=best["batch"], input=w.input_tokens.median,
                                   output=w.output_tokens.median, weight_dtype=best["weight_dtype"],
                                   kv_dtype=best["kv_dtype"], replicas=1)], catalog)[0]
    assert row["fits"]
    assert row["ttft_s"] <= scenario.slo.ttft_p95_s
    # eval's plain-decode TPOT at the plan's batch (no speculation, no queueing) is an upper bound
    # on the speculative plan's per-token time only when k = 0; with k > 0 speculation must help
    if best["spec_k"] == 0:
        assert row["tpot_s"] * 1e3 <= scenario.slo.tpot_p95_ms
    assert best["tpot_p95_ms"] <= scenario.slo.tpot_p95_ms and best["ttft_p95_s"] <= scenario.slo.ttft_p95_s


def test_infeasible_hardware_is_explained(catalog):
    result = solve(small_scenario(**{"slo.tpot_p95_ms": 1.0}), catalog)
    assert result.best is None
    assert {x["hardware"] for x in result.infeasible} == set(SMALL_SEARCH["hardware"])
    for x in result.infeasible:
        assert x["margin"] is None or x["margin"] > 0
        assert x["constraint"] == "tpot" and "closest:" in x["reason"]


def test_pareto_frontier_is_monotone():
    rng = np.random.default_rng(0)
    cost, lat = rng.uniform(1, 100, 500), rng.uniform(1, 100, 500)
    cost[::7] = np.inf
    idx = pareto_indices(cost, lat, limit=1000)
    assert np.all(np.diff(cost[idx]) > 0) and np.all(np.diff(lat[idx]) < 0)
    for i in range(500):  # nothing off the frontier dominates a frontier point
        if np.isfinite(cost[i]):
            dominated = (cost[idx] >= cost[i]) & (lat[idx] >= lat[i]) & ((cost[idx] > cost[i]) | (lat[idx] > lat[i]))
            assert not dominated.any()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(2, 40), st.floats(0.0, 0.5), st.integers(0, 2**32 - 1))
def test_pareto_frontier_matches_brute_force(n, levels, infeasible_share, seed):
    """Ties included (few distinct values), and enough points that the subsampled pre-filter acts."""
    rng = np.random.default_rng(seed)
    cost = rng.integers(0, levels, n).astype(float)
    lat = rng.integers(0, levels, n).astype(float)
    cost[rng.random(n) < infeasible_share] = np.inf
    idx = pareto_indices(cost, lat, limit=10**9)
    ok = np.isfinite(cost)
    points = set(zip(cost[ok], lat[ok], strict=True))
    undominated = {(c, t) for c, t in points
                   if not any((c2 <= c and t2 <= t and (c2, t2) != (c, t)) for c2, t2 in points)}
    assert list(zip(cost[idx], lat[idx], strict=True)) == sorted(undominated)


def test_side_by_side_returns_both_in_order_and_raises_either_error():
    from planner.pareto import side_by_side

    rng = np.random.default_rng(1)
    cost, a, b = rng.uniform(1, 100, 20_000), rng.uniform(1, 100, 20_000), rng.uniform(1, 100, 20_000)
    first, second = side_by_side(lambda: pareto_indices(cost, a), lambda: pareto_indices(cost, b))
    np.testing.assert_array_equal(first, pareto_indices(cost, a))
    np.testing.assert_array_equal(second, pareto_indices(cost, b))
    with pytest.raises(ZeroDivisionError):
        side_by_side(lambda: 1 / 0, lambda: 1)
    with pytest.raises(KeyError):
        side_by_side(lambda: 1, lambda: {}["x"])


def test_unsupported_precision_is_masked_not_an_error(catalog):
    grid = build_grid(small_scenario(**{"search.weight_dtype": ["fp4", "fp8"]}), catalog)
    valid = np.broadcast_to(grid.valid, grid.shape)
    fp4 = grid.weight_dtype.index("fp4")
    h100 = [a.id for a in grid.hardware].index("h100-sxm")
    b200 = [a.id for a in grid.hardware].index("b200")
    real = grid.slot_valid[b200]  # padding slots of the layout axis stay masked
    on_fp4 = np.take(valid, fp4, axis=AXES.index("weight_dtype"))
    assert not on_fp4[h100].any() and on_fp4[b200][real].all()


def test_sram_only_chips_get_enough_chips(catalog):
    grid = build_grid(small_scenario(**{"search.hardware": ["groq-lpu"]}), catalog)
    acc = grid.hardware[0]
    chips = np.unique(grid.chips[0][grid.slot_valid[0]])  # a chip count appears once per layout
    # 70B parameters at >= 1 byte each cannot fit in fewer chips than 70e9 / SRAM bytes
    assert chips.min() >= 70e9 / acc.memory_bytes
    assert list(itertools.pairwise(chips)) and all(b == 2 * a for a, b in itertools.pairwise(chips))


def test_bench_reports_its_figures_as_json(invoke):
    import json

    result = invoke("bench", paths.scenarios_dir() / "chat.toml", "--repeat", "1", "--startup-runs", "0",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"configs", "seconds", "configs_per_s", "speedup_vs_numpy", "speedup_vs_python", "compile_s"}
    assert data["numpy_agrees"] is True and data["configs"] > 0 and data["speedup_vs_python"] > 1
    # one warm run: its median is its best
    assert data["seconds_best"] == data["seconds"] and data["configs_per_s_best"] == data["configs_per_s"]
    table = data["table_stage"]  # the pruned pass a plans table runs, against the unpruned one
    assert 0 < table["slots_evaluated"] <= table["slots"] and table["ratio"] > 0
    solved = data["solve_table"]  # the whole table stage, pruned as `solve` runs it for a table
    assert solved["same_best"] is True and solved["seconds"] > 0 and solved["unpruned_seconds"] > 0
    repeated = data["repeated_runs_kernel"]  # the TUI's and a worker's kernel, where it differs
    if executables._options_differ():
        assert repeated["seconds"] > 0 and repeated["one_shot_seconds"] > 0 and repeated["build_wait_s"] >= 0
        assert repeated["ratio"] == pytest.approx(repeated["seconds"] / repeated["one_shot_seconds"], abs=0.01)
    else:
        assert repeated == {}


def test_tui_bench_times_edits_in_the_real_app(invoke, tmp_path):
    import json

    path = tmp_path / "two.toml"
    path.write_text(io.dumps_toml(small_scenario(**{"search.hardware": ["h100-sxm", "b200"]})), encoding="utf-8")
    result = invoke("bench", path, "--tui", "--edits", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["edits"] == 3 and data["size"] == "180x50"
    # the TUI's kernels, those for many runs, built before the timed edits
    assert data["kernels"] == ("interactive" if executables._options_differ() else "one-shot")
    assert data["kernel_upgrade_wait_s"] >= 0
    for key in ("edit_to_table_s", "solve_s", "ui_s"):
        assert 0 < data[key]["median"] <= data[key]["p90"] <= data[key]["max"]
    # the edit -> table time contains the solve and the drawing
    assert data["edit_to_table_s"]["max"] >= data["solve_s"]["median"]
    # the disaggregated plan comes with or before the frontiers, after the table
    assert data["edit_to_table_s"]["median"] <= data["edit_to_disaggregated_s"]["median"] <= data["edit_to_complete_s"]["median"]


def test_tui_bench_edits_keep_the_scenario_valid_and_changed():
    from planner.tui.latency import EDITED, _edits

    scenario = small_scenario()
    edits = _edits(scenario, 12)
    assert {p for p, _ in edits} == set(EDITED)
    for path, value in edits:
        changed = small_scenario(**{path: float(value)})  # validates
        assert changed != scenario


@pytest.mark.parametrize("model_id", ["llama-3.3-70b", "qwen3-235b-a22b"])
def test_row_kernel_matches_the_whole_grid_kernel(catalog, model_id):
    """CPUs run the grid row by row (cache-friendly); wide devices run it as one broadcast. Same
    answer, and for a dense model the kernel traced without expert terms matches the general one."""
    from planner.search import _grid_kernel

    grid = build_grid(small_scenario(**{"model.id": model_id, "speculative.draft_model": DRAFT[model_id]}), catalog)
    rows = run_grid(grid)
    args = (grid.arch, grid.hw, grid.cfg, grid.spec, grid.load, np.float32(grid.draft_weight_bytes), grid.valid)
    dense = not catalog.model(model_id).experts_routed
    real = grid.real()  # the row kernel skips padding rows and padding layout slots (their outputs stay inf)
    for whole in [_grid_kernel(False)(*args)] + ([_grid_kernel(True)(*args)] if dense else []):
        for key in ("monthly", "tpot95", "ttft95"):
            np.testing.assert_allclose(np.asarray(whole[key])[real], rows[key][real], rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(whole["best_per_hw"]), rows["best_per_hw"])


def test_a_hardware_with_no_valid_configuration_does_not_hide_the_ones_after_it(catalog):
    """FP4-only over a100, b200, b300, h100: the GPUs without FP4 have no valid configuration. Rows
    are dealt to two host devices (a100 and b300 on one), and each device must still evaluate every
    row after an empty one: b300 gets the same bills as the whole-grid kernel, in both the aggregated
    search and the disaggregated search's decode pools."""
    from planner import disagg_search
    from planner.search import _grid_kernel

    grid = build_grid(small_scenario(**{"search.hardware": ["a100-sxm-80g", "b200", "b300", "h100-sxm"],
                                        "search.weight_dtype": ["fp4"]}), catalog)
    rows = run_grid(grid)
    args = (grid.arch, grid.hw, grid.cfg, grid.spec, grid.load, np.float32(grid.draft_weight_bytes), grid.valid)
    whole = _grid_kernel(False)(*args)
    real = grid.real()
    np.testing.assert_allclose(np.asarray(whole["monthly"])[real], rows["monthly"][real], rtol=1e-5)
    b300 = [a.id for a in grid.hardware].index("b300")
    assert np.isfinite(rows["monthly"].reshape(grid.shape[0], -1)[b300]).any()
    decode = disagg_search.evaluate(grid).decode_monthly
    assert np.isfinite(decode[b300]).any() and not np.isfinite(decode[[a.id for a in grid.hardware].index("h100-sxm")]).any()


def test_an_aggregated_prefix_cache_bills_the_sessions_routed_to_it(catalog):
    """One 8 x h200 instance with a DRAM prefix cache under sticky routing: the cache is sized (and
    its hit rate read) at the load an instance could take, but it holds, and is billed for, the
    sessions the real load routes to it: arrival x session length / turns. At a fifth of the load,
    one replica either way, it holds a fifth of the bytes and bills less."""
    base = {"search.hardware": ["h200-sxm"], "search.chips": [8], "search.batch": [16],
            "search.weight_dtype": ["fp8"], "search.kv_dtype": ["fp8"], "search.dram_fraction": [0.0],
            "search.spec_k": [0], "search.prefix_cache": [True], "search.serving_mode": ["aggregated"],
            "workload.sessions.routing": "sticky"}
    data = io.read_toml(paths.scenarios_dir() / "agentic-coding.toml")
    plans = []
    for rate in (0.05, 0.01):
        sc = io.validate(Scenario, with_dotted(data, {**base, "workload.arrival_rate_rps": rate}), "test")
        plans.append(solve(sc, catalog).best)
    high, low = plans
    assert high["replicas"] == low["replicas"] == 1
    assert high["prefix_hit_rate"] == pytest.approx(low["prefix_hit_rate"])
    held_high, held_low = (p["memory_gb_per_chip"]["prefix_cache"] for p in plans)
    assert held_low == pytest.approx(held_high / 5, rel=1e-3)
    assert low["monthly_usd"] <= high["monthly_usd"]


def _same_grid(a, b) -> bool:
    """Every field of two grids equal: arrays by value, array tuples (Hw, Config, Load, ...) field by field."""
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            if not all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(x, y, strict=True)):
                return False
        elif isinstance(x, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("edit", [{"slo.tpot_p95_ms": 35.0}, {"slo.ttft_p95_s": 0.7},
                                  {"workload.arrival_rate_rps": 17.5},
                                  {"slo.tpot_p95_ms": 80.0, "workload.arrival_rate_rps": 2.0}])
def test_an_slo_or_rate_edit_reuses_the_grid_exactly_as_rebuilt(catalog, edit):
    """The TUI's SLO and rate edits skip build_grid: the re-aimed grid equals a fresh one, and the solve
    on it returns the same plans."""
    from planner.grid import with_load_of
    from planner.search import solve_in_stages

    before, after = small_scenario(), small_scenario(**edit)
    reused = with_load_of(build_grid(before, catalog), after, catalog)
    assert reused is not None and _same_grid(reused, build_grid(after, catalog))
    assert reused.load.tpot_slo_s != build_grid(before, catalog).load.tpot_slo_s or "slo.tpot_p95_ms" not in edit
    fresh, _ = solve_in_stages(after, catalog)
    kept, _ = solve_in_stages(after, catalog, previous=build_grid(before, catalog))
    assert [(p["hardware"], p["monthly_usd"]) for p in kept.per_hardware] == [
        (p["hardware"], p["monthly_usd"]) for p in fresh.per_hardware]


@pytest.mark.parametrize("edit", [{"search.batch": [4, 16]}, {"workload.output_tokens.median": 300},
                                  {"serving.hbm_fraction": 0.8}, {"model.id": "llama-3.1-8b"}])
def test_any_other_edit_rebuilds_the_grid(catalog, edit):
    from planner.grid import with_load_of

    assert with_load_of(build_grid(small_scenario(), catalog), small_scenario(**edit), catalog) is None


def test_the_bill_floor_is_below_every_configurations_bill(catalog):
    """`serving.monthly_floor` (one whole system at idle power) lower-bounds every bill of its layout
    slot, owned hardware (energy billed) included: the pruned search relies on it."""
    from planner.model.serving import monthly_floor

    for updates in ({}, {"cost.mode": "own", "search.hardware": ["h100-sxm", "h200-sxm", "b200"]},
                    {"workload.arrival_rate_rps": 40.0, "search.chips": [1, 2, 4, 8, 16]}):
        grid = build_grid(small_scenario(**updates), catalog)
        with np.errstate(all="ignore"):
            m = numpy_reference.evaluate_serving(grid.arch, grid.hw, grid.cfg, grid.spec, grid.load,
                                                 np.float32(grid.draft_weight_bytes), grid.valid)
            floor = monthly_floor(grid.hw, grid.cfg, grid.load)
        monthly = np.broadcast_to(m["monthly_usd"], grid.shape).ravel()
        floor = np.broadcast_to(floor, grid.shape).ravel()
        feasible = np.isfinite(monthly) & grid.real()
        assert feasible.any()
        assert (monthly[feasible] >= floor[feasible] * (1 - 1e-6)).all()
        assert (floor[feasible] > 0).all()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tpot=st.floats(20, 120), ttft=st.floats(0.3, 5.0), rate=st.floats(0.5, 80.0),
       hardware=st.lists(st.sampled_from(SMALL_SEARCH["hardware"]), min_size=1, max_size=4, unique=True))
def test_a_pruned_table_stage_lists_the_unpruned_plans(catalog, tpot, ttft, rate, hardware):
    """Pass 1 with pruning (the TUI's table stage, `solve` tables) skips layouts that cannot beat their
    hardware's best: the table (best plan per hardware, closest misses) is the unpruned one, and so
    are the frontiers the second stage adds after evaluating the skipped layouts."""
    from planner.search import solve_in_stages

    scenario = small_scenario(**{"slo.tpot_p95_ms": tpot, "slo.ttft_p95_s": ttft,
                                 "workload.arrival_rate_rps": rate, "search.hardware": hardware})

    def table(result):
        return ([(p["hardware"], p["chips"], p["batch"], p["monthly_usd"]) for p in result.per_hardware],
                [(p["hardware"], p["constraint"], p["reason"]) for p in result.infeasible])

    def frontier(result):
        return [(p["hardware"], p["monthly_usd"], p["tpot_p95_ms"]) for p in result.pareto_tpot]

    full, full_frontiers = solve_in_stages(scenario, catalog)
    pruned, pruned_frontiers = solve_in_stages(scenario, catalog, disaggregated_in_table=False, prune=True)
    assert table(pruned) == table(full)
    assert frontier(pruned_frontiers()) == frontier(full_frontiers())


def test_pruning_skips_layouts_and_keeps_every_hardwares_best(catalog):
    """The pruned pass 1 really skips work (layouts whose one system costs more than the row's best
    are left at inf) and its per-hardware reductions are the unpruned ones."""
    from planner.search import _launch

    grid = build_grid(small_scenario(**{"workload.arrival_rate_rps": 0.5}), catalog)
    _, full = _launch(grid)
    _, pruned = _launch(grid, prune=True)
    full_monthly, pruned_monthly = full("monthly"), pruned("monthly")
    skipped = np.isfinite(full_monthly) & ~np.isfinite(pruned_monthly)
    assert skipped.any()
    found = np.isfinite(pruned_monthly)
    np.testing.assert_array_equal(pruned_monthly[found], full_monthly[found])
    best = full("best_monthly_per_hw")
    some = np.isfinite(best)
    assert some[:len(grid.hardware)].any()
    for key in ("best_per_hw", "best_monthly_per_hw"):  # a hardware with a plan: its cheapest
        np.testing.assert_array_equal(pruned(key)[some], full(key)[some])
    # one without: its closest miss (nothing is skipped on a row before it has a plan)
    np.testing.assert_array_equal(pruned("closest_per_hw")[~some], full("closest_per_hw")[~some])


def test_rows_are_dealt_by_the_slots_each_will_evaluate(catalog):
    """A run limited to `only` some layouts shares those (not the real slots) evenly between the host
    devices; any deal is a permutation of the rows, so the answer does not depend on it."""
    from planner.search import deal_rows, row_kernel_inputs

    grid = build_grid(small_scenario(), catalog)
    rows = grid.shape[0]
    rng = np.random.default_rng(7)
    only = (rng.random(grid.slot_valid.shape) < 0.3) & grid.slot_valid
    only[0] = grid.slot_valid[0]  # one row with every slot: the greedy deal must still balance around it
    devices, deal, _ = row_kernel_inputs(grid, only=only.astype(np.float32))
    assert sorted(deal) == list(range(rows))
    assert (deal == deal_rows(grid, devices, only.sum(axis=1))).all()
    work = only.sum(axis=1)
    shares = [int(work[deal[d * rows // devices:(d + 1) * rows // devices]].sum()) for d in range(devices)]
    assert max(shares) - min(shares) <= max(int(work.max()), 1)
    by_real = deal_rows(grid, devices)
    assert (by_real == deal_rows(grid, devices, grid.slot_valid.sum(axis=1))).all()


def test_the_frontier_skips_dearer_points_that_are_not_measurably_faster():
    """Float32 TTFTs of 0.062300 and 0.062299 s print alike: the reasoning scenario's frontier listed
    $152k, $167k and $186k plans at 'TTFT 0.0623 s'. A dearer point must be 0.1 % faster."""
    cost = np.array([152.0, 167.0, 186.0, 205.0])
    lat = np.array([0.062300, 0.0622995, 0.062299, 0.0411])
    idx = pareto_indices(cost, lat)
    assert list(cost[idx]) == [152.0, 205.0]


def test_the_prefix_cache_is_searched_on_first_and_only_where_prompts_share_a_prefix(catalog):
    """Of equal bills the search keeps the first configuration in grid order (as argmin does): with
    the cache listed first, a plan whose bill is the same with and without it keeps it (it only
    shortens prefills). With nothing reusable the cache changes nothing and is not searched."""
    data = io.read_toml(paths.scenarios_dir() / "studies" / "disaggregation.toml")
    scenario = io.validate(Scenario, with_dotted(data, {"workload.input_tokens.median": 8000}), "test")
    assert build_grid(scenario, catalog).prefix_cache == [True, False]
    best = solve(scenario, catalog).best  # 1 x 2 GB200 either way; off read 0.36 s TTFT p95, on 0.19 s
    assert best["prefix_cache"] is True and best["prefix_hit_rate"] > 0.9
    none = io.validate(Scenario, with_dotted(io.read_toml(paths.scenarios_dir() / "studies" / "disaggregation.toml"),
                                             {"workload.sessions.prefix_reuse": 0.0}), "test")
    assert build_grid(none, catalog).prefix_cache == [False]
