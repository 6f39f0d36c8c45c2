"""Invariants of the analyses, on small grids: a variant never beats the baseline, longer prompts
never get cheaper, sweeps reuse the compiled kernel, and the API bill follows its formula."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import REPO

from planner.analyses import VARIANTS, evaluate, run_sweep, sweep_points
from planner.analyses.project import api_monthly, cached_share, load_api_prices, pick_apis
from planner.catalog import load_catalog
from planner.cli.file_cmds import load_scenario
from planner.search import solve

STUDIES = REPO / "scenarios" / "studies"
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# A small agentic grid with every technique on the table, so every variant restricts something.
SMALL = [
    'search.hardware=["h100-sxm", "b200", "groq-lpu"]', "search.chips=[1, 2, 4, 8]", "search.batch=[4, 16, 64]",
    'search.weight_dtype=["bf16", "fp8"]', 'search.kv_dtype=["fp8", "int4"]', "search.dram_fraction=[0.0, 0.25]",
    "search.nvme_fraction=[0.0, 0.25]", "search.spec_k=[0, 2]", 'search.attention=["flash", "naive"]',
    'speculative={method = "draft", draft_model = "llama-3.2-1b"}',
]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@SETTINGS
@given(
    rate=st.floats(0.2, 20.0),
    tpot=st.floats(10.0, 200.0),
    ttft=st.floats(2.0, 60.0),
    reuse=st.floats(0.0, 0.95),
    think=st.floats(1.0, 900.0),
)
def test_no_variant_beats_the_baseline(catalog, rate, tpot, ttft, reuse, think) -> None:
    sc = load_scenario(STUDIES / "prompt-cache-agentic.toml", [
        *SMALL, f"workload.arrival_rate_rps={rate}", f"slo.tpot_p95_ms={tpot}", f"slo.ttft_p95_s={ttft}",
        f"workload.sessions.prefix_reuse={reuse}", f"workload.sessions.think_time_s={think}"], catalog)
    ev = evaluate(sc, catalog, VARIANTS)
    assert ev.widened == {"kv_dtype": ["bf16"]}
    for r in ev.variants:
        if ev.best is None:
            assert r.best is None, r.name
        elif r.best is not None:
            assert r.monthly_usd >= ev.best["monthly_usd"], r.name
            assert r.delta_pct >= 0.0, r.name
    # 'speculation by one method (or none)' keeps every plan without speculation, in either serving
    # mode and whichever grid the method is searched in: never dearer than no speculation at all
    by = {r.name: r for r in ev.variants}
    plain = by["no-speculative-decoding"].monthly_usd
    for r in ev.variants:
        if r.name.startswith("spec-") and r.searched and plain is not None:
            assert r.monthly_usd is not None and r.monthly_usd <= plain * (1 + 1e-9), r.name


def _pools(plan: dict) -> list[dict]:
    """The pools a plan runs: itself when aggregated, its prefill and decode pools when not."""
    return [plan["prefill"], plan["decode"]] if plan.get("mode") == "disaggregated" else [plan]


def _every(plan: dict, key: str, check) -> bool:
    """`check` holds on `key` in every pool of the plan that has it (and at least one has it)."""
    values = [pool[key] for pool in _pools(plan) if key in pool]
    return bool(values) and all(check(v) for v in values)


def test_variants_restrict_what_they_say(catalog) -> None:
    """Each variant holds in whichever serving mode wins: a disaggregated best is checked pool by pool."""
    sc = load_scenario(STUDIES / "prompt-cache-agentic.toml", SMALL, catalog)
    ev = evaluate(sc, catalog, VARIANTS)
    by = {r.name: r.best for r in ev.variants}
    assert _every(by["no-speculative-decoding"], "spec_k", lambda k: k == 0)
    assert _every(by["no-kv-quantization"], "kv_dtype", lambda d: d == "bf16")
    assert _every(by["no-prefix-cache"], "prefix_cache", lambda on: on is False)
    for name in ("no-kv-offload", "hbm-only"):
        assert _every(by[name], "tier_split", lambda t: t["hbm"] == 1.0), name
    for pool in _pools(by["hbm-only"]):
        memory = pool["memory_gb_per_chip"]
        assert (memory.get("prefix_cache") or 0.0) <= memory["usable_hbm"]
    assert _every(by["hbm-dram-only"], "tier_split", lambda t: t["nvme"] == 0.0)
    assert _every(by["naive-attention"], "attention", lambda a: a == "naive")
    assert _every(by["bf16-weights-only"], "weight_dtype", lambda d: d == "bf16")
    assert _every(by["gpu-only"], "hardware", lambda h: h in ("h100-sxm", "b200"))
    specialist = next(r for r in ev.variants if r.name == "specialist-only")
    assert specialist.best is None or _every(specialist.best, "hardware", lambda h: h == "groq-lpu")
    cheapest = next(r for r in ev.variants if r.name == "cheapest-hardware-only")
    assert cheapest.description.startswith("only groq-lpu")  # $1.92 < h100-sxm $2.95 < b200 per chip-hour


def test_baseline_matches_solve(catalog) -> None:
    """With nothing to widen, the whatif baseline is exactly `planner solve`'s best plan."""
    sc = load_scenario(STUDIES / "kv-quantization.toml", [], catalog)
    ev = evaluate(sc, catalog)
    assert ev.best == solve(sc, catalog).best


@SETTINGS
@given(lengths=st.lists(st.integers(256, 120_000), min_size=2, max_size=5, unique=True).map(sorted))
def test_longer_prompts_never_get_cheaper(catalog, lengths) -> None:
    path = STUDIES / "speculative-context.toml"
    points = sweep_points(path, "workload.input_tokens.median", [str(n) for n in lengths], [], catalog)
    result = run_sweep("workload.input_tokens.median", points, catalog)
    costs = [ev.best["monthly_usd"] if ev.best else float("inf") for ev in result.evaluations]
    assert costs == sorted(costs), list(zip(lengths, costs, strict=True))


def test_sweep_reuses_the_compiled_kernel(catalog, caplog) -> None:
    import jax

    path = STUDIES / "kv-tiering.toml"
    points = sweep_points(path, "slo.ttft_p95_s", ["5", "10", "20", "40"], [], catalog)
    with jax.log_compiles(True):
        run_sweep("slo.ttft_p95_s", points[:1], catalog)
        first = sum("Compiling" in r.getMessage() for r in caplog.records)
        caplog.clear()
        run_sweep("slo.ttft_p95_s", points[1:], catalog)
        later = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert first > 0 or later == [], "the check must see compilations when they happen"
    assert later == [], f"workload/SLO values must not recompile a kernel: {later[:2]}"


def test_sweep_validates_every_point_first(catalog) -> None:
    from planner.errors import InputFileError

    with pytest.raises(InputFileError, match=r"median=200000\): workload.input_tokens: p90 must be >= median"):
        sweep_points(STUDIES / "kv-quantization.toml", "workload.input_tokens.median", ["1000", "200000"], [],
                     catalog)


def test_api_bill_formula(catalog) -> None:
    sc = load_scenario(STUDIES / "prompt-cache-agentic.toml", [], catalog)
    (gpt5,) = pick_apis(["gpt-5"])
    share = cached_share(sc)
    assert share == pytest.approx(0.9 * 29 / 30)
    requests = 3.0 * 3600 * 730
    expected = requests * (50_000 * (share * 0.125 + (1 - share) * 1.25) + 1_000 * 10.0) / 1e6
    assert api_monthly(gpt5, sc, 50_000, 1_000) == pytest.approx(expected)


def test_api_price_table_is_sourced() -> None:
    table = load_api_prices()
    providers = {a.provider for a in table.api}
    assert {"OpenAI", "Anthropic", "DeepSeek"} <= providers
    for a in table.api:
        assert a.source in table.sources and a.date
        assert a.cached_input <= a.input, a.id
    assert not next(a for a in table.api if a.id == "gpt-4.1").verified, "[U] figures are marked unverified"
