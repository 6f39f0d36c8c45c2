"""One test per mechanism of the cost model, with expectations computed independently of the code."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from planner.catalog import load_catalog
from planner.lowering import config_arrays, draft_arrays, hardware_arrays, model_arrays
from planner.model import arch as arch_mod
from planner.model.attention import attn_flops_prefill
from planner.model.compute import experts_touched
from planner.model.decode import decode_step_time
from planner.model.memory import memory_per_chip
from planner.model.offline import evaluate_offline
from planner.model.prefill import prefill_time
from planner.model.speculative import acceptance, tokens_per_step
from planner.schema.scenario import Speculative


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def hw(cat, hw_id="h100-sxm"):
    return hardware_arrays([cat.accelerator(hw_id)], cat)


def cfg(**kw):
    base = dict(chips=1, batch=8, weight_dtype="fp8", kv_dtype="bf16")
    base.update(kw)
    return config_arrays(**base)


def test_mla_kv_bytes_deepseek_v3(cat):
    m = cat.model("deepseek-v3")
    # 61 layers x (kv_lora_rank 512 + rope 64) x 2 bytes (DeepSeek-V3 config.json)
    assert arch_mod.kv_bytes_per_token(m, 2.0) == 61 * (512 + 64) * 2


def test_gqa_kv_bytes_llama_70b(cat):
    m = cat.model("llama-3.1-70b")
    assert arch_mod.kv_bytes_per_token(m, 2.0) == 2 * 80 * 8 * 128 * 2  # 320 KiB


def test_sliding_window_layers_cap_kv(cat):
    m = cat.model("gpt-oss-120b")
    short, long = arch_mod.kv_bytes_per_token(m, 2.0, 128), arch_mod.kv_bytes_per_token(m, 2.0, 100_000)
    assert long < 0.51 * short  # half the layers stop growing at the 128-token window


@pytest.mark.parametrize("model_id", ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen3-235b-a22b",
                                      "deepseek-v3", "qwen3-30b-a3b", "llama-2-7b"])
def test_derived_parameter_count_matches_published(cat, model_id):
    m = cat.model(model_id)
    assert arch_mod.param_counts(m).total == pytest.approx(m.params_total_published, rel=0.02)


def test_fp8_kv_halves_kv_bytes(cat):
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat)
    bf16 = memory_per_chip(a, h, cfg(kv_dtype="bf16"), 4096.0, 0.0, 0.0)["kv_hbm"]
    fp8 = memory_per_chip(a, h, cfg(kv_dtype="fp8"), 4096.0, 0.0, 0.0)["kv_hbm"]
    assert float(np.ravel(fp8)[0]) == pytest.approx(float(np.ravel(bf16)[0]) / 2)


def test_int4_kv_pays_for_its_scales(cat):
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat)
    bf16 = float(np.ravel(memory_per_chip(a, h, cfg(kv_dtype="bf16"), 4096.0, 0.0, 0.0)["kv_hbm"])[0])
    int4 = float(np.ravel(memory_per_chip(a, h, cfg(kv_dtype="int4"), 4096.0, 0.0, 0.0)["kv_hbm"])[0])
    assert bf16 / 4 < int4 < bf16 / 3


def test_speculative_tokens_per_step():
    # Leviathan et al.: (1 - a^(k+1)) / (1 - a); a = 0.8, k = 4 -> 3.3616
    assert float(tokens_per_step(0.8, 4.0)) == pytest.approx((1 - 0.8**5) / 0.2, rel=1e-5)
    assert float(tokens_per_step(0.8, 0.0)) == pytest.approx(1.0)


def test_acceptance_falls_with_context():
    spec, _ = draft_arrays(load_catalog(), load_catalog().model("llama-3.1-70b"),
                           Speculative(acceptance_short=0.8, acceptance_long=0.5, acceptance_context_tokens=32768))
    values = [float(acceptance(spec, c)) for c in (0.0, 8192.0, 96_000.0, 1e7)]
    assert values[0] == pytest.approx(0.8) and values[-1] == pytest.approx(0.5, abs=1e-4)
    assert values == sorted(values, reverse=True)


def test_decode_time_grows_with_context(cat):
    a, h, c = model_arrays(cat.model("llama-3.1-70b")), hw(cat), cfg(chips=2, batch=32)
    times = [float(decode_step_time(a, h, c, 32.0, ctx)[0]) for ctx in (1e3, 1e4, 1e5)]
    assert times[0] < times[1] < times[2]


def test_prefill_attention_grows_quadratically(cat):
    a = model_arrays(cat.model("llama-3.1-70b"))
    assert float(attn_flops_prefill(a, 2000.0, 0.0)) == pytest.approx(4 * float(attn_flops_prefill(a, 1000.0, 0.0)))


def test_prefix_cache_hit_saves_prefill_time(cat):
    a, h, c = model_arrays(cat.model("llama-3.1-70b")), hw(cat), cfg(chips=4)
    full = float(prefill_time(a, h, c, 100_000.0, 0.0)[0])
    cached = float(prefill_time(a, h, c, 10_000.0, 90_000.0)[0])
    assert cached < 0.3 * full


def test_naive_attention_costs_time_and_memory(cat):
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat)
    flash, naive = cfg(flash=1.0), cfg(flash=0.0)
    assert float(prefill_time(a, h, naive, 32_000.0, 0.0)[0]) > float(prefill_time(a, h, flash, 32_000.0, 0.0)[0])
    mem_naive = memory_per_chip(a, h, naive, 32_000.0, 0.0, 0.0)["attn_scores"]
    assert float(mem_naive[0]) > 1e9 and float(memory_per_chip(a, h, flash, 32_000.0, 0.0, 0.0)["attn_scores"][0]) == 0


def test_moe_experts_touched_grow_with_batch(cat):
    a = model_arrays(cat.model("qwen3-235b-a22b"))  # 128 experts, 8 active
    assert float(experts_touched(a, 1.0)) == pytest.approx(8.0)
    assert float(experts_touched(a, 4096.0)) == pytest.approx(128.0, rel=1e-3)
    assert float(experts_touched(a, 16.0)) < float(experts_touched(a, 64.0))


def test_kv_offload_over_pcie_slows_decode(cat):
    a, h = model_arrays(cat.model("llama-3.1-70b")), hw(cat)
    on_hbm = float(decode_step_time(a, h, cfg(chips=4, batch=16), 16.0, 100_000.0)[0])
    half_dram = float(decode_step_time(a, h, cfg(chips=4, batch=16, dram_frac=0.5), 16.0, 100_000.0)[0])
    assert half_dram > 2 * on_hbm  # PCIe (64 GB/s) is ~50x slower than HBM


def test_tensor_parallel_all_reduce_costs_time(cat):
    a, h = model_arrays(cat.model("llama-3.1-70b")), hw(cat)
    # at fixed per-chip work (batch scales with chips) more chips add all-reduce time
    t2 = float(decode_step_time(a, h, cfg(chips=2, batch=2), 2.0, 1000.0)[0]) * 2
    t8 = float(decode_step_time(a, h, cfg(chips=8, batch=8), 8.0, 1000.0)[0]) * 8
    assert t8 / 8 > t2 / 2 * 0.25  # sanity: not ideal 4x scaling of a weight-bound step


def test_dataflow_layer_latency_adds_per_layer_per_step(cat):
    """Groq/Cerebras: each decode step pays the family's per-layer latency once per layer, so at
    batch 1 the step time is ~layers x latency (GPUs carry a smaller fitted one: launches and minimum
    kernel durations)."""
    from planner.calibrate import with_family

    latency_s = cat.calibration["groq"].layer_latency_us * 1e-6
    assert latency_s > cat.calibration["hopper"].layer_latency_us * 1e-6 > 0
    without = with_family(cat, "groq", layer_latency_us=0.0)
    for model_id, chips in (("llama-3.1-8b", 64), ("llama-3.3-70b", 512)):
        a = model_arrays(cat.model(model_id))
        c = cfg(chips=chips, batch=1)
        with_lat = float(decode_step_time(a, hw(cat, "groq-lpu"), c, 1.0, 1000.0)[0])
        bare = float(decode_step_time(a, hardware_arrays([cat.accelerator("groq-lpu")], without), c, 1.0, 1000.0)[0])
        assert with_lat - bare == pytest.approx(cat.model(model_id).layers * latency_s, rel=1e-4)
        assert with_lat > 2 * bare  # the latency, not bandwidth or FLOPs, binds a single stream


def test_a_board_below_its_dies_full_clock_power_sustains_less_of_the_rated_peak(cat):
    """MI300X (750 W) and MI325X (1,000 W) are one CDNA 3 die rated at one peak: with the voltage at
    its floor (P ~ f) the 750 W board holds 3/4 of the clock through dense GEMMs, with P ~ f^3 the cube
    root of that; a board at or above the full-clock power keeps its peak, as do boards in a family
    that states no full-clock power. Large-batch prefill, which is compute-bound, follows the clock."""
    from planner.calibrate import with_family
    from planner.model.power import sustained_clock_fraction

    assert float(sustained_clock_fraction(750.0, 1000.0, 1.0)) == pytest.approx(0.75)
    assert float(sustained_clock_fraction(750.0, 1000.0, 1 / 3)) == pytest.approx(0.75 ** (1 / 3))
    assert float(sustained_clock_fraction(1400.0, 1000.0, 1.0)) == 1.0
    assert float(sustained_clock_fraction(750.0, 0.0, 1.0)) == 1.0

    limited = with_family(cat, "cdna3", full_clock_power_w=1000.0, power_clock_exponent=1.0)
    unlimited = with_family(cat, "cdna3", full_clock_power_w=0.0)
    a, c = model_arrays(cat.model("llama-3.1-70b")), cfg(chips=1, batch=1)

    def prefill(catalog, chip):
        return float(prefill_time(a, hardware_arrays([catalog.accelerator(chip)], catalog), c, 8192.0, 0.0)[0])

    capped = hardware_arrays([limited.accelerator("mi300x")], limited)
    rated = hardware_arrays([unlimited.accelerator("mi300x")], unlimited)
    for name in ("flops_bf16", "flops_fp8", "flops_int8"):
        assert float(getattr(capped, name)[0]) == pytest.approx(0.75 * float(getattr(rated, name)[0]), rel=1e-6)
    assert float(capped.mem_bw[0]) == float(rated.mem_bw[0])  # the power limit slows the clock, not HBM
    # prefill of 8k tokens is mostly GEMM time (the per-layer latencies and weight reads are not)
    assert 1.25 < prefill(limited, "mi300x") / prefill(unlimited, "mi300x") <= 1 / 0.75 + 1e-6
    assert prefill(limited, "mi325x") == pytest.approx(prefill(unlimited, "mi325x"), rel=1e-6)
    assert prefill(limited, "mi300x") > 1.25 * prefill(limited, "mi325x")  # same rated peak, less power


def test_runs_under_jit_and_vmap(cat):
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat)
    spec, _ = draft_arrays(cat, cat.model("llama-3.1-8b"), Speculative())
    batches = np.array([1.0, 8.0, 64.0], np.float32)
    c = cfg(batch=batches)
    direct = jax.jit(evaluate_offline)(a, h, c, spec, 1024.0, 256.0, 0.9)["throughput_tok_s"]

    def one(b):
        return evaluate_offline(a, h, c._replace(batch=b), spec, 1024.0, 256.0, 0.9)["throughput_tok_s"]

    mapped = jax.jit(jax.vmap(one))(batches)
    np.testing.assert_allclose(np.asarray(mapped).ravel(), np.asarray(direct).ravel(), rtol=1e-5)


def test_no_recompile_when_only_values_change(cat):
    traces = []

    def counted(*args):
        traces.append(1)
        return evaluate_offline(*args)

    fn = jax.jit(counted)
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat)
    spec, _ = draft_arrays(cat, cat.model("llama-3.1-8b"), Speculative())
    for batch in (4.0, 16.0, 64.0):
        fn(a, h, cfg(batch=batch), spec, np.float32(1024.0), np.float32(256.0), np.float32(0.9))
    assert len(traces) == 1


def test_every_usable_tier_has_a_bandwidth(cat):
    """A tier with capacity but no bandwidth would make reloads take forever (a past bug: TPU v5e's
    unknown DRAM bandwidth became 0 B/s)."""
    from planner.lowering import hardware_row

    for acc in cat.hardware.values():
        row = hardware_row(acc, cat)
        assert row["host_bw"] > 0 and row["link_bw"] > 0, acc.id
        if row["dram_bytes"] > 0:
            assert row["dram_bw"] > 0, acc.id
        if row["nvme_bytes"] > 0:
            assert row["nvme_bw"] > 0, acc.id


def test_ttft_quantile_ignores_hits_that_cache_nothing():
    """With no prefix reuse, hits and misses are the same path: the p95 is the prompt-length p95
    whatever the hit rate (a past bug split the tail between identical paths)."""
    from planner.model.queueing import lognormal_quantile, mixture_log_quantile

    median, sigma, cap = 10_000.0, 0.8, 1e9
    direct = float(lognormal_quantile(median, sigma, cap, 0.95))
    for hit in (0.0, 0.3, 0.87, 1.0):
        x = float(mixture_log_quantile(np.log(median), np.log(median), hit, sigma, np.log(cap), np.log(cap), 0.95))
        assert np.exp(x) == pytest.approx(direct, rel=1e-3)


def test_normal_cdf_abs_is_phi_to_its_stated_error():
    """The compact Phi the bisection uses: within 7.5e-8 of the exact CDF over the whole line in
    Abramowitz & Stegun's bound, plus float32 rounding (JAX computes in float32: ~1e-7 more)."""
    from statistics import NormalDist

    from planner.model.queueing import normal_cdf_abs

    xs = np.linspace(-9.0, 9.0, 3601)
    exact = np.array([NormalDist().cdf(x) for x in xs])
    got = np.asarray(normal_cdf_abs(xs), dtype=np.float64)
    assert np.max(np.abs(got - exact)) < 2.5e-7
    assert float(normal_cdf_abs(0.0)) == pytest.approx(0.5, abs=1e-8)


def test_ttft_quantile_mixture_solves_the_cdf():
    from statistics import NormalDist

    from planner.model.queueing import mixture_log_quantile

    mu_a, mu_b, w, s = np.log(1000.0), np.log(10_000.0), 0.9, 0.5
    x = float(mixture_log_quantile(mu_a, mu_b, w, s, 50.0, 50.0, 0.95))
    n = NormalDist()
    assert w * n.cdf((x - mu_a) / s) + (1 - w) * n.cdf((x - mu_b) / s) == pytest.approx(0.95, abs=1e-3)


def test_mean_prefill_is_the_mean_over_prompt_lengths_and_hits(cat):
    """The screen's mean prefill service is E[prefill(L)] over the capped log-normal prompts, per hit
    and per miss: attention grows with L^2, so the prefill of the mean prompt under-counts the load.
    Checked against prefill_time averaged over 200k drawn prompts (computed here, not by the code)."""
    from planner.model.serving import mean_prefill
    from planner.model.types import Load

    model, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat, "h100-sxm")
    c = cfg(batch=1)
    median, sigma, cap, reuse = 60_000.0, 0.7, 131_072.0, 0.9
    names = Load._fields
    ld = Load(**{n: np.float32(0.0) for n in names})._replace(
        in_median=np.float32(median), in_sigma=np.float32(sigma), in_cap=np.float32(cap))
    hit, miss = (float(np.squeeze(x)) for x in mean_prefill(model, h, c, ld, (reuse, 0.0)))

    rng = np.random.default_rng(0)
    lengths = np.minimum(np.exp(np.log(median) + sigma * rng.standard_normal(200_000)), cap).astype(np.float32)
    drawn_hit = float(np.mean(prefill_time(model, h, c, lengths * (1 - reuse), lengths * reuse)))
    drawn_miss = float(np.mean(prefill_time(model, h, c, lengths, 0.0 * lengths)))
    assert hit == pytest.approx(drawn_hit, rel=0.005) and miss == pytest.approx(drawn_miss, rel=0.005)
    mean_length = float(np.mean(lengths))
    at_mean = float(np.squeeze(prefill_time(model, h, c, np.float32(mean_length), np.float32(0.0))))
    assert miss > 1.05 * at_mean  # the L^2 term: a mean over lengths, not the mean length's prefill


def test_nvme_behind_dram_serves_only_the_hits_it_adds():
    """An LRU hierarchy demotes the coldest sessions: with NVMe behind HBM and DRAM, HBM serves
    what its capacity alone would hit, DRAM the hits its capacity adds on top, NVMe the rest. So
    the hits served from the faster tiers are those of the cache without NVMe, and NVMe's share of
    the hits is exactly the hit rate it adds. A made-up rising curve, capacities in tokens."""
    from planner.model.tiers import HIT_CURVE_POINTS, curve_hit_rate, tier_hits

    curve = np.linspace(0.05, 0.95, HIT_CURVE_POINTS) ** 0.5
    hbm, dram, nvme, sessions = 2.0e4, 3.0e5, 5.0e6, 16.0

    def hit(tokens: float) -> float:
        return float(curve_hit_rate(curve, 0.3, tokens, sessions))

    hits, *shares = tier_hits(curve, 0.3, hbm, hbm + dram, hbm + dram + nvme, sessions)
    with_nvme = [float(x) for x in shares]
    without = [float(x) for x in tier_hits(curve, 0.3, hbm, hbm + dram, hbm + dram, sessions)[1:]]
    total, fast = hit(hbm + dram + nvme), hit(hbm + dram)
    assert float(hits) == pytest.approx(total) and sum(with_nvme) == pytest.approx(1.0) and sum(without) == pytest.approx(1.0)
    assert with_nvme[0] * total == pytest.approx(hit(hbm))  # HBM: its own capacity's hits
    assert with_nvme[1] * total == pytest.approx(fast - hit(hbm))  # DRAM: what it adds
    assert with_nvme[2] * total == pytest.approx(total - fast)  # NVMe: what it adds on top
    assert [x * total for x in with_nvme[:2]] == pytest.approx([x * fast for x in without[:2]])
    assert without[2] == 0.0 and 0.0 < with_nvme[2] < 0.5


def test_a_prefix_cache_reloads_its_dram_hits_as_fast_with_nvme_behind_them(cat):
    """Through the serving model (numpy twin, one configuration whose prefix cache outgrows HBM and
    DRAM): the reload seconds per request with NVMe present are those without it plus the hits
    NVMe adds, each reloaded over the NVMe path. Byte-share averaging (the model before) charged
    every hit the NVMe-diluted average, so NVMe could make a plan dearer than leaving it unused."""
    import tomllib

    from planner.grid import build_grid, gather, gather_spec
    from planner.model.numpy_reference import twin
    from planner.schema import Scenario
    from tests.support import SCENARIO_TOML

    data = tomllib.loads(SCENARIO_TOML)
    data["workload"].update(arrival_rate_rps=2.0)
    data["workload"]["input_tokens"] = {"median": 60000, "p90": 90000}
    data["workload"]["sessions"] = {"turns": 30, "prefix_reuse": 0.9, "think_time_s": 600.0}
    data.setdefault("search", {}).update(hardware=["h100-sxm"], chips=[2], batch=[16], prefix_cache=[True],
                                         weight_dtype=["fp8"], kv_dtype=["bf16"])
    grid = build_grid(Scenario.model_validate(data), load_catalog())
    hw_, cfg_, valid, idx = gather(grid, np.array([0]))
    spec, draft = gather_spec(grid, idx)
    serving = twin()["serving"]

    def run(nvme_bytes: float) -> dict:
        with np.errstate(all="ignore"):
            out = serving.evaluate_serving(grid.arch, hw_._replace(nvme_bytes=np.full_like(hw_.nvme_bytes, nvme_bytes)),
                                           cfg_, spec, grid.load, draft, valid)
        return {k: float(np.asarray(v).ravel()[0]) for k, v in out.items() if np.size(v) == 1}

    with_nvme, without = run(float(hw_.nvme_bytes[0]) or 4e12), run(0.0)
    assert with_nvme["prefix_hit_rate"] > without["prefix_hit_rate"] + 0.01  # NVMe adds hits here
    per_nvme_byte = 1.0 / min(float(hw_.host_bw[0]), float(hw_.nvme_bw[0]))
    session = float(grid.load.in_mean) + float(grid.load.out_mean)
    kv_token_chip = float(twin()["memory"].kv_elems_per_seq(grid.arch, np.float64(session))) / session \
        * float(cfg_.kv_bytes[0]) * float(twin()["layouts"].kv_share_per_chip(grid.arch, hw_, cfg_)[0])
    added = (with_nvme["prefix_hit_rate"] - without["prefix_hit_rate"]) * kv_token_chip * per_nvme_byte
    assert with_nvme["prefix_hit_rate"] * with_nvme["reload_s_per_token"] == pytest.approx(
        without["prefix_hit_rate"] * without["reload_s_per_token"] + added, rel=1e-3)


def test_stacked_stages_equal_their_separate_evaluations(cat):
    """The decode step and the prefill are evaluated once on stacked inputs (staging.stacked, serving.
    prefill_times) to keep the compiled kernels small: each slice of the result must be what the
    stage gives for that input alone. Checked on an MoE model with speculation (verify and plain
    steps differ) over several batch sizes, contexts and prompt-length tables."""
    from planner.model.serving import prefill_times
    from planner.model.speculative import speculative_step
    from planner.model.staging import stacked, unstacked

    a, h = model_arrays(cat.model("qwen3-30b-a3b")), hw(cat, "h100-sxm")
    c = cfg(chips=2, batch=np.array([[1.0], [8.0], [64.0]]), spec_k=np.array([[0.0, 3.0]]))
    spec, _ = draft_arrays(cat, cat.model("qwen3-30b-a3b"), Speculative(method="eagle3"))
    contexts = (np.float32(2_000.0), np.array([[10_000.0], [60_000.0], [120_000.0]], np.float32))
    both = stacked(contexts, 2)
    step, tokens = jax.jit(lambda x: speculative_step(a, h, c, spec, c.batch, x))(both)
    for i, context in enumerate(contexts):
        alone = jax.jit(lambda x: speculative_step(a, h, c, spec, c.batch, x))(context)
        np.testing.assert_allclose(unstacked(step, both)[i], np.broadcast_to(alone[0], unstacked(step, both)[i].shape), rtol=1e-6)
        np.testing.assert_allclose(unstacked(tokens, both)[i], np.broadcast_to(alone[1], unstacked(tokens, both)[i].shape), rtol=1e-6)

    tables = [(np.linspace(1e3, 1e5, n, dtype=np.float32).reshape(n, 1, 1), np.full((n, 1, 1), r, np.float32))
              for n, r in ((5, 0.0), (7, 30_000.0), (3, 90_000.0))]
    joined = jax.jit(lambda t: prefill_times(a, h, c, t))(tables)
    for (new, cached), seconds in zip(tables, joined, strict=True):
        np.testing.assert_allclose(seconds, np.broadcast_to(prefill_time(a, h, c, new, cached), seconds.shape), rtol=1e-6)
    # a stage that ignores the stacked values gives each entry the same result
    assert [np.asarray(x).tolist() for x in unstacked(np.float32(3.0), both)] == [[[3.0]], [[3.0]]]


def test_a_stage_computed_once_is_traced_once_and_skipped_where_not_run():
    """`staging.computed_once` runs a stage as a branch of a conditional (so XLA stores its results
    once): the stage is traced exactly once (tracing is a cold start's cost), gives its values where
    it runs and zeros of the same types where `when` is false (the search's pruned layouts)."""
    import jax.numpy as jnp

    from planner.model.staging import computed_once

    calls = []

    def kernel(x, when):
        def stage():
            calls.append(1)
            return {"double": 2.0 * x, "count": jnp.sum(x > 1.0).astype(jnp.int32)}

        return computed_once(stage, x, when)

    x = np.array([0.5, 1.5, 2.5], np.float32)
    ran = jax.jit(kernel)(x, True)
    assert len(calls) == 1
    np.testing.assert_array_equal(ran["double"], [1.0, 3.0, 5.0])
    assert int(ran["count"]) == 2
    skipped = jax.jit(kernel)(x, False)  # same types: no second trace
    assert len(calls) == 1
    np.testing.assert_array_equal(skipped["double"], [0.0, 0.0, 0.0])
    assert skipped["count"].dtype == np.int32 and int(skipped["count"]) == 0
