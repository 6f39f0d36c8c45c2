"""Shared roofline pieces: peak FLOPs by precision, MoE expert GEMMs, non-GEMM activation traffic,
fixed per-layer kernel time, host time per step (collectives: layouts.py)."""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.layouts import attention_spread
from planner.model.memory import BF16, layout
from planner.model.precision import wider_extra_bytes
from planner.model.types import Arch, Config, Hw

EXPERT_TILE_M = 16.0
"""Rows of one grouped-GEMM tile: an expert that receives fewer tokens than this still pays for a
full tile. Decode kernels are tuned to short tiles: of the tuned fused-MoE configurations for
H100, H200, B200 and GB200 with 64-512 experts in the vLLM 0.19.1 wheel
(vllm/model_executor/layers/fused_moe/configs/*.json), 66-75 of 83-87 use BLOCK_SIZE_M = 16 for
1-128 tokens in the batch (29 of 87 at 512; 64-128 take over from 1,024 tokens, where every expert
has more rows than a tile); untuned shapes start at 16 (`get_default_config`). The 64 rows of a
Hopper wgmma tile, charged before, made a 128-expert model's decode at batch 128 compute 16x its
routed rows and run compute-bound."""
ROUTED_PASSES = 4.0
"""16-bit passes over hidden x k per routed token and MoE layer: permute (write + read of k copies)
and combine (read k expert outputs, write one): data movement that low-precision weights do not shrink."""


def gemm_peak(hw: Hw, cfg: Config) -> jnp.ndarray:
    """Dense peak the linear layers run at: W8A8 FP8/INT8 and W4A4 FP4 use their tensor cores;
    weight-only formats (int4, or FP8 on a chip without FP8) dequantise into BF16 GEMMs. What low
    precision does not speed up (activation quantisation, norms, SwiGLU) is costed separately by
    `activation_time` and `quant_layer_latency_s`, not by scaling the peak."""
    return peak_of(hw, cfg.gemm_flops_sel)


def dense_gemm_peak(hw: Hw, cfg: Config) -> jnp.ndarray:
    """The peak of the GEMMs a checkpoint keeps wider (`Config.dense_gemm_sel`, `Arch.params_wider`;
    the same as `gemm_peak` unless it does: Kimi-K2.6's BF16 attention beside NVFP4 experts)."""
    return peak_of(hw, cfg.dense_gemm_sel)


def peak_of(hw: Hw, sel) -> jnp.ndarray:
    peak = jnp.where(sel == 1, hw.flops_fp8, jnp.where(sel == 2, hw.flops_int8,
                     jnp.where(sel == 3, hw.flops_fp4, hw.flops_bf16)))
    return jnp.where(peak > 0, peak, hw.flops_bf16)


def quantised_activations(hw: Hw, cfg: Config, sel=None) -> jnp.ndarray:
    """1.0 where the GEMMs (of `sel`, default the config's) run on quantised activations (W8A8 /
    W4A4 on native tensor cores): every GEMM input is quantised by an extra kernel first."""
    sel = cfg.gemm_flops_sel if sel is None else sel
    native = jnp.where(sel == 1, hw.flops_fp8, jnp.where(sel == 2, hw.flops_int8,
                       jnp.where(sel == 3, hw.flops_fp4, 0.0)))
    return jnp.where((sel > 0) & (native > 0), 1.0, 0.0)


def quantised_speedup(hw: Hw, cfg: Config, quantised=None) -> jnp.ndarray:
    """The GEMMs' peak over the BF16 peak where they run on quantised activations (2 for FP8, 4 for
    FP4 on a B200), 0 where they do not: what the quantisation overhead is scaled by.
    `quantised`: `quantised_activations(hw, cfg)` where the caller has it."""
    quantised = quantised_activations(hw, cfg) if quantised is None else quantised
    return quantised * gemm_peak(hw, cfg) / jnp.maximum(hw.flops_bf16, 1.0)


def quantisation_overhead(hw: Hw, cfg: Config, quantised=None) -> jnp.ndarray:
    """What grouped expert GEMMs on quantised activations add per FLOP, in BF16-kernel times (see
    `expert_gemm_scale`): the family's overhead for the GEMMs' precision (`moe_quant_overhead_fp4`
    for W4A4 FP4, `moe_quant_overhead` for 8 bits) x `quantised_speedup`. Apart, because they are
    measured apart: Blackwell's fitted overhead comes from FP4 DeepSeek-V3 runs only, and priced
    FP8 experts on a B200 below its BF16 ones (and below an H200's FP8 ones) when it was shared."""
    overhead = jnp.where(cfg.gemm_flops_sel == 3, hw.moe_quant_overhead_fp4, hw.moe_quant_overhead)
    return overhead * quantised_speedup(hw, cfg, quantised)


def without_experts(a: Arch) -> Arch:
    """A dense model's arch with its (zero) MoE fields as Python constants: traced code then drops
    the expert terms when it is traced instead of computing zeros per configuration (the routing
    power costs ~7 % of a dense model's grid search on CPU). Only for models with no experts."""
    return a._replace(experts_routed=0.0, experts_active=0.0, params_expert=0.0, moe_layers=0.0, expert_width=0.0)


def _has_no_experts(a: Arch) -> bool:
    return isinstance(a.experts_routed, float) and a.experts_routed == 0.0


def experts_touched(a: Arch, tokens: jnp.ndarray) -> jnp.ndarray:
    """Expected distinct routed experts hit per MoE layer by `tokens` tokens (uniform routing):
    E * (1 - (1 - k/E)^tokens). One token touches k; a large batch touches all E."""
    e = jnp.maximum(a.experts_routed, 1.0)
    miss = jnp.power(jnp.clip(1.0 - a.experts_active / e, 0.0, 1.0), tokens)
    return jnp.where(a.experts_routed > 0, e * (1.0 - miss), 0.0)


def expert_gemm_scale(a: Arch, hw: Hw, quant_extra=0.0) -> jnp.ndarray:
    """Cost multiplier of grouped expert GEMMs relative to dense GEMMs of the same FLOPs and bytes:
    (1 / moe_eff + overhead x speedup) / (w / (w + knee)), `quant_extra` = overhead x speedup.
    Narrow experts (w = 768) have short inner loops, so the fixed per-tile work weighs more than for
    wide ones (w = 14,336): a 128-expert model with narrow experts must not be costed at a
    wide-expert model's efficiency. On quantised
    activations (`speedup` = `quantised_speedup`: the low-precision peak over the BF16 one, 0 for
    BF16 and weight-only GEMMs) part of the kernel's work is not shortened by the faster tensor
    cores (quantising each routed token, block scales): the overhead (`quantisation_overhead`: one
    value for 8-bit experts, one for FP4), in units of the BF16 kernel's time, costs `speedup`
    times as much against the faster peak (an Amdahl split). That work is arithmetic on the tokens, so
    `linear_work` scales the FLOPs by it and the weight bytes by the `speedup = 0` multiplier (with
    the bytes scaled too, a B200 decoded gpt-oss-120b's FP8 experts slower than an H200: 30.3 vs
    24.5 ms a step, 2 chips, batch 128)."""
    width = a.expert_width / jnp.maximum(a.expert_width + hw.expert_width_knee, 1.0)
    return (1.0 / hw.moe_eff + quant_extra) / jnp.maximum(width, 1e-3)


def linear_work(a: Arch, hw: Hw, tokens: jnp.ndarray, weight_bytes: jnp.ndarray, expert_skew=1.0,
                dense_bytes=None, quant_extra=0.0):
    """(bytes, FLOPs) of the quantised linear layers for a step over `tokens` tokens, in
    dense-GEMM-equivalent units. Expert GEMMs are scaled by `expert_gemm_scale` (the bytes without
    the quantisation overhead, which is arithmetic), and every touched expert computes at least one
    full tile of rows (`EXPERT_TILE_M`: tile quantisation at few tokens per expert).
    `expert_skew` (layouts.busiest_rank_skew) scales the expert FLOPs to the busiest expert-parallel
    rank's, which the step waits for; weight reads are per rank and are not skewed. The
    matrices a checkpoint keeps wider (`Arch.params_wider`) are read at `dense_bytes` per weight
    (`Config.dense_weight_bytes`; default `weight_bytes`). `quant_extra`: `quantisation_overhead`."""
    wider = wider_extra_bytes(a, weight_bytes, dense_bytes)
    if _has_no_experts(a):  # see without_experts
        return a.params_dense * weight_bytes + wider, 2.0 * tokens * a.params_dense
    scale = expert_gemm_scale(a, hw, quant_extra)
    touched = experts_touched(a, tokens)
    streamed = expert_gemm_scale(a, hw)  # the quantisation overhead is arithmetic, not weight traffic
    touched_bytes = (a.params_dense + touched * a.params_expert * streamed) * weight_bytes + wider
    routed_rows = tokens * a.experts_active  # (token, expert) pairs per MoE layer
    padded_rows = jnp.maximum(routed_rows, touched * EXPERT_TILE_M)
    flops = 2.0 * (tokens * a.params_dense + padded_rows * a.params_expert * scale * expert_skew)
    return touched_bytes, flops


def linear_time(a: Arch, tokens, flops, per_flop, per_flop_dense) -> jnp.ndarray:
    """Seconds of `flops` linear FLOPs (`linear_work`'s, plus any LM head) over `tokens` tokens at
    `per_flop` (seconds per FLOP of the whole instance), the share of the GEMMs a checkpoint keeps
    wider (2 x tokens x params_wider) at their own `per_flop_dense` (written so that alike speeds add
    exactly 0)."""
    return flops * per_flop + 2.0 * tokens * a.params_wider * (per_flop_dense - per_flop)


def activation_time(a: Arch, hw: Hw, cfg: Config, tokens: jnp.ndarray, seqs=None) -> jnp.ndarray:
    """Seconds of non-GEMM, memory-bound kernels for `tokens` tokens on one chip: norms, RoPE,
    residual adds, SwiGLU and activation (de)quantisation stream 16-bit activations `act_passes`
    times over (hidden + active FFN width) per layer, plus the routed-token permute/combine of MoE
    layers. Unlike weight bytes, this does not shrink with weight precision, which is why FP4 GEMMs
    deliver less than their doubled peak. Hidden-width work is replicated on tensor-parallel ranks
    and done by the attention data-parallel group that holds the token's sequence (`seqs` sequences:
    with fewer than the groups, the busiest group has a whole one, `layouts.attention_spread`);
    FFN-width and routed-token work is spread over the stage's tp x dp_attention chips; pipeline
    stages split the layers."""
    tp, pp = layout(hw, cfg, a)
    spread = 1.0 if seqs is None else attention_spread(cfg, seqs)
    per_token = (a.layers * hw.act_passes * (a.hidden * spread + a.ffn_width_active / tp)
                 + a.moe_layers * ROUTED_PASSES * a.experts_active * a.hidden / tp) * BF16
    return tokens * per_token / (pp * cfg.dp_attn * hw.mem_bw * hw.hbm_eff)


def fixed_layer_time(a: Arch, hw: Hw, cfg: Config) -> jnp.ndarray:
    """Seconds per forward pass that neither bandwidth nor FLOPs explain: each layer's kernels have a
    launch cost and a minimum duration (GPUs), quantised GEMMs add a quantisation kernel per GEMM, MoE
    layers add routing, permutation and grouped-GEMM kernels;
    on dataflow chips a token crosses each layer's chips in turn."""
    return (a.layers * (hw.layer_latency_s + hw.quant_layer_latency_s * quantised_activations(hw, cfg))
            + a.moe_layers * hw.moe_layer_latency_s)


def host_step_time(hw: Hw, cfg: Config, batch: jnp.ndarray) -> jnp.ndarray:
    """Host CPU time of one engine step: scheduling, sampling, detokenisation and input preparation
    for every running request (TensorRT-LLM PR #10273: ~45 ms per iteration at 1,536 requests per
    rank on GB200; issue #13957: ~580 us at 64 requests on B200). Overlapping schedulers hide it
    behind the GPU's step, so a step lasts the larger of the two. Each attention data-parallel group
    runs its own scheduler over its own requests (SGLang's DP-attention workers, vLLM's engine core
    per DP rank, TensorRT-LLM's executor per attention-DP rank), so the host work is split over them;
    the step waits for the busiest (a whole request while some groups have none)."""
    return busiest_group_requests(cfg, batch) * hw.host_s_per_req


def busiest_group_requests(cfg: Config, batch: jnp.ndarray) -> jnp.ndarray:
    """Running requests of the busiest attention data-parallel group (its scheduler's share of the
    host work): batch / dp_attention, or one while there are fewer requests than groups."""
    return batch / cfg.dp_attn * attention_spread(cfg, batch)
