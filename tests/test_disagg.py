"""Disaggregated prefill/decode serving (#15): the KV transfer, the pools, and the exact pair search."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner import disagg_search
from planner.catalog import load_catalog
from planner.grid import build_grid
from planner.lowering import model_arrays
from planner.model.numpy_reference import twin
from planner.schema import Scenario
from tests.support import HARDWARE_TOML, SCENARIO_TOML

DISAGG = twin()["disagg"]


def _scenario(text: str = SCENARIO_TOML, **search) -> Scenario:
    data = tomllib.loads(text)
    data.setdefault("search", {}).update(search)
    return Scenario.model_validate(data)


# --- the KV transfer ----------------------------------------------------------------------------

def test_transfer_time_is_prompt_kv_over_the_link():
    """Llama 3.3 70B: 80 layers x 8 KV heads x 128 dims x 2 (K and V) = 163,840 elements per token,
    327,680 bytes in BF16; 10,000 tokens over 50 GB/s take 65.536 ms (hand-derived)."""
    a = model_arrays(load_catalog().model("llama-3.3-70b"))
    assert float(DISAGG.transfer_bytes(a, 10_000.0, 2.0)) == pytest.approx(10_000 * 327_680, rel=1e-6)
    assert float(DISAGG.transfer_seconds(a, 10_000.0, 2.0, 50e9)) == pytest.approx(0.065536, rel=1e-6)
    # at the decode pool's KV dtype: fp8 halves the bytes
    assert float(DISAGG.transfer_seconds(a, 10_000.0, 1.0, 50e9)) == pytest.approx(0.032768, rel=1e-6)


def test_transfer_grows_with_prompt_length_and_shrinks_with_bandwidth():
    a = model_arrays(load_catalog().model("deepseek-v4-flash"))
    prompts = np.array([8e3, 32e3, 128e3, 256e3])
    links = np.array([12.5e9, 50e9, 400e9, 1800e9])
    t = np.asarray(DISAGG.transfer_seconds(a, prompts[:, None], 1.0, links[None, :]))
    assert np.all(np.diff(t, axis=0) > 0)  # longer prompts move more KV
    assert np.all(np.diff(t, axis=1) < 0)  # faster links move it sooner


def test_layerwise_transfer_hides_behind_prefill():
    """80 layers, transfer X = 2 s. After prefill all 2 s show. Layer by layer behind a 10 s
    prefill only the last layer's 2/80 = 0.025 s does; behind a 1 s prefill
    2 - 1 x 79/80 = 1.0125 s does (hand-derived from max(X/n, X - P (n-1)/n))."""
    a = model_arrays(load_catalog().model("llama-3.3-70b"))
    assert float(DISAGG.visible_transfer(a, 2.0, 10.0, 0.0)) == pytest.approx(2.0)
    assert float(DISAGG.visible_transfer(a, 2.0, 10.0, 1.0)) == pytest.approx(0.025)
    assert float(DISAGG.visible_transfer(a, 2.0, 1.0, 1.0)) == pytest.approx(1.0125)


def test_pair_bandwidth_uses_the_slower_side_or_the_shared_domain():
    """Two rows: A (scale-out 50 GB/s per chip, NVLink 450 GB/s, domain 8), B (25 GB/s, no domain)."""
    chips = np.array([[1.0, 4.0], [2.0, 8.0]])
    links = {"out": np.array([50e9, 25e9]), "up": np.array([450e9, 0.0]), "domain": np.array([8.0, 1.0])}
    bw, shared = disagg_search.pair_bandwidth(chips, links)
    assert bw[0, 0, 1, 1] == pytest.approx(min(1 * 50e9, 8 * 25e9))  # A x1 -> B x8: A's one NIC binds
    assert bw[1, 1, 0, 1] == pytest.approx(min(8 * 25e9, 4 * 50e9))
    assert shared[0, 0, 0, 1] and bw[0, 0, 0, 1] == pytest.approx(1 * 450e9)  # 1 + 4 chips share an 8-chip domain
    assert shared[0, 1, 0, 1] and bw[0, 1, 0, 1] == pytest.approx(4 * 450e9)  # 4 + 4 fill the domain
    chips_big = np.array([[1.0, 8.0], [2.0, 8.0]])
    bw_big, shared_big = disagg_search.pair_bandwidth(chips_big, links)
    assert not shared_big[0, 1, 0, 1] and bw_big[0, 1, 0, 1] == pytest.approx(8 * 50e9)  # 8 + 8 do not fit
    assert not shared[1, 0, 1, 1]  # B has no scale-up domain


def test_pair_classes_equal_sorting_every_pair_bandwidth():
    """`pair_classes` reads the classes off the two sides (and the shared-domain blocks) instead of
    sorting every pair: the same classes, padding and indices as `bandwidth_classes` and a search
    of each pair's float32 bandwidth, on random rows with and without scale-up domains."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        h, k = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        chips = rng.choice([1.0, 2.0, 3.0, 4.0, 8.0, 16.0, 72.0], size=(h + int(rng.integers(0, 2)), k))  # padded rows too
        links = {"out": rng.choice([0.0, 12.5e9, 25e9, 50e9, 100e9, 3e9 / 7], size=h),
                 "up": rng.choice([0.0, 450e9, 900e9], size=h), "domain": rng.choice([1.0, 4.0, 8.0, 72.0], size=h)}
        bw, shared = disagg_search.pair_bandwidth(chips, links)
        classes, pair_class = disagg_search.pair_classes(chips, links, bw, shared)
        expected = disagg_search.bandwidth_classes(bw)
        np.testing.assert_array_equal(classes, expected)
        np.testing.assert_array_equal(pair_class, np.searchsorted(expected, bw.astype(np.float32)))


# --- the pools ----------------------------------------------------------------------------------

def test_pair_links_are_reused_across_workload_edits_and_redone_for_new_hardware():
    """The pair bandwidths are kept for the last hardware and layouts seen (a TUI edit of the
    workload reuses them); another hardware set or chip list is worked out afresh, never reused."""
    catalog = load_catalog()
    first = build_grid(_scenario(chips=[1, 2]), catalog)
    edited = build_grid(_scenario(SCENARIO_TOML.replace("arrival_rate_rps = 2.0", "arrival_rate_rps = 9.0"),
                                  chips=[1, 2]), catalog)
    kept = disagg_search._transfer_pairs(first)
    assert disagg_search._transfer_pairs(edited) is kept
    for other in (_scenario(chips=[1, 2, 4]), _scenario(chips=[1, 2], hardware=["h100-sxm"])):
        grid = build_grid(other, catalog)
        bw, shared, classes, pair_class = disagg_search._transfer_pairs(grid)
        direct_bw, direct_shared = disagg_search.pair_bandwidth(grid.chips, disagg_search.transfer_links(grid))
        np.testing.assert_array_equal(bw, direct_bw)
        np.testing.assert_array_equal(shared, direct_shared)
        np.testing.assert_array_equal(classes[pair_class], direct_bw.astype(np.float32))


def test_prefill_pools_are_reused_for_equal_inputs_only(monkeypatch):
    """`launch` keeps recent prefill pools by their kernel's inputs: the same grid again (or one that
    differs on the decode side only) runs no prefill kernel and gets the same pools; an edit of the
    workload runs the kernel and gets its own pools, never the kept ones."""
    from planner import executables

    catalog = load_catalog()
    disagg_search._recent_prefill_pools.clear()
    first = build_grid(_scenario(chips=[1, 2]), catalog)
    before = disagg_search.evaluate(first)
    compiled = []
    real = executables.compiled
    monkeypatch.setattr(executables, "compiled", lambda name, *a, **k: compiled.append(name) or real(name, *a, **k))
    again = disagg_search.evaluate(build_grid(_scenario(chips=[1, 2], spec_k=[0, 2]), catalog))
    assert not [name for name in compiled if name.startswith("disagg-prefill")]
    np.testing.assert_array_equal(again.prefill_monthly, before.prefill_monthly)
    np.testing.assert_array_equal(again.prefill_ttft95, before.prefill_ttft95)
    edited = build_grid(_scenario(SCENARIO_TOML.replace("arrival_rate_rps = 2.0", "arrival_rate_rps = 9.0"),
                                  chips=[1, 2]), catalog)
    after = disagg_search.evaluate(edited)
    assert [name for name in compiled if name.startswith("disagg-prefill")]
    assert not np.array_equal(after.prefill_monthly, before.prefill_monthly)
    disagg_search._recent_prefill_pools.clear()
    np.testing.assert_array_equal(disagg_search.evaluate(edited).prefill_monthly, after.prefill_monthly)


def test_decode_tpot_does_not_depend_on_prefill_load():
    """In a disaggregated plan no prefill runs on the decode pool: TPOT is the same at 1 and 50
    requests/s and with a prompt-cache-free TTFT budget, while the aggregated plan's TPOT stalls."""
    catalog = load_catalog()
    tpots, agg = [], []
    for rate in (1.0, 50.0):
        sc = _scenario(SCENARIO_TOML.replace("arrival_rate_rps = 2.0", f"arrival_rate_rps = {rate}"),
                       chips=[1, 2], batch=[8, 64], kv_dtype=["fp8"], weight_dtype=["fp8"])
        grid = build_grid(sc, catalog)
        ev = disagg_search.evaluate(grid)
        tpots.append(ev.decode_tpot95)
        from planner.search import run_grid

        agg.append(run_grid(grid)["tpot95"])
    np.testing.assert_array_equal(tpots[0], tpots[1])
    both = np.isfinite(agg[0]) & np.isfinite(agg[1])
    assert not np.allclose(agg[0][both], agg[1][both])  # the aggregated control does move


def test_prefill_host_memory_is_billed_for_the_sessions_an_instance_holds():
    """A prefill cache sized for 40 sessions per instance (1 TB per chip, the ideal load) that really
    holds 3 req/s x 600 s / 30 turns = 60 sessions over 4 sticky replicas = 15: it bills 15/40 of
    the bytes (HBM full, the rest in DRAM at $0.001 per GB-hour). Random routing: every instance
    sees all 60; a shared pool: each holds a quarter of the pool."""
    from types import SimpleNamespace

    hw = SimpleNamespace(dram_bytes=np.float64(4e12), nvme_bytes=np.float64(0.0))
    pre = {"working_set": np.float64(1e12), "sessions": np.float64(40.0), "local_hbm": np.float64(0.0),
           "pooled": np.float64(0.0)}

    def load(random: float):
        return SimpleNamespace(arrival_rps=3.0, session_s=600.0, turns=30.0, route_random=random,
                               dram_usd_per_gb_hour=0.001, nvme_usd_per_gb_hour=0.0)

    sticky = float(DISAGG.host_usd_per_chip_hour(hw, load(0.0), pre, 4.0))
    assert sticky == pytest.approx(1e12 * 15 / 40 / 1e9 * 0.001)
    assert float(DISAGG.host_usd_per_chip_hour(hw, load(1.0), pre, 4.0)) == pytest.approx(1e12 * 60 / 40 / 1e9 * 0.001)
    pooled = float(DISAGG.host_usd_per_chip_hour(hw, load(0.0), {**pre, "pooled": np.float64(1.0)}, 4.0))
    assert pooled == pytest.approx(sticky)  # a quarter of the pool's 60 sessions
    # what HBM holds is not billed: 0.2 TB of the 0.375 TB in HBM leaves 0.175 TB in DRAM
    in_hbm = float(DISAGG.host_usd_per_chip_hour(hw, load(0.0), {**pre, "local_hbm": np.float64(2e11)}, 4.0))
    assert in_hbm == pytest.approx((0.375e12 - 2e11) / 1e9 * 0.001)


def _brute_force(ev, mix: bool) -> float:
    """Every (prefill option, decode option) pair with the same KV dtype, scored one by one."""
    h = len(ev.grid.hardware)
    best = np.inf
    p = ev.prefill_monthly[:h]  # [H, K, W, KV, P, A, L, G]
    d = ev.decode_monthly[:h]  # [H, K, B, W, KV, T, S, A]
    for hp, kp, kv in np.ndindex(p.shape[0], p.shape[1], p.shape[3]):
        for hd, kd in np.ndindex(d.shape[0], d.shape[1]):
            if not mix and hp != hd:
                continue
            g = ev.pair_class[hp, kp, hd, kd]
            cost = p[hp, kp, :, kv, :, :, :, g].min() + d[hd, kd, :, :, kv].min()
            best = min(best, cost)
    return best


@pytest.mark.parametrize("mix", [True, False])
def test_pair_search_is_exact(mix):
    sc = _scenario(SCENARIO_TOML.replace('["h100-sxm", "b200"]', '["h100-sxm", "b200", "mi300x"]'),
                   chips=[1, 2, 4, 8], batch=[4, 32, 128])
    ev = disagg_search.evaluate(build_grid(sc, load_catalog()))
    choice = disagg_search.best(ev, mix_hardware=mix)
    assert choice is not None
    assert choice.monthly_usd == pytest.approx(_brute_force(ev, mix), rel=1e-6)


def test_decode_pools_from_the_aggregated_kernel_equal_the_disaggregated_kernels():
    """`planner solve` takes the decode pools from the aggregated search's row kernel (they share its
    memory and decode stage); `whatif` and the GPU path run the disaggregated search's own decode
    kernel. Both must give every decode option the same bill and TPOT."""
    from planner import search

    sc = _scenario(SCENARIO_TOML.replace('["h100-sxm", "b200"]', '["h100-sxm", "b200", "mi300x"]'),
                   chips=[1, 2, 4, 8], batch=[4, 32, 128], prefix_cache=[False, True])
    grid = build_grid(sc, load_catalog())
    own = disagg_search.evaluate(grid)
    out, to_host = search._launch(grid, decode_pools=True)
    assert set(search.DECODE_POOL_KEYS) <= set(out)  # the CPU row kernel carries them
    fused = disagg_search.launch(grid, lambda: tuple(to_host(k) for k in search.DECODE_POOL_KEYS))()
    for field in ("decode_monthly", "decode_tpot95"):
        a, b = getattr(own, field), getattr(fused, field)
        assert a.shape == b.shape
        assert np.array_equal(np.isfinite(a), np.isfinite(b))
        assert np.isfinite(a).any()
        np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-5)


def test_plan_row_agrees_with_the_search_and_names_both_pools():
    from planner.disagg_plans import plan_row

    sc = _scenario(chips=[1, 2, 4, 8], batch=[4, 32, 128])
    ev = disagg_search.evaluate(build_grid(sc, load_catalog()))
    choice = disagg_search.best(ev)
    row = plan_row(ev, choice)
    assert row["mode"] == "disaggregated"
    assert row["monthly_usd"] == pytest.approx(choice.monthly_usd, rel=1e-3)
    for pool in ("prefill", "decode"):
        assert {"hardware", "chips", "layout", "replicas", "monthly_usd"} <= set(row[pool])
    assert row["monthly_usd"] == pytest.approx(row["prefill"]["monthly_usd"] + row["decode"]["monthly_usd"], abs=0.02)
    assert row["ttft_p95_s"] <= sc.slo.ttft_p95_s and row["tpot_p95_ms"] <= sc.slo.tpot_p95_ms


# --- mixed hardware -----------------------------------------------------------------------------

def _split_catalog(tmp_path: Path, compute_vendor: str = "test"):
    """Two made-up GPUs at the same price: one with 4x the FLOPs and 1/4 the HBM bandwidth of the
    fixture GPU (a prefill chip, from `compute_vendor`), one the other way round (a decode chip)."""
    compute = (HARDWARE_TOML.replace('id = "test-gpu"', 'id = "compute-gpu"').replace('"Test GPU"', '"Compute GPU"')
               .replace('vendor = "test"', f'vendor = "{compute_vendor}"')
               .replace("bf16_tflops = 989", "bf16_tflops = 3956").replace("fp8_tflops = 1979", "fp8_tflops = 7916")
               .replace("hbm_gbps = 3350", "hbm_gbps = 838"))
    memory = (HARDWARE_TOML.replace('id = "test-gpu"', 'id = "bandwidth-gpu"').replace('"Test GPU"', '"Bandwidth GPU"')
              .replace("bf16_tflops = 989", "bf16_tflops = 247").replace("fp8_tflops = 1979", "fp8_tflops = 495")
              .replace("hbm_gbps = 3350", "hbm_gbps = 13400"))
    (tmp_path / "compute.toml").write_text(compute)
    (tmp_path / "bandwidth.toml").write_text(memory)
    return load_catalog(extra=(tmp_path / "compute.toml", tmp_path / "bandwidth.toml"))


def test_a_mixed_pair_is_chosen_when_it_is_cheaper(tmp_path):
    catalog = _split_catalog(tmp_path)
    text = (SCENARIO_TOML.replace('["h100-sxm", "b200"]', '["compute-gpu", "bandwidth-gpu"]')
            .replace("arrival_rate_rps = 2.0", "arrival_rate_rps = 40.0")
            .replace("median = 2000, p90 = 8000", "median = 16000, p90 = 32000"))
    sc = _scenario(text, chips=[1, 2, 4], batch=[8, 32, 128], weight_dtype=["fp8"], kv_dtype=["fp8"])
    ev = disagg_search.evaluate(build_grid(sc, catalog))
    mixed = disagg_search.best(ev, mix_hardware=True)
    single = disagg_search.best(ev, mix_hardware=False)
    hardware = [acc.id for acc in ev.grid.hardware]
    assert hardware[mixed.prefill[0]] == "compute-gpu"
    assert hardware[mixed.decode[0]] == "bandwidth-gpu"
    assert mixed.monthly_usd < single.monthly_usd


def test_pools_pair_across_vendors_only_where_the_scenario_allows_it(tmp_path):
    """The cheaper mixed pair of the test above, with its prefill chip from another vendor: no engine
    hands KV from one vendor's stack to another's, so by default it is not searched (each vendor has
    one chip here, so the pair is the one-accelerator pair); `search.mix_vendors` searches it, which
    never raises the bill."""
    catalog = _split_catalog(tmp_path, compute_vendor="other")
    text = (SCENARIO_TOML.replace('["h100-sxm", "b200"]', '["compute-gpu", "bandwidth-gpu"]')
            .replace("arrival_rate_rps = 2.0", "arrival_rate_rps = 40.0")
            .replace("median = 2000, p90 = 8000", "median = 16000, p90 = 32000"))
    search = {"chips": [1, 2, 4], "batch": [8, 32, 128], "weight_dtype": ["fp8"], "kv_dtype": ["fp8"]}
    ev = disagg_search.evaluate(build_grid(_scenario(text, **search), catalog))
    vendors = [acc.vendor for acc in ev.grid.hardware]
    one_vendor = disagg_search.best(ev, mix_hardware=True)
    assert vendors[one_vendor.prefill[0]] == vendors[one_vendor.decode[0]]
    assert one_vendor.monthly_usd == disagg_search.best(ev, mix_hardware=False).monthly_usd
    free_ev = disagg_search.evaluate(build_grid(_scenario(text, mix_vendors=True, **search), catalog))
    free = disagg_search.best(free_ev, mix_hardware=True)
    hardware = [acc.id for acc in free_ev.grid.hardware]
    assert (hardware[free.prefill[0]], hardware[free.decode[0]]) == ("compute-gpu", "bandwidth-gpu")
    assert free.monthly_usd < one_vendor.monthly_usd


# --- the serving-mode axis in solve ---------------------------------------------------------------

@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rate=st.sampled_from([0.5, 2.0, 8.0, 30.0]), prompt=st.sampled_from([1000, 4000, 16000, 64000]),
       ttft=st.sampled_from([1.0, 3.0, 10.0]), tpot=st.sampled_from([20.0, 50.0]))
def test_allowing_disaggregation_never_raises_the_minimum_bill(rate, prompt, ttft, tpot):
    from planner.search import solve

    text = (SCENARIO_TOML.replace("arrival_rate_rps = 2.0", f"arrival_rate_rps = {rate}")
            .replace("median = 2000, p90 = 8000", f"median = {prompt}, p90 = {4 * prompt}")
            .replace("ttft_p95_s = 2.0", f"ttft_p95_s = {ttft}").replace("tpot_p95_ms = 50.0", f"tpot_p95_ms = {tpot}"))
    small = {"chips": [1, 2, 4, 8], "batch": [4, 32, 128]}
    both = solve(_scenario(text, **small), load_catalog())
    agg = solve(_scenario(text, serving_mode=["aggregated"], **small), load_catalog())
    if agg.best is None:
        return
    assert both.best is not None
    assert both.best["monthly_usd"] <= agg.best["monthly_usd"] + 1e-6
    assert both.disagg.best_per_mode["aggregated"]["monthly_usd"] == pytest.approx(agg.best["monthly_usd"])


def test_a_shared_host_pool_keeps_hits_under_random_routing():
    """Spread at random over many prefill instances, a per-instance cache sees each session only
    1 time in R (serving.py's rule), while one pool in the instances' host memory serves every
    session from whichever instance it lands on: it must hit more, and bill its host memory."""
    from planner.disagg_plans import _options
    from planner.model.types import Load

    text = (SCENARIO_TOML.replace("arrival_rate_rps = 2.0", "arrival_rate_rps = 400.0")
            .replace("median = 2000, p90 = 8000", "median = 16000, p90 = 32000")
            + "\n[workload.sessions]\nturns = 20\nprefix_reuse = 0.9\nthink_time_s = 10.0\nrouting = \"random\"\n")
    sc = _scenario(text, chips=[1], batch=[8], kv_dtype=["fp8"], weight_dtype=["fp8"], prefix_cache=[True])
    grid = build_grid(sc, load_catalog())
    hw, cfg, valid = _options(grid, [{}, {}])
    load = Load(*(np.asarray(x, np.float32) for x in grid.load))
    pre = DISAGG.prefill_pool(grid.arch, hw, cfg, load, np.array([0.0, 1.0], np.float32))
    own, shared = pre["prefix_hit_rate"]
    assert shared > 2 * own > 0.0
    assert pre["service_s"][1] < pre["service_s"][0]  # more hits, less prefill


def test_a_prefill_instance_holds_one_p999_prompt_alone():
    """An engine cannot serve a prompt whose KV does not fit with nothing else running (the simulator
    rejects it), so a prefill instance reserves KV for one p99.9-long prompt, not a p95-long one.
    Llama 3.1 8B: 32 layers x 8 KV heads x 128 dims x 2 = 65,536 elements per token, as many bytes
    in FP8. Prompts median 2,000, p90 8,000: s = ln 4 / 1.28155 = 1.0817, p99.9 = 2,000 x
    e^(3.0902 s) = 56,597 tokens (p95: 11,851), 3.709 GB of KV on one chip (hand-derived)."""
    from planner.disagg_plans import _options
    from planner.model.types import Load

    sc = _scenario(chips=[1], batch=[8], kv_dtype=["fp8"], weight_dtype=["fp8"], prefix_cache=[False])
    grid = build_grid(sc, load_catalog())
    hw, cfg, _ = _options(grid, [{}])
    pre = DISAGG.prefill_pool(grid.arch, hw, cfg, Load(*(np.asarray(x, np.float32) for x in grid.load)), 0.0)
    assert float(np.ravel(pre["kv_hbm_gb"])[0]) == pytest.approx(3.709, rel=2e-3)


def test_an_instance_at_batch_one_holds_one_p999_request_alone():
    """Aggregated instances and decode pools reserve KV for B sequences at the mean context plus one
    p95-long request, and at least for one p99.9-long request alone, which binds at batch 1.
    Prompts as above (p99.9 56,597 tokens); replies median 300, p90 1,000: s = ln(10/3) / 1.28155 =
    0.9395, p99.9 = 300 e^(3.0902 s) = 5,470. One request of 62,066 tokens: 4.068 GB of FP8 KV."""
    from planner.disagg_plans import _options
    from planner.grid import gather_spec
    from planner.model.types import Load

    serving = twin()["serving"]
    sc = _scenario(chips=[1], batch=[1], kv_dtype=["fp8"], weight_dtype=["fp8"], spec_k=[0], prefix_cache=[False])
    grid = build_grid(sc, load_catalog())
    hw, cfg, _ = _options(grid, [{}])
    spec, draft = gather_spec(grid, tuple(np.zeros(1, int) for _ in grid.shape))
    load = Load(*(np.asarray(x, np.float32) for x in grid.load))
    md = serving.memory_and_decode(grid.arch, hw, cfg, spec, load, np.asarray(draft, np.float32))
    assert float(np.ravel(md["mem"]["kv_hbm"])[0]) / 1e9 == pytest.approx(4.068, rel=2e-3)


def test_pareto_frontiers_span_both_modes():
    """The frontiers are over both modes: cheapest first, each point strictly faster than every
    cheaper one, and no plan of either mode's best beats a frontier point on both axes."""
    from planner.search import solve

    text = (SCENARIO_TOML.replace("arrival_rate_rps = 2.0", "arrival_rate_rps = 20.0")
            .replace("median = 2000, p90 = 8000", "median = 16000, p90 = 32000"))
    result = solve(_scenario(text, chips=[1, 2, 4, 8], batch=[4, 32, 128]), load_catalog())
    for front, key in ((result.pareto_tpot, "tpot_p95_ms"), (result.pareto_ttft, "ttft_p95_s")):
        assert front
        bills = [p["monthly_usd"] for p in front]
        latency = [p[key] for p in front]
        assert bills == sorted(bills) and latency == sorted(latency, reverse=True)
        for plan in result.disagg.best_per_mode.values():
            if plan is not None:
                assert not any(plan["monthly_usd"] < b * (1 - 1e-3) and plan[key] < lat * (1 - 1e-3)
                               for b, lat in zip(bills, latency, strict=True))
    modes = {p["mode"] for p in result.pareto_tpot + result.pareto_ttft}
    assert modes <= {"aggregated", "disaggregated"}
    assert front[0]["monthly_usd"] == pytest.approx(result.best["monthly_usd"], rel=1e-3)


def test_the_disaggregated_search_can_follow_the_table():
    """`solve_in_stages(disaggregated_in_table=False)` (the TUI's): the table stage holds the
    aggregated plans only and says the disaggregated search is pending; the second stage adds it,
    and the answer is then the same as a one-stage solve's."""
    from planner.search import solve, solve_in_stages

    text = (SCENARIO_TOML.replace("arrival_rate_rps = 2.0", "arrival_rate_rps = 20.0")
            .replace("median = 2000, p90 = 8000", "median = 16000, p90 = 32000"))
    sc = _scenario(text, chips=[1, 2, 4, 8], batch=[4, 32, 128])
    table, finish = solve_in_stages(sc, load_catalog(), disaggregated_in_table=False)
    assert table.disagg_pending and table.disagg is None
    assert table.best is not None and table.best.get("mode", "aggregated") == "aggregated"
    full, whole = finish(), solve(sc, load_catalog())
    assert not full.disagg_pending and full.disagg is not None
    assert full.best["monthly_usd"] == pytest.approx(whole.best["monthly_usd"])
    assert full.best.get("mode", "aggregated") == whole.best.get("mode", "aggregated")
    assert full.disagg.best["monthly_usd"] == pytest.approx(whole.disagg.best["monthly_usd"])
    assert [p["monthly_usd"] for p in full.pareto_tpot] == pytest.approx([p["monthly_usd"] for p in whole.pareto_tpot])


@pytest.mark.parametrize("rate", [0.5, 8.0])
def test_the_tuis_pruned_stages_reach_the_same_disaggregated_answer(rate):
    """The TUI's table stage prunes pass 1; its second stage evaluates the skipped layouts and merges
    them: the disaggregated plan (built from every configuration's decode pool) and the frontiers
    equal those of one unpruned solve."""
    from planner.search import solve, solve_in_stages

    scenario = _scenario(SCENARIO_TOML.replace("arrival_rate_rps = 2.0", f"arrival_rate_rps = {rate}"),
                         chips=[1, 2, 4, 8], batch=[4, 32, 128])
    catalog = load_catalog()
    whole = solve(scenario, catalog)
    table, finish = solve_in_stages(scenario, catalog, disaggregated_in_table=False, prune=True)
    early: list = []
    staged = finish(early.append)  # the disaggregated plan is handed over before the frontiers
    assert whole.disagg is not None and whole.disagg.best is not None
    assert len(early) == 1 and early[0].frontiers_pending and not early[0].disagg_pending
    assert early[0].disagg.best["monthly_usd"] == whole.disagg.best["monthly_usd"]
    assert early[0].best["monthly_usd"] == whole.best["monthly_usd"]
    for key in ("monthly_usd", "ttft_p95_s", "tpot_p95_ms"):
        assert staged.disagg.best[key] == whole.disagg.best[key]
    assert staged.best["monthly_usd"] == whole.best["monthly_usd"]
    for frontier in ("pareto_tpot", "pareto_ttft"):
        assert ([(p["hardware"], p["monthly_usd"]) for p in getattr(staged, frontier)]
                == [(p["hardware"], p["monthly_usd"]) for p in getattr(whole, frontier)])


# --- the pruned table stage's disaggregated search ----------------------------------------------

def _rated(rate: float, prompt: int = 2000, ttft: float = 2.0, tpot: float = 50.0,
           hardware: tuple[str, ...] = ("h100-sxm", "b200", "mi300x"), **search) -> Scenario:
    text = (SCENARIO_TOML.replace("arrival_rate_rps = 2.0", f"arrival_rate_rps = {rate}")
            .replace("median = 2000, p90 = 8000", f"median = {prompt}, p90 = {4 * prompt}")
            .replace("ttft_p95_s = 2.0", f"ttft_p95_s = {ttft}").replace("tpot_p95_ms = 50.0", f"tpot_p95_ms = {tpot}")
            .replace('["h100-sxm", "b200"]', "[" + ", ".join(f'"{h}"' for h in hardware) + "]"))
    return _scenario(text, **{"chips": [1, 2, 4, 8], "batch": [4, 32, 128], **search})


def test_a_decode_pools_bill_is_never_below_its_layouts_floor():
    """The pruned search leaves a decode layout out when its bill floor (one whole system at idle
    power, `search.slot_floors`) plus the cheapest prefill pool exceeds the best pair: that needs
    every decode pool's bill to be at least its layout's floor, owned hardware included."""
    from planner.search import slot_floors

    for sc in (_rated(8.0), _rated(30.0, prompt=16000), _rated(2.0).model_copy(update={
            "cost": _rated(2.0).cost.model_copy(update={"mode": "own"})})):
        grid = build_grid(sc, load_catalog())
        ev = disagg_search.evaluate(grid)
        h = len(grid.hardware)
        floors = slot_floors(grid)[:h]
        bills = ev.decode_monthly[:h]
        feasible = np.isfinite(bills)
        assert feasible.any() and (floors[grid.slot_valid[:h]] > 0).all()
        below = np.broadcast_to(floors.reshape(floors.shape + (1,) * (bills.ndim - 2)), bills.shape)
        assert (bills[feasible] >= below[feasible] * (1 - 1e-6)).all()


def test_only_skipped_layouts_that_may_pair_below_the_bound_are_evaluated_again():
    from planner.search import slot_floors

    grid = build_grid(_rated(8.0), load_catalog())
    ev = disagg_search.evaluate(grid)
    h = len(grid.hardware)
    floors = slot_floors(grid)
    skipped = grid.slot_valid.copy()
    skipped[h:] = False
    skipped[0, 0] = False
    partial = disagg_search.DisaggEval(**{**ev.__dict__, "skipped": skipped, "memo": {}})
    cheapest_prefill = float(ev.prefill_monthly[:h].min())
    assert np.isfinite(cheapest_prefill)
    assert (disagg_search.layouts_that_may_pair_below(partial, np.inf, floors) == skipped).all()
    assert not disagg_search.layouts_that_may_pair_below(partial, 0.99 * cheapest_prefill, floors).any()
    bound = cheapest_prefill + float(np.median(floors[skipped]))
    again = disagg_search.layouts_that_may_pair_below(partial, bound, floors)
    assert again.any() and (again != skipped).any()
    assert (again == (skipped & (floors + cheapest_prefill <= bound))).all()
    no_prefill = disagg_search.DisaggEval(**{**partial.__dict__, "prefill_monthly": np.full_like(ev.prefill_monthly, np.inf)})
    assert not disagg_search.layouts_that_may_pair_below(no_prefill, np.inf, floors).any()  # no pair can be feasible


@pytest.mark.parametrize("rate", [0.5, 30.0])
@pytest.mark.parametrize("first", ["dearest quarter", "cheapest half"])
def test_the_best_pair_is_completed_from_the_layouts_that_may_beat_it(rate, first):
    """Pair only some decode layouts first, as if pass 1 had skipped the others. From the dearest
    quarter, the pair found bounds nothing away: `disagg_solve.outcome` evaluates every skipped
    layout (once, only those) and reaches the unpruned search's pair. From the cheapest half, the
    pair found is already the best and no skipped layout can reach it: nothing more is evaluated,
    and the outcome says the frontiers cannot be drawn from it."""
    from planner import disagg_solve, search

    grid = build_grid(_rated(rate), load_catalog())
    whole = disagg_search.best(disagg_search.evaluate(grid))
    assert whole is not None
    floors = search.slot_floors(grid)
    real = grid.real_slots()
    paired = real & ((floors >= np.quantile(floors[real], 0.75)) if first == "dearest quarter"
                     else (floors <= np.quantile(floors[real], 0.5)))
    calls = []

    def pools(layouts):
        calls.append(layouts)
        out, host = search._launch(grid, decode_pools=True, only=layouts.astype(np.float32))
        return search.decode_pools_in(out, host)()

    out, host = search._launch(grid, decode_pools=True, only=paired.astype(np.float32))
    pending = disagg_solve.start(grid, search.decode_pools_in(out, host), lambda: real & ~paired)
    found = disagg_solve.outcome(pending, None, grid, pools, floors)
    assert found.best["monthly_usd"] == pytest.approx(whole.monthly_usd, rel=1e-6)
    assert (found.best["prefill"]["hardware"], found.best["decode"]["hardware"]) == (
        grid.hardware[whole.prefill[0]].id, grid.hardware[whole.decode[0]].id)
    if first == "dearest quarter":
        assert len(calls) == 1 and (calls[0] == (real & ~paired)).all() and found.ev.skipped is None
    else:
        assert calls == [] and found.ev.skipped is not None and (found.ev.skipped == (real & ~paired)).all()
        with pytest.raises(ValueError, match="pruned"):
            disagg_solve.frontiers(SimpleNamespace(disagg=found, grid=grid))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rate=st.sampled_from([0.5, 2.0, 8.0, 30.0]), prompt=st.sampled_from([1000, 16000, 64000]),
       ttft=st.sampled_from([1.0, 3.0, 10.0]), tpot=st.sampled_from([20.0, 50.0]), mix=st.booleans())
def test_a_pruned_table_stage_finds_the_unpruned_disaggregated_plan(rate, prompt, ttft, tpot, mix):
    """`solve`'s tables prune pass 1 with the disaggregated search in the table: its plan, the best
    overall and (after the second stage) both frontiers equal those of one unpruned solve."""
    from planner.search import solve, solve_in_stages

    scenario = _rated(rate, prompt, ttft, tpot, mix_hardware=mix)
    catalog = load_catalog()
    whole = solve(scenario, catalog)
    table, finish = solve_in_stages(scenario, catalog, prune=True)
    assert (table.disagg.best is None) == (whole.disagg.best is None)
    if whole.disagg.best is not None:
        for key in ("monthly_usd", "ttft_p95_s", "tpot_p95_ms"):
            assert table.disagg.best[key] == whole.disagg.best[key]
        for pool in ("prefill", "decode"):
            assert table.disagg.best[pool]["hardware"] == whole.disagg.best[pool]["hardware"]
            assert table.disagg.best[pool]["chips"] == whole.disagg.best[pool]["chips"]
    assert (table.best or {}).get("monthly_usd") == (whole.best or {}).get("monthly_usd")
    staged = finish()
    for frontier in ("pareto_tpot", "pareto_ttft"):
        assert ([(p["hardware"], p.get("mode"), p["monthly_usd"]) for p in getattr(staged, frontier)]
                == [(p["hardware"], p.get("mode"), p["monthly_usd"]) for p in getattr(whole, frontier)])


@pytest.mark.parametrize("mix", [True, False])
def test_a_masked_pair_search_equals_the_search_over_masked_pools(mix):
    """`whatif`'s variants restrict the pair search with axis masks, answered from per-axis tables of
    group minima: each masked answer (bill and both members) is the unmasked search's over pools
    whose left-out options were set to inf, for every variant's mask and for two axes at once."""
    from dataclasses import replace

    from planner.analyses.whatif import VARIANTS
    from planner.grid import AXES

    sc = _scenario(SCENARIO_TOML.replace('["h100-sxm", "b200"]', '["h100-sxm", "b200", "mi300x"]'),
                   chips=[1, 2, 4], batch=[4, 32], kv_dtype=["bf16", "fp8"], weight_dtype=["bf16", "fp8"],
                   dram_fraction=[0.0, 0.5])
    grid = build_grid(sc, load_catalog())
    ev = disagg_search.evaluate(grid)
    base = disagg_search.best(ev, None, mix)
    assert base is not None

    def without(axis: str, index: int) -> np.ndarray:
        keep = np.ones(grid.shape[AXES.index(axis)], bool)
        keep[index] = False
        return keep

    layouts = np.ones(grid.shape[:2], bool)
    layouts[base.decode[0], base.decode[1]] = False
    binding = [{"batch": without("batch", base.decode[2])}, {"weight_dtype": without("weight_dtype", base.decode[3])},
               {"tier": without("tier", base.decode[5])}, {"prefix_cache": without("prefix_cache", base.prefill[4])},
               {"kv_dtype": without("kv_dtype", base.decode[4])}, {"layout": layouts},
               {"tier": without("tier", base.decode[5]), "hardware": np.ones(grid.shape[0], bool)}]
    cases = [v.select(grid) for v in VARIANTS] + binding
    for masks in cases:
        masked = replace(ev, memo={},
                         decode_monthly=np.where(disagg_search._mask(ev.decode_monthly.shape, disagg_search.DECODE_AXES, masks),
                                                 ev.decode_monthly, np.inf),
                         prefill_monthly=np.where(disagg_search._mask(ev.prefill_monthly.shape, disagg_search.PREFILL_AXES, masks),
                                                  ev.prefill_monthly, np.inf))
        expected = disagg_search.best(masked, None, mix)
        assert disagg_search.best(ev, masks, mix) == expected, masks
        if any(masks is case for case in binding):  # each leaves the unrestricted answer out
            assert expected is None or expected != base, masks


def _first_cheapest_pair(p_min, d_min, pair_class, groups):
    """By brute force, in the pair table's order (prefill group, decode group, KV dtype): the first
    pair of groups with a finite option at the least bill, as (bill, prefill group, decode group, KV)."""
    h, k, kv_n, _ = p_min.shape
    p, d, cls = p_min.reshape(h * k, kv_n, -1), d_min.reshape(h * k, kv_n), pair_class.reshape(h * k, h * k)
    found = None
    for i in range(h * k):
        if not np.isfinite(p[i]).any():
            continue
        for j in range(h * k):
            if not np.isfinite(d[j]).any():
                continue
            for kv in range(kv_n):
                apart = groups is not None and groups[i // k] != groups[j // k]
                total = np.float32(np.inf) if apart else p[i, kv, cls[i, j]] + d[j, kv]
                if found is None or total < found[0]:
                    found = (total, i, j, kv)
    return None if found is None or not np.isfinite(found[0]) else (float(found[0]), found[1], found[2], found[3])


@pytest.mark.parametrize("pairing", ["any", "hardware", "vendor"])
@pytest.mark.parametrize("seed", range(40))
def test_the_bounded_pair_search_finds_the_first_cheapest_pair(seed, pairing):
    """`_cheapest_pair` scores only the groups whose least possible pair can reach a known pair's
    bill; on pools with many ties, unreachable (all-inf) groups and classes, and pairs allowed only
    within one accelerator or one vendor (`pool_groups`), it returns what a scan of every pair in
    table order returns, ties included."""
    rng = np.random.default_rng(seed)
    h, k, kv_n, g_n = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(1, 4))
    groups = {"any": None, "hardware": np.arange(h), "vendor": rng.integers(0, 2, size=h)}[pairing]
    p_min = rng.integers(1, 6, size=(h, k, kv_n, g_n)).astype(np.float32)
    d_min = rng.integers(1, 6, size=(h, k, kv_n)).astype(np.float32)
    p_min[rng.random(p_min.shape) < 0.3] = np.inf
    d_min[rng.random(d_min.shape) < 0.3] = np.inf
    pair_class = rng.integers(0, g_n, size=(h, k, h, k))
    ev = SimpleNamespace(pair_class=pair_class)
    assert (disagg_search._cheapest_pair(ev, d_min, p_min, groups)
            == _first_cheapest_pair(p_min, d_min, pair_class, groups))


@pytest.mark.parametrize("kept", [[0, 1, 4], [0, 1, 4, 2], [0, 1, 4, 3], [0, 3, 4], [1, 0], [0, 1, 3, 4]])
@pytest.mark.parametrize("last", [2, 17])
def test_least_over_kept_axes_is_the_least_of_each_kept_cell(kept, last):
    """`_least_over` (the pools' group minima; it takes one of two routes by the innermost axis'
    width) equals the least of every kept cell taken one at a time, in the kept axes' order."""
    rng = np.random.default_rng(len(kept) * 100 + last)
    bills = rng.random((3, 4, 2, 3, last)).astype(np.float32)
    bills[rng.random(bills.shape) < 0.2] = np.inf
    got = disagg_search._least_over(bills, kept)
    assert got.shape == tuple(bills.shape[i] for i in kept)
    for cell in np.ndindex(got.shape):
        index = [slice(None)] * bills.ndim
        for axis, at in zip(kept, cell, strict=True):
            index[axis] = at
        assert got[cell] == bills[tuple(index)].min()


def test_a_scale_up_hand_off_across_several_domains_says_what_it_assumes(invoke):
    """One prefill and one decode instance fit an 8-GPU server, so the KV moves over NVLink; pools
    of 14 chips fill two servers, which holds only if each has both kinds of instance: said."""
    from planner import paths

    doc = json.loads(invoke("solve", paths.scenarios_dir() / "chat.toml", "--set", "search.hardware=['h100-sxm']",
                            "--format", "json").stdout)
    plan = doc["best_per_mode"]["disaggregated"]
    x, p, d = plan["kv_transfer"], plan["prefill"], plan["decode"]
    chips = p["replicas"] * p["chips"] + d["replicas"] * d["chips"]
    assert x["link"] == "scale-up" and x["domains_spanned"] == -(-chips // 8)
    from planner.disagg_plans import pools_words

    words = pools_words(plan)
    if x["domains_spanned"] > 1:
        assert f"pools over {x['domains_spanned']} domains: each must hold prefill and decode instances" in words
    assert pools_words({**plan, "kv_transfer": {**x, "domains_spanned": 1}}).endswith("GB/s")
