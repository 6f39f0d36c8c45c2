"""The serving physics of cost model v2, one test per mechanism. Each expectation is computed here
from the mechanism's equation (planner/model/README.md), so removing the term fails the test."""

from __future__ import annotations

import numpy as np
import pytest

from planner.catalog import load_catalog
from planner.evaluation import case_from_dict, evaluate_cases
from planner.lowering import config_arrays, hardware_arrays, model_arrays
from planner.model import compute
from planner.model.decode import decode_step_time, kv_read_time
from planner.model.loaded import latency_under_load
from planner.model.offline import evaluate_offline, reload_seconds
from planner.model.prefill import prefill_time
from planner.model.types import Spec

NO_SPEC = Spec(*(np.float32(x) for x in (0.7, 0.7, 1e9, 0.0, 0.0, 0.0, 0.0)))


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def hw(cat, hw_id="h100-sxm", **override):
    h = hardware_arrays([cat.accelerator(hw_id)], cat)
    return h._replace(**{k: np.asarray([v], np.float32) for k, v in override.items()})


def cfg(**kw):
    base = dict(chips=1, batch=1, weight_dtype="fp8", kv_dtype="fp8")
    base.update(kw)
    return config_arrays(**base)


def f(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])


# ------------------------------------------------------------------ host time per request per step

def test_host_time_bounds_the_step_at_large_batch(cat):
    """A step cannot be shorter than the host's work for every running request."""
    a = model_arrays(cat.model("qwen3-30b-a3b"))
    h = hw(cat, "gb200")
    per_req = cat.host_cpus["grace"].us_per_request * 1e-6
    step = f(decode_step_time(a, h, cfg(batch=1536), 1536.0, 1200.0))
    assert step >= 1536 * per_req * (1 - 1e-6)
    # the host's share disappears with the host time: the device alone is faster
    device_only = f(decode_step_time(a, hw(cat, "gb200", host_s_per_req=0.0), cfg(batch=1536), 1536.0, 1200.0))
    assert device_only < step


def test_each_attention_data_parallel_group_schedules_its_own_requests(cat):
    """The host's per-request work is split over the attention-DP groups' schedulers (TensorRT-LLM's
    45 ms at 1,536 requests is per rank): 8 groups of 192 requests take 192 requests' host time."""
    h = hw(cat, "gb200")
    per_req = cat.host_cpus["grace"].us_per_request * 1e-6
    assert f(compute.host_step_time(h, cfg(chips=8, tp=8), 1536.0)) == pytest.approx(1536 * per_req, rel=1e-5)
    assert f(compute.host_step_time(h, cfg(chips=8, tp=1, dp_attn=8), 1536.0)) == pytest.approx(192 * per_req, rel=1e-5)
    # fewer requests than groups: the busiest group's scheduler has a whole one
    assert f(compute.host_step_time(h, cfg(chips=8, tp=1, dp_attn=8), 4.0)) == pytest.approx(per_req, rel=1e-5)


def test_attention_data_parallel_groups_split_the_activation_traffic(cat):
    """Norms, residuals and routed-token permutes of a group's own tokens run on its own chips: the
    same tokens over 8 attention-DP groups take an eighth of one group's activation time per chip."""
    a = model_arrays(cat.model("deepseek-v3"))
    h = hw(cat, "b200")
    one = f(compute.activation_time(a, h, cfg(chips=1, tp=1, ep=1), np.float32(4096.0)))
    eight = f(compute.activation_time(a, h, cfg(chips=8, tp=1, ep=8, dp_attn=8), np.float32(4096.0)))
    assert eight == pytest.approx(one / 8, rel=1e-5)
    assert one > 0
    # one prompt is one group's: its hidden-width passes stay on that group's chips, while the
    # FFN-width and routed-token passes spread over the stage
    h1 = hw(cat, "b200", act_passes=1.0)
    dp = cfg(chips=8, tp=1, ep=8, dp_attn=8)
    lone = f(compute.activation_time(a, h1, dp, np.float32(4096.0), np.float32(1.0)))
    per_token = (f(a.layers) * (f(a.hidden) + f(a.ffn_width_active) / 8)
                 + f(a.moe_layers) * compute.ROUTED_PASSES * f(a.experts_active) * f(a.hidden) / 8) * 2.0
    assert lone == pytest.approx(4096 * per_token / (f(h1.mem_bw) * f(h1.hbm_eff)), rel=1e-5)


def test_small_moe_at_large_batch_runs_slower_on_grace_than_on_x86(cat):
    """GB200 has B200's GPU (same or better); only its Grace host is slower per request."""
    a = model_arrays(cat.model("qwen3-30b-a3b"))
    c = cfg(batch=1536, weight_dtype="fp4")
    gb200 = f(decode_step_time(a, hw(cat, "gb200"), c, 1536.0, 1200.0))
    b200 = f(decode_step_time(a, hw(cat, "b200"), c, 1536.0, 1200.0))
    assert gb200 > b200


# ------------------------------------------------------------------ fixed per-layer kernel latency

def test_fixed_layer_latency_is_paid_per_decode_step(cat):
    a = model_arrays(cat.model("llama-3.1-8b"))
    lat, quant = 20e-6, 3e-6
    with_lat = f(decode_step_time(a, hw(cat, layer_latency_s=lat, quant_layer_latency_s=quant), cfg(), 1.0, 1000.0))
    without = f(decode_step_time(a, hw(cat, layer_latency_s=0.0, quant_layer_latency_s=0.0), cfg(), 1.0, 1000.0))
    assert with_lat - without == pytest.approx(32 * (lat + quant), rel=1e-3)  # 32 layers, FP8 GEMMs quantise
    bf16 = f(decode_step_time(a, hw(cat, layer_latency_s=lat, quant_layer_latency_s=quant),
                              cfg(weight_dtype="bf16"), 1.0, 1000.0))
    bf16_0 = f(decode_step_time(a, hw(cat, layer_latency_s=0.0, quant_layer_latency_s=0.0),
                                cfg(weight_dtype="bf16"), 1.0, 1000.0))
    assert bf16 - bf16_0 == pytest.approx(32 * lat, rel=1e-3)  # no quantisation kernels in BF16


def test_prefill_pays_the_fixed_layer_time_once_per_chunk(cat):
    a = model_arrays(cat.model("llama-3.1-8b"))
    lat = 20e-6
    args = (cfg(kv_dtype="bf16"), 32768.0, 0.0)
    with_lat = f(prefill_time(a, hw(cat, layer_latency_s=lat, quant_layer_latency_s=0.0), *args))
    without = f(prefill_time(a, hw(cat, layer_latency_s=0.0, quant_layer_latency_s=0.0), *args))
    assert with_lat - without == pytest.approx(4 * 32 * lat, rel=1e-3)  # 32,768 tokens = 4 chunks of 8,192


# ------------------------------------------------------------------ all-reduce: latency + bytes / link

def test_allreduce_is_latency_plus_ring_bytes_over_the_link(cat):
    from planner.model import layouts

    a = model_arrays(cat.model("llama-3.1-70b"))
    lat, link, eff = 7e-6, 450e9, 0.8
    h = hw(cat, allreduce_latency_s=lat, link_bw=link, link_eff=eff)
    tokens = 4096.0
    for tp in (2, 4, 8):
        got = f(layouts.collective_time(a, h, cfg(chips=tp), tokens))
        msg = tokens * 8192 * 2  # hidden 8,192, BF16
        expected = 2 * 80 * (lat + msg * 2 * (tp - 1) / tp / (eff * link))
        assert got == pytest.approx(expected, rel=1e-4)
    slower = f(layouts.collective_time(a, hw(cat, allreduce_latency_s=lat, link_bw=link / 2, link_eff=eff),
                                       cfg(chips=8), tokens))
    assert slower > f(layouts.collective_time(a, h, cfg(chips=8), tokens))


# ------------------------------------------------------------------ non-GEMM activation traffic

def test_activation_traffic_counts_hidden_and_ffn_passes(cat):
    a = model_arrays(cat.model("llama-3.1-8b"))
    h = hw(cat, act_passes=10.0, hbm_eff=0.8)
    got = f(compute.activation_time(a, h, cfg(chips=1), 1000.0))
    expected = 1000 * 32 * 10 * (4096 + 14336) * 2 / (3350e9 * 0.8)
    assert got == pytest.approx(expected, rel=1e-4)


def test_moe_routed_tokens_move_data_that_fp4_does_not_shrink(cat):
    a = model_arrays(cat.model("qwen3-30b-a3b"))  # 48 MoE layers, top-8, hidden 2,048
    h = hw(cat, act_passes=0.0, hbm_eff=0.8)
    got = f(compute.activation_time(a, h, cfg(chips=1), 1000.0))
    expected = 1000 * 48 * compute.ROUTED_PASSES * 8 * 2048 * 2 / (3350e9 * 0.8)
    assert got == pytest.approx(expected, rel=1e-4)


def test_fp4_prefill_gains_less_than_its_doubled_peak(cat):
    """Non-GEMM traffic and quantisation kernels do not speed up with FP4 (Amdahl)."""
    a = model_arrays(cat.model("llama-3.3-70b"))
    h = hw(cat, "b200")
    fp8 = f(prefill_time(a, h, cfg(weight_dtype="fp8", kv_dtype="bf16"), 8192.0, 0.0))
    fp4 = f(prefill_time(a, h, cfg(weight_dtype="fp4", kv_dtype="bf16"), 8192.0, 0.0))
    assert 1.0 < fp8 / fp4 < 1.9
    bare = hw(cat, "b200", act_passes=0.0, quant_layer_latency_s=0.0)
    ratio_bare = (f(prefill_time(a, bare, cfg(weight_dtype="fp8", kv_dtype="bf16"), 8192.0, 0.0))
                  / f(prefill_time(a, bare, cfg(weight_dtype="fp4", kv_dtype="bf16"), 8192.0, 0.0)))
    assert ratio_bare > fp8 / fp4


# ------------------------------------------------------------------ attention kernels at measured efficiency

def test_prefill_attention_runs_in_fp8_with_an_fp8_cache(cat):
    a = model_arrays(cat.model("llama-3.1-8b"))
    h = hw(cat, attn_prefill_mfu=0.6, attn_prefill_mfu_fp8=0.9)
    n = 65536.0
    attn_bf16 = f(prefill_time(a, h, cfg(kv_dtype="bf16"), n, 0.0)) - f(
        prefill_time(a, h._replace(attn_prefill_mfu=np.asarray([1e9], np.float32)), cfg(kv_dtype="bf16"), n, 0.0))
    pairs = n * n / 2  # causal attention without a cache: T^2 / 2 (query, key) pairs
    assert attn_bf16 == pytest.approx(pairs * 4 * 32 * 128 * 32 / (989e12 * 0.6), rel=1e-3)
    fp8 = f(prefill_time(a, h, cfg(kv_dtype="fp8"), n, 0.0))
    bf16 = f(prefill_time(a, h, cfg(kv_dtype="bf16"), n, 0.0))
    assert bf16 - fp8 == pytest.approx(attn_bf16 * (1 - 0.6 / 0.9), rel=1e-3)


def test_decode_attention_reads_a_quantised_cache_at_lower_efficiency(cat):
    a = model_arrays(cat.model("llama-3.1-8b"))
    h = hw(cat, attn_eff=0.9, attn_eff_lowp=0.7)
    bf16 = f(kv_read_time(a, h, cfg(kv_dtype="bf16"), 64.0, 65536.0))
    fp8 = f(kv_read_time(a, h, cfg(kv_dtype="fp8"), 64.0, 65536.0))
    assert bf16 == pytest.approx(64 * 65536 * 131072 / (3350e9 * 0.9), rel=1e-4)
    assert fp8 / bf16 == pytest.approx(0.5 * 0.9 / 0.7, rel=1e-4)  # half the bytes, 70/90 of the bandwidth


# ------------------------------------------------------------------ MoE expert GEMMs

def test_narrow_experts_cost_more_per_flop_than_wide_ones(cat):
    h = hw(cat, moe_eff=0.8, expert_width_knee=256.0)
    narrow = f(compute.expert_gemm_scale(model_arrays(cat.model("qwen3-30b-a3b")), h))  # 768 wide
    wide = f(compute.expert_gemm_scale(model_arrays(cat.model("mixtral-8x7b")), h))  # 14,336 wide
    assert narrow == pytest.approx(1 / (0.8 * 768 / (768 + 256)), rel=1e-5)
    assert wide == pytest.approx(1 / (0.8 * 14336 / (14336 + 256)), rel=1e-5)
    assert narrow > wide


def test_expert_gemms_on_quantised_activations_pay_an_overhead_their_faster_peak_does_not_shorten(cat):
    """W8A8 / W4A4 expert GEMMs cost 1/moe_eff + overhead x (their peak / BF16 peak) BF16-peak FLOP
    times per FLOP of their own peak (Amdahl); weight-only and BF16 ones 1/moe_eff. The overhead is
    arithmetic on the routed tokens: the experts' weight bytes keep the BF16 multiplier."""
    h = hw(cat, moe_eff=0.8, moe_quant_overhead=0.4, expert_width_knee=0.0)
    a = model_arrays(cat.model("qwen3-30b-a3b"))
    assert f(compute.expert_gemm_scale(a, h)) == pytest.approx(1 / 0.8, rel=1e-6)
    assert f(compute.expert_gemm_scale(a, h, np.float32(0.4 * 2))) == pytest.approx(1 / 0.8 + 0.4 * 2, rel=1e-6)
    tokens = np.float32(64.0)
    bf16_bytes, bf16_flops = compute.linear_work(a, h, tokens, np.float32(1.0))
    low_bytes, low_flops = compute.linear_work(a, h, tokens, np.float32(1.0), quant_extra=np.float32(0.4 * 4))
    dense = f(a.params_dense)
    ratio = (1 / 0.8 + 1.6) / (1 / 0.8)
    assert f(low_bytes) == pytest.approx(f(bf16_bytes), rel=1e-6)
    assert f(low_flops) - 2 * 64 * dense == pytest.approx(ratio * (f(bf16_flops) - 2 * 64 * dense), rel=1e-5)


def test_fp4_and_8_bit_experts_pay_their_own_quantisation_overhead(cat):
    """The overhead is the family's for the GEMMs' precision, times their peak over BF16's: FP4
    (W4A4) experts `moe_quant_overhead_fp4`, FP8 and INT8 (W8A8) ones `moe_quant_overhead`; none
    for BF16 or weight-only GEMMs."""
    h = hw(cat, "b200", moe_quant_overhead=0.1, moe_quant_overhead_fp4=0.7)
    speedup = {d: f(compute.quantised_speedup(h, cfg(weight_dtype=d))) for d in ("fp8", "fp4")}
    assert f(compute.quantisation_overhead(h, cfg(weight_dtype="fp8"))) == pytest.approx(0.1 * speedup["fp8"], rel=1e-6)
    assert f(compute.quantisation_overhead(h, cfg(weight_dtype="fp4"))) == pytest.approx(0.7 * speedup["fp4"], rel=1e-6)
    assert f(compute.quantisation_overhead(h, cfg(weight_dtype="bf16"))) == 0.0
    assert f(compute.quantisation_overhead(h, cfg(weight_dtype="int4"))) == 0.0


def test_a_family_that_sets_one_quantisation_overhead_prices_fp4_experts_with_it(cat):
    """`moe_quant_overhead_fp4` unset falls back to the 8-bit value (a family fitted on one precision
    prices the other alike); Blackwell sets only the FP4 one, fitted to FP4 DeepSeek-V3 runs, and its
    FP8 experts take Hopper's (prior_from), fitted to Hopper's FP8 MoE runs."""
    fams = cat.calibration
    assert fams["blackwell"].moe_quant_overhead_fp4 > 0
    assert fams["blackwell"].moe_quant_overhead == fams["hopper"].moe_quant_overhead
    h = hw(cat, "b200")
    assert f(h.moe_quant_overhead_fp4) == pytest.approx(fams["blackwell"].moe_quant_overhead_fp4)
    assert f(hw(cat, "h200-sxm").moe_quant_overhead_fp4) == pytest.approx(fams["hopper"].moe_quant_overhead)


def test_quantised_speedup_is_the_gemm_peak_over_bf16_where_activations_are_quantised(cat):
    h = hw(cat, "b200")
    bf16, fp8, fp4 = (float(getattr(cat.accelerator("b200"), k)) for k in ("bf16_tflops", "fp8_tflops", "fp4_tflops"))
    assert f(compute.quantised_speedup(h, cfg(weight_dtype="fp8"))) == pytest.approx(fp8 / bf16, rel=1e-6)
    assert f(compute.quantised_speedup(h, cfg(weight_dtype="fp4"))) == pytest.approx(fp4 / bf16, rel=1e-6)
    assert f(compute.quantised_speedup(h, cfg(weight_dtype="bf16"))) == 0.0
    assert f(compute.quantised_speedup(h, cfg(weight_dtype="int4"))) == 0.0  # weight-only: BF16 GEMMs


@pytest.mark.parametrize("model", ["gpt-oss-120b", "qwen3-235b-a22b", "deepseek-v3"])
@pytest.mark.parametrize("hardware", ["b200", "gb200", "h200-sxm", "mi300x"])
def test_fp8_experts_are_never_slower_than_bf16_ones(cat, model, hardware):
    """FP8 halves the expert bytes and doubles the tensor cores' peak: a W8A8 MoE decode step (at
    batches where experts stream their weights, and at 2,048 sequences, where they compute) and a
    32k-token prefill (compute-bound) are not slower than BF16 ones. One low-precision efficiency
    fitted to FP4 experts made Blackwell's FP8 experts slower than its BF16 ones; then the FP4-fitted
    overhead, shared, priced compute-bound FP8 experts on a B200 below BF16 ones."""
    a = model_arrays(cat.model(model))
    h = hw(cat, hardware)
    for batch in (8.0, 128.0, 2048.0):
        c = dict(chips=8, tp=8, batch=batch, kv_dtype="fp8")
        bf16 = f(decode_step_time(a, h, cfg(weight_dtype="bf16", **c), batch, 4096.0))
        fp8 = f(decode_step_time(a, h, cfg(weight_dtype="fp8", **c), batch, 4096.0))
        assert fp8 < bf16 or (batch == 2048.0 and fp8 == bf16), batch  # there, host time may bind both
    c = dict(chips=8, tp=8, kv_dtype="bf16")
    bf16 = f(prefill_time(a, h, cfg(weight_dtype="bf16", **c), 32768.0, 0.0))
    fp8 = f(prefill_time(a, h, cfg(weight_dtype="fp8", **c), 32768.0, 0.0))
    assert fp8 < bf16


@pytest.mark.parametrize("model", ["qwen3-235b-a22b", "deepseek-v3"])
def test_a_b200_serves_fp8_experts_offline_faster_than_an_h200(cat, model):
    """2.25x the FP8 peak and 1.7x the bandwidth: eight B200s serve an FP8 MoE offline (1000/1000,
    as many sequences as fit) faster than eight H200s, and faster than their own BF16 experts (the
    shared FP4-fitted overhead made them slower: Qwen3-235B-A22B at 28.1k tok/s against the H200s'
    29.9k and their own BF16's 31.4k)."""
    raw = {"model": model, "chips": 8, "batch": "max", "input": 1000, "output": 1000, "kv_dtype": "bf16"}
    h200, b200, b200_bf16 = evaluate_cases([case_from_dict({**raw, "hardware": "h200-sxm", "weight_dtype": "fp8"}, "h"),
                                            case_from_dict({**raw, "hardware": "b200", "weight_dtype": "fp8"}, "b"),
                                            case_from_dict({**raw, "hardware": "b200", "weight_dtype": "bf16"}, "bb")],
                                           cat)
    assert b200["throughput_tok_s"] > 1.2 * h200["throughput_tok_s"]
    assert b200["throughput_tok_s"] > b200_bf16["throughput_tok_s"]


@pytest.mark.parametrize("model", ["gpt-oss-120b", "qwen3-30b-a3b", "deepseek-v3"])
def test_more_bandwidth_and_flops_decode_a_moe_faster(cat, model):
    """A B200 has more HBM bandwidth than an H200 and more FLOPs at every precision; an H200 has more
    bandwidth than an H100. From 32 to 512 sequences (neither launch latency nor the host binds) each
    decodes a MoE model faster than the next: with 64-row expert tiles and the FP4-fitted quantisation
    overhead on weight bytes, a B200 was slower than an H200 in 42 of 90 such configurations."""
    a = model_arrays(cat.model(model))
    for dtype, chips, batch in [(d, c, b) for d in ("int4", "fp8") for c in (2, 8) for b in (32.0, 512.0)]:
        c = cfg(chips=chips, tp=chips, batch=batch, weight_dtype=dtype)
        h100, h200, b200 = (f(decode_step_time(a, hw(cat, h), c, batch, 4096.0)) for h in ("h100-sxm", "h200-sxm", "b200"))
        assert b200 < h200 < h100, (dtype, chips, batch, b200, h200, h100)


def test_every_touched_expert_computes_at_least_one_tile(cat):
    a = model_arrays(cat.model("qwen3-30b-a3b"))  # 128 experts, top-8
    h = hw(cat, moe_eff=1.0, expert_width_knee=0.0)
    _, flops = compute.linear_work(a, h, np.float32(1.0), np.float32(1.0))
    touched = 8.0  # one token touches its 8 experts, each padded to a full tile
    dense = f(a.params_dense)
    assert f(flops) == pytest.approx(2 * (dense + touched * compute.EXPERT_TILE_M * f(a.params_expert)), rel=1e-4)


# ------------------------------------------------------------------ the replies a running batch holds

def test_the_decode_step_reads_the_kv_of_the_replies_in_flight(cat):
    """A running batch holds long replies in proportion to their length, so its sequences are on
    average E[in] + E[o^2] / (2 E[o]) tokens long (lengths.running_output), not E[in] + E[o] / 2: the
    serving screen's median decode step is priced at that context. Reasoning replies (median 8,000,
    p90 20,000) put a running sequence 7,550 tokens into its reply, not 5,020."""
    from planner.lengths import lognormal_mean, running_output
    from planner.model.serving import memory_and_decode
    from planner.model.types import Load

    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat, "h100-sxm")
    c = cfg(batch=64, weight_dtype="bf16")
    sigma = float(np.log(20000.0 / 8000.0) / 1.2815515655446004)
    out_mean, running = lognormal_mean(8000.0, sigma, 32768.0), running_output(8000.0, sigma, 32768.0)
    ld = Load(**{n: np.float32(0.0) for n in Load._fields})._replace(
        in_median=np.float32(2000.0), in_cap=np.float32(131072.0), in_mean=np.float32(2000.0),
        out_median=np.float32(8000.0), out_sigma=np.float32(sigma), out_cap=np.float32(32768.0),
        out_mean=np.float32(out_mean), out_running=np.float32(running), hbm_fraction=np.float32(0.9))
    step50 = f(memory_and_decode(a, h, c, NO_SPEC, ld, 0.0)["step50"])
    assert step50 == pytest.approx(f(decode_step_time(a, h, c, 64.0, 2000.0 + running)), rel=1e-5)
    assert step50 > 1.05 * f(decode_step_time(a, h, c, 64.0, 2000.0 + out_mean / 2.0))


# ------------------------------------------------------------------ offline benchmark semantics

def _offline(cat, model="llama-3.1-8b", hw_id="h100-sxm", **kw):
    a, h = model_arrays(cat.model(model)), hw(cat, hw_id)
    return {k: f(v) for k, v in evaluate_offline(a, h, cfg(batch=0), NO_SPEC, 1000.0, 1000.0, 0.9, **kw).items()}


def test_engine_limits_and_finite_runs_cap_the_batch(cat):
    free = _offline(cat)
    assert free["batch"] > 100
    assert _offline(cat, max_batch=64.0)["batch"] == 64
    assert _offline(cat, max_num_tokens=32.0)["batch"] == 32
    assert _offline(cat, requests=10.0)["batch"] == 10
    assert _offline(cat, requests=10.0)["throughput_tok_s"] < free["throughput_tok_s"]


def test_max_num_tokens_splits_prefill_into_more_passes(cat):
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat)
    whole = f(prefill_time(a, h, cfg(), 8192.0, 0.0))
    split = f(prefill_time(a, h, cfg(), 8192.0, 0.0, chunk_tokens=512.0))
    assert split > whole


# ------------------------------------------------------------------ prefix reused from a tier

def test_cached_prefix_reload_is_bytes_over_the_host_link(cat):
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat, host_link_eff=0.75)
    got = f(reload_seconds(a, h, cfg(kv_dtype="bf16"), 100000.0, 1.0))
    assert got == pytest.approx(100000 * 131072 / (64e9 * 0.75), rel=1e-4)  # 128 KiB/token over PCIe Gen5
    assert f(reload_seconds(a, h, cfg(kv_dtype="bf16"), 100000.0, 0.0)) == 0.0  # already in HBM


def test_a_reload_is_no_faster_than_the_host_memory_behind_the_link(cat):
    """GB200: 450 GB/s of NVLink-C2C at 0.7 is 315 GB/s, but the Grace LPDDR5X behind it gives each
    GPU 250 GB/s (the catalog's dram_bw), which bounds the copy."""
    a, h = model_arrays(cat.model("llama-3.1-8b")), hw(cat, "gb200", host_link_eff=0.7)
    assert float(h.dram_bw[0]) == pytest.approx(250e9) and float(h.host_bw[0]) == pytest.approx(450e9)
    got = f(reload_seconds(a, h, cfg(kv_dtype="bf16"), 100000.0, 1.0))
    assert got == pytest.approx(100000 * 131072 / 250e9, rel=1e-4)


@pytest.mark.parametrize(("hw_id", "dram_rate", "nvme_rate"), [
    ("h100-sxm", 64e9 * 0.675, 13e9),  # PCIe Gen5 x16 at the fitted 0.675; the drives bound NVMe
    ("gb200", 250e9, 13e9),  # C2C at 0.7 = 315 GB/s; the LPDDR5X's 250 GB/s per GPU binds
])
def test_the_search_charges_a_cache_hit_what_eval_charges_its_reload(cat, hw_id, dram_rate, nvme_rate):
    """The screen's reload per cached byte (serving.py, disagg.py) is the rate `offline.reload_seconds`
    charges one request (planner eval, the simulator): the host link at its fitted DMA efficiency,
    no faster than the tier. The screen had taken the link's peak: 1.48x faster on Hopper."""
    from planner.model.tiers import reload_seconds_per_byte

    h = hw(cat, hw_id)
    assert float(h.host_link_eff[0]) == pytest.approx(0.675 if hw_id == "h100-sxm" else 0.7)
    args = (h.host_bw[0], h.host_link_eff[0], h.dram_bw[0], h.nvme_bw[0])
    assert f(reload_seconds_per_byte(0.0, 1.0, 0.0, *args)) == pytest.approx(1.0 / dram_rate, rel=1e-5)
    assert f(reload_seconds_per_byte(0.0, 0.0, 1.0, *args)) == pytest.approx(1.0 / nvme_rate, rel=1e-5)
    assert f(reload_seconds_per_byte(1.0, 0.0, 0.0, *args)) == 0.0  # HBM hits cost nothing
    a = model_arrays(cat.model("llama-3.1-8b"))
    for tier, rate in ((1.0, dram_rate), (2.0, nvme_rate)):
        assert f(reload_seconds(a, h, cfg(kv_dtype="bf16"), 100000.0, tier)) == pytest.approx(
            100000 * 131072 / rate, rel=1e-4)


def test_eval_ttft_with_a_dram_hit_is_far_below_recompute(cat):
    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "batch": 1, "input": 100000,
           "output": 1, "weight_dtype": "bf16", "kv_dtype": "bf16"}
    miss, dram, hbm = evaluate_cases([case_from_dict(raw, "miss"),
                                      case_from_dict({**raw, "cached_tokens": 100000, "cache_tier": "dram"}, "d"),
                                      case_from_dict({**raw, "cached_tokens": 100000, "cache_tier": "hbm"}, "h")],
                                     cat)
    assert hbm["ttft_s"] < dram["ttft_s"] < miss["ttft_s"] / 10


# ------------------------------------------------------------------ latency under a Poisson load

def test_latency_under_load_follows_mm1_and_stalls_decode():
    prefill, step = 0.05, 0.02
    ttft, ttft99, tpot, _, rho = (f(x) for x in latency_under_load(prefill, step, 1.0, 10.0))
    assert rho == pytest.approx(0.5)
    assert ttft == pytest.approx(0.5 / 0.5 * prefill + prefill + 1.5 * step, rel=1e-5)
    assert tpot == pytest.approx(step / 0.5, rel=1e-5)
    assert ttft99 > ttft
    assert not np.isfinite(f(latency_under_load(prefill, step, 1.0, 25.0)[0]))  # rho > 1: saturated


def test_a_scheduler_that_admits_every_n_steps_makes_a_new_request_wait_half_an_interval():
    """A request arriving at a random moment meets the residual of the admission interval: N / 2
    steps on average, 0.99 N at the 99th percentile (one step apart for N = 1); TPOT is untouched."""
    prefill, step = 0.05, 0.02
    every = [tuple(f(x) for x in latency_under_load(prefill, step, 1.0, 10.0, 1.0, 0.0, n)) for n in (1.0, 10.0)]
    (ttft1, ttft99_1, tpot1, _, rho1), (ttft10, ttft99_10, tpot10, _, rho10) = every
    assert ttft10 - ttft1 == pytest.approx(4.5 * step, rel=1e-4)
    assert ttft99_10 - ttft99_1 == pytest.approx(0.99 * 9 * step, rel=1e-4)
    assert (tpot10, rho10) == pytest.approx((tpot1, rho1))


def test_eval_under_load_waits_for_the_families_admission_interval(cat):
    """The same MI300X Server case with the family's interval and with admission at every step: the
    mean TTFT differs by (N - 1) / 2 of the case's decode steps and the p99 by 0.99 (N - 1) of them
    (a step is at most TPOT x tokens per step: decode also stalls for prefills); TPOT does not move."""
    import dataclasses

    raw = {"hardware": "mi300x", "model": "llama-2-70b", "chips": 8, "batch": 3560, "arrival_rps": 81.68,
           "input": 222, "output": 301, "weight_dtype": "fp8", "kv_dtype": "fp8"}
    fam = cat.calibration["cdna3"]
    assert fam.admission_interval_steps > 1.0
    every_step = dataclasses.replace(cat, calibration={**cat.calibration,
                                                       "cdna3": fam.model_copy(update={"admission_interval_steps": 1.0})})
    (slow,) = evaluate_cases([case_from_dict(raw, "a")], cat)
    (fast,) = evaluate_cases([case_from_dict(raw, "a")], every_step)
    mean_extra, tail_extra = slow["ttft_s"] - fast["ttft_s"], slow["ttft_p99_s"] - fast["ttft_p99_s"]
    assert slow["tpot_s"] == pytest.approx(fast["tpot_s"], rel=1e-6)
    assert tail_extra / mean_extra == pytest.approx(0.99 / 0.5, rel=1e-3)
    assert 0 < mean_extra <= (fam.admission_interval_steps - 1.0) / 2.0 * slow["tpot_s"] * slow["tokens_per_step"]


def test_a_first_token_that_waits_for_a_decode_step_adds_that_step_to_ttft_alone(cat):
    """Neuron's engines stream the first token after their first token-generation step
    (`first_token_steps`): a batch-1 case's TTFT is the prefill plus that many decode steps (TPOT x
    tokens per step), offline and under load; TPOT and throughput do not move. Zero adds exactly 0."""
    import dataclasses

    fam = cat.calibration["neuron"]
    assert fam.first_token_steps == 1.0
    raw = {"hardware": "inferentia2", "model": "llama-2-70b", "chips": 12, "batch": 1, "input": 128,
           "output": 1024, "weight_dtype": "bf16", "kv_dtype": "bf16"}

    def with_steps(n):
        return dataclasses.replace(cat, calibration={**cat.calibration, "neuron": fam.model_copy(update={"first_token_steps": n})})

    (offline,) = evaluate_cases([case_from_dict(raw, "a")], cat)
    step = offline["tpot_s"] * offline["tokens_per_step"]  # batch 1 decode step (a fixed batch under load too)
    for case in (raw, {**raw, "arrival_rps": 2.0}):
        rows = [evaluate_cases([case_from_dict(case, "a")], with_steps(n))[0] for n in (0.0, 1.0, 2.0)]
        for n, row in zip((1.0, 2.0), rows[1:], strict=True):
            assert row["ttft_s"] - rows[0]["ttft_s"] == pytest.approx(n * step, rel=1e-4)
            assert row["tpot_s"] == pytest.approx(rows[0]["tpot_s"], rel=1e-6)
            assert row["throughput_tok_s"] == pytest.approx(rows[0]["throughput_tok_s"], rel=1e-6)


def test_no_first_token_steps_add_nothing_even_to_an_infinite_step():
    """The delay is written so that 0 steps add exactly 0 (0 x inf would be NaN, and a NaN TTFT would
    change which plan is the closest miss)."""
    from planner.model.serving import first_token_delay

    class _Hw:
        first_token_steps = np.float32(0.0)

    with np.errstate(invalid="ignore"):  # numpy evaluates both branches, as XLA does
        assert f(first_token_delay(_Hw(), np.float32(np.inf))) == 0.0
    _Hw.first_token_steps = np.float32(1.0)
    assert f(first_token_delay(_Hw(), np.float32(0.03))) == pytest.approx(0.03)


def test_erlang_c_gives_the_textbook_waiting_probabilities():
    """M/M/c: one server waits with probability rho; c = 2, a = 1: 1/3; c = 10, a = 8: 0.4092
    (Erlang C tables); at or beyond a = c every arrival waits."""
    from planner.model.queueing import erlang_c

    assert f(erlang_c(1.0, 0.7)) == pytest.approx(0.7, rel=1e-5)
    assert f(erlang_c(2.0, 1.0)) == pytest.approx(1.0 / 3.0, rel=1e-5)
    assert f(erlang_c(10.0, 8.0)) == pytest.approx(0.40918, rel=1e-3)
    assert f(erlang_c(16.0, 16.0)) == 1.0 and f(erlang_c(16.0, 20.0)) == 1.0


def test_a_request_waits_for_a_decode_slot_when_the_engine_runs_out_of_them(cat):
    """The same load on the same system with 8 slots (max_batch, i.e. max_num_seqs) instead of
    hundreds: each request holds a slot from its first prefill chunk through its last token, and
    with 8 slots at ~90 % busy the M/M/c wait (Erlang C x hold / (c - a)) adds to TTFT, not TPOT.
    Past 8 busy slots the queue grows without bound: no fit, and the reason names max_batch."""
    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "input": 2000, "output": 2000,
           "weight_dtype": "fp8", "kv_dtype": "fp8", "batch": 8}
    open_rows = evaluate_cases([case_from_dict({**raw, "arrival_rps": 0.2}, "open")], cat)[0]
    hold = open_rows["slot_utilisation"] * open_rows["slots"] / 0.2
    rate = 0.9 * 8 / hold  # 90 % of 8 slots busy
    wide, narrow, over = evaluate_cases(
        [case_from_dict({**raw, "arrival_rps": rate}, "wide"),
         case_from_dict({**raw, "arrival_rps": rate, "max_batch": 8}, "narrow"),
         case_from_dict({**raw, "arrival_rps": rate * 1.2, "max_batch": 8}, "over")], cat)
    assert wide["slots"] > 100 and narrow["slots"] == 8
    assert narrow["slot_utilisation"] == pytest.approx(0.9, rel=0.02)
    assert narrow["tpot_s"] == pytest.approx(wide["tpot_s"], rel=1e-6)
    # Erlang C for c = 8 at the offered load the row reports, by its own recursion
    load = narrow["slot_utilisation"] * 8
    hold_at_rate = load / rate  # decode is a little slower at this load than at 0.2 requests/s
    b = 1.0
    for k in range(1, 9):
        b = load * b / (k + load * b)
    wait_prob = b / (1 - load / 8 * (1 - b))
    expected = wait_prob * hold_at_rate / (8 - load)
    assert narrow["ttft_s"] - wide["ttft_s"] == pytest.approx(expected, rel=0.03)
    assert narrow["ttft_p99_s"] > wide["ttft_p99_s"] + expected
    assert not over["fits"] and over["ttft_s"] is None and "max_batch" in over["reason"]


def test_under_a_load_batch_max_runs_the_sequences_the_load_keeps_in_flight(cat):
    """With `batch = "max"` and a Poisson load, the engine runs what the load keeps in flight
    (Little's law: arrival x slot holding time), not every sequence that fits: the answer is the
    fixed point, so pinning the batch it reports gives the same TPOT, and pricing every step at the
    full slot count (the pinned memory maximum) is slower."""
    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "input": 2000, "output": 2000,
           "weight_dtype": "fp8", "kv_dtype": "fp8", "arrival_rps": 3.0, "replicas": 1, "batch": "max"}
    free = evaluate_cases([case_from_dict(raw, "free")], cat)[0]
    assert 10 < free["batch"] < free["slots"] / 2  # the load, not the memory, sets it
    assert free["batch"] == pytest.approx(free["slot_utilisation"] * free["slots"], abs=1.0)  # Little's law
    pinned, full = evaluate_cases([case_from_dict({**raw, "batch": free["batch"]}, "pinned"),
                                   case_from_dict({**raw, "batch": free["slots"]}, "full")], cat)
    assert pinned["tpot_s"] == pytest.approx(free["tpot_s"], rel=0.02)
    assert full["tpot_s"] > 1.1 * free["tpot_s"]


def test_a_chunked_prompt_rides_in_as_many_decode_steps_and_holds_the_queue_for_them():
    """A prompt split into 13 chunks waits the running step's residual, then 13 mixed steps (the
    last emits its token): zero-load TTFT = prefill + 13.5 steps, tail prefill + 13.99 steps. The
    prefill queue's server is held for prefill + 12.2 steps (tokens / budget): at 0.5 requests/s
    its utilisation is 0.5 x (0.5 + 12.2 x 0.02) = 0.372, and 1.9 requests/s (prefill alone 0.95)
    saturate it."""
    prefill, step = 0.5, 0.02
    ttft, ttft99, _, _, rho = (f(x) for x in latency_under_load(prefill, step, 1.0, 1e-9, 13.0, 12.2))
    assert ttft == pytest.approx(prefill + 13.5 * step, rel=1e-5)
    assert ttft99 == pytest.approx(prefill + 13.99 * step, rel=1e-4)
    assert f(latency_under_load(prefill, step, 1.0, 0.5, 13.0, 12.2)[4]) == pytest.approx(0.5 * (0.5 + 12.2 * 0.02))
    assert not np.isfinite(f(latency_under_load(prefill, step, 1.0, 1.9, 13.0, 12.2)[0]))  # 1.9 x 0.744 > 1


def test_a_long_prompt_joining_a_running_batch_waits_one_step_per_chunk(cat):
    """Closed loop at concurrency 8, Llama 3.1 8B on one H100: each step carries 8 decode tokens, so
    a prompt gets 8,192 - 8 = 8,184 tokens per step. 100,000 tokens take ceil(12.2) = 13 steps: TTFT =
    a lone prefill + (0.5 + 13) steps. An 8,000-token prompt fits one step: + 1.5 steps."""
    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "output": 100,
           "weight_dtype": "fp8", "kv_dtype": "fp8"}
    rows = evaluate_cases([case_from_dict({**raw, "input": n, "batch": b}, f"{n}-{b}")
                           for n in (100_000, 8_000) for b in (1, 8)], cat)
    long_alone, long_joined, short_alone, short_joined = rows
    assert long_joined["fits"]
    assert long_joined["ttft_s"] == pytest.approx(long_alone["ttft_s"] + 13.5 * long_joined["tpot_s"], rel=1e-4)
    assert short_joined["ttft_s"] == pytest.approx(short_alone["ttft_s"] + 1.5 * short_joined["tpot_s"], rel=1e-4)


def test_a_finite_closed_loop_run_opens_with_a_wave_of_queued_prefills(cat):
    """`vllm bench serve --max-concurrency 64` with 3,000 prompts all ready: the first 64 arrive at
    once and prefill one after another (the i-th waits i - 1 prefills, (64 - 1) / 2 on average);
    the rest arrive singly. The run's mean TTFT grows by 64 / 3000 x 63 / 2 prefills, the prefill
    being a lone request's TTFT. A run no longer than the concurrency is all wave."""
    from planner.model.loaded import first_wave_wait

    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "input": 1000, "output": 1000,
           "weight_dtype": "bf16", "kv_dtype": "bf16"}
    alone, endless, finite = evaluate_cases([case_from_dict({**raw, "batch": 1}, "a"),
                                             case_from_dict({**raw, "batch": 64}, "b"),
                                             case_from_dict({**raw, "batch": 64, "requests": 3000}, "c")], cat)
    assert finite["ttft_s"] - endless["ttft_s"] == pytest.approx(64 / 3000 * 63 / 2 * alone["ttft_s"], rel=1e-3)
    assert finite["tpot_s"] == pytest.approx(endless["tpot_s"])  # the wave is a TTFT effect only
    assert f(first_wave_wait(0.1, 10.0, 10.0)) == pytest.approx(0.45)  # 10 prompts at once: 4.5 prefills
    assert f(first_wave_wait(0.1, 64.0, np.inf)) == 0.0


def test_eval_under_load_reports_mean_and_tail(cat):
    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "batch": 64, "input": 2000,
           "output": 200, "weight_dtype": "fp8", "kv_dtype": "fp8"}
    light, heavy = evaluate_cases([case_from_dict({**raw, "arrival_rps": 1.0}, "a"),
                                   case_from_dict({**raw, "arrival_rps": 8.0}, "b")], cat)
    assert light["ttft_s"] < heavy["ttft_s"] and light["tpot_s"] < heavy["tpot_s"]
    assert heavy["ttft_p99_s"] > heavy["ttft_s"]


def test_eval_beyond_the_load_a_system_can_serve_says_so(cat):
    """A Poisson load that saturates prefill has no steady-state latency: no TTFT/TPOT, `fits` false
    with a reason naming the load, and the throughput the system's capacity (what it delivers while
    its queue grows), the same as without the load."""
    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "batch": 64, "input": 2000,
           "output": 200, "weight_dtype": "fp8", "kv_dtype": "fp8"}
    closed, flooded = evaluate_cases([case_from_dict(raw, "a"), case_from_dict({**raw, "arrival_rps": 500.0}, "b")], cat)
    assert closed["fits"] and not flooded["fits"]
    assert flooded["prefill_utilisation"] > 1.0 and "arrival_rps = 500 saturates prefill" in flooded["reason"]
    assert flooded["ttft_s"] is None and flooded["tpot_s"] is None and flooded["ttft_p99_s"] is None
    assert flooded["throughput_tok_s"] == pytest.approx(closed["throughput_tok_s"])


# ------------------------------------------------------------------ eval: layouts and unresolved cases

def test_eval_runs_replicas_inside_the_chip_count(cat):
    raw = {"hardware": "mi300x", "model": "llama-2-70b", "chips": 8, "batch": "max", "input": 222,
           "output": 300, "weight_dtype": "fp8", "kv_dtype": "fp8"}
    best, tp8 = evaluate_cases([case_from_dict(raw, "best"), case_from_dict({**raw, "replicas": 1}, "tp8")], cat)
    assert tp8["replicas"] == 1 and tp8["chips_per_replica"] == 8
    assert best["replicas"] > 1 and best["throughput_tok_s"] >= tp8["throughput_tok_s"]


def test_a_case_with_an_unknown_id_gets_a_row_not_a_crash(cat):
    good = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "batch": 1, "input": 100, "output": 10}
    rows = evaluate_cases([case_from_dict(good, "a", catalog=cat, lenient_ids=True),
                           case_from_dict({**good, "hardware": "h1000"}, "b", catalog=cat, lenient_ids=True)], cat)
    assert rows[0]["fits"] and rows[0]["ttft_s"] > 0
    assert not rows[1]["fits"] and "h1000" in rows[1]["reason"] and rows[1]["ttft_s"] is None


# ------------------------------------------------------------------ uncertainty bands and risk

def test_eval_rows_carry_bands_from_the_family_residuals(cat):
    from planner.uncertainty import band_for

    raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "batch": 8, "input": 1000, "output": 100}
    fitted, prior = evaluate_cases([case_from_dict(raw, "a"), case_from_dict({**raw, "hardware": "mi355x"}, "b")], cat)
    band = band_for("hopper")
    assert band.calibrated and band.low < 1.0 < band.high
    assert fitted["calibration"] == "fitted" and prior["calibration"] == "uncalibrated"
    first, steady = band.of("ttft_s"), band.of("throughput_tok_s")
    assert fitted["ttft_s_low"] == pytest.approx(fitted["ttft_s"] * first.low)
    assert fitted["ttft_s_high"] == pytest.approx(fitted["ttft_s"] * first.high)
    # a rate's band is the inverse of the time band of its class
    assert fitted["throughput_tok_s_low"] == pytest.approx(fitted["throughput_tok_s"] / steady.high)
    assert fitted["tpot_s_high"] == pytest.approx(fitted["tpot_s"] * band.of("tpot_s").high)
    # families on priors carry the widest band seen out of sample
    wide = band_for("cdna4")
    assert not wide.calibrated and wide.high >= band.high and wide.low <= band.low


def test_a_metric_takes_its_class_band_where_the_family_has_enough_cases_of_it(cat):
    """Held-out residuals: ten TPOT/throughput cases within 5 %, three TTFTs under load 2x slow (a
    scheduler policy). The decode metrics get the tight band; the TTFT class has too few cases for a
    band of its own and takes the family's band over all thirteen, as the bill does."""
    from planner.fidelity import Measurement, band_table
    from planner.uncertainty import Band, add_bands

    def case(metric, err):
        raw = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "metric": metric, "measured": 1.0, "source": "s"}
        return Measurement("chips", 0, raw, "hopper", None), err

    rows = [case("tpot_s" if i % 2 else "throughput_tok_s", (-0.05 + 0.01 * i) * (1 if i % 2 else -1))
            for i in range(10)] + [case("ttft_s", -0.5) for _ in range(3)]
    per_family, uncalibrated = band_table([m for m, _ in rows], {id(m): e for m, e in rows}, cat)
    hopper = per_family["hopper"]
    assert hopper["decode"][2] == 10 and hopper["decode"][1] <= 1.06 and hopper["decode"][0] >= 0.94
    assert hopper["first_token"][:2] == hopper["all"][:2] and hopper["all"][1] == pytest.approx(2.0)
    assert uncalibrated["decode"][1] <= 1.06 and uncalibrated["all"][1] == pytest.approx(2.0)

    band = Band(0.8, 2.0, True, 13, (("first_token", 0.8, 2.0), ("decode", 0.95, 1.05)))
    row = add_bands({"ttft_s": 1.0, "tpot_s": 0.01, "throughput_tok_s": 100.0}, band)
    assert (row["ttft_s_low"], row["ttft_s_high"]) == pytest.approx((0.8, 2.0))
    assert (row["tpot_s_low"], row["tpot_s_high"]) == pytest.approx((0.0095, 0.0105))
    assert (row["throughput_tok_s_low"], row["throughput_tok_s_high"]) == pytest.approx((100 / 1.05, 100 / 0.95))


def test_risk_p90_scales_every_time_by_the_band_edge(cat):
    """Dividing rates and multiplying latencies by s scales each time of the model exactly by s."""
    from planner.lowering import hardware_row, scaled_times
    from planner.model.types import Hw

    acc = cat.accelerator("h100-sxm")
    row = hardware_row(acc, cat)
    central = Hw(**{k: np.asarray([v], np.float32) for k, v in row.items()})
    pessimistic = Hw(**{k: np.asarray([v], np.float32) for k, v in scaled_times(row, 1.25).items()})
    a = model_arrays(cat.model("llama-3.1-70b"))
    c = cfg(chips=2, batch=32)
    assert f(decode_step_time(a, pessimistic, c, 32.0, 8000.0)) == pytest.approx(
        1.25 * f(decode_step_time(a, central, c, 32.0, 8000.0)), rel=1e-4)
    assert f(prefill_time(a, pessimistic, c, 8000.0, 0.0)) == pytest.approx(
        1.25 * f(prefill_time(a, central, c, 8000.0, 0.0)), rel=1e-4)


def test_planning_on_the_pessimistic_edge_never_lowers_the_bill(cat):
    from planner import io, paths
    from planner.schema import Scenario
    from planner.search import solve

    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = {"hardware": ["h100-sxm", "mi300x"], "chips": [1, 2, 4], "batch": [1, 8, 64],
                      "dram_fraction": [0.0], "nvme_fraction": [0.0]}
    central = solve(io.validate(Scenario, data, "central"), cat)
    data["search"]["risk"] = "p90"
    risky = solve(io.validate(Scenario, data, "p90"), cat)
    assert central.best is not None and risky.best is not None
    assert risky.best["monthly_usd"] >= central.best["monthly_usd"]
    assert central.best["monthly_usd_low"] <= central.best["monthly_usd"] <= central.best["monthly_usd_high"]
