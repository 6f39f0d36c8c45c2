"""Decode step: a roofline per kernel class, run back to back, overlapped with the host's work.

gpu  = max(weight bytes / BW, GEMM FLOPs / peak)          (linear layers)
     + max(KV bytes / BW per tier, attention FLOPs / peak) (attention; tiers stream in parallel)
     + non-GEMM activation traffic + collectives + fixed per-layer kernel time + per-step overhead
step = max(gpu, host time for every running request)
GEMMs and attention are separate kernels, so their times add; within each, the slower of memory
and compute binds. KV that lives in host DRAM or on NVMe crosses the host link every step
(layer-by-layer prefetch overlaps it with the HBM-resident part, hence a max, not a sum).
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.attention import attn_flops_decode, kv_elems_read_decode, score_elems_decode
from planner.model.compute import (
    activation_time,
    dense_gemm_peak,
    fixed_layer_time,
    gemm_peak,
    host_step_time,
    linear_time,
    linear_work,
    quantisation_overhead,
)
from planner.model.layouts import (
    attention_spread,
    busiest_rank_skew,
    collective_time,
    kv_share_per_chip,
    weight_stream_per_chip,
)
from planner.model.memory import BF16
from planner.model.precision import lm_head_bytes
from planner.model.prefill import NAIVE_SCORE_PASSES
from planner.model.types import Arch, Config, Hw


def gemm_time(a: Arch, hw: Hw, cfg: Config, batch, query_tokens) -> jnp.ndarray:
    tokens = batch * query_tokens
    linear_bytes, linear_flops = linear_work(a, hw, tokens, cfg.weight_bytes, busiest_rank_skew(a, cfg, tokens),
                                             dense_bytes=cfg.dense_weight_bytes, quant_extra=quantisation_overhead(hw, cfg))
    w_chip = weight_stream_per_chip(a, cfg, linear_bytes, lm_head_bytes(a, cfg))
    flops = linear_flops + 2.0 * a.params_lm_head * tokens
    t_mem = w_chip / (hw.mem_bw * hw.hbm_eff)
    # the GEMMs a checkpoint keeps wider run at their own peak: exactly 0 s more when alike
    t_flops = linear_time(a, tokens, flops, 1.0 / (cfg.chips * gemm_peak(hw, cfg) * hw.decode_mfu),
                          1.0 / (cfg.chips * dense_gemm_peak(hw, cfg) * hw.decode_mfu))
    return jnp.maximum(t_mem, t_flops)


def decode_attention_efficiency(hw: Hw, cfg: Config) -> jnp.ndarray:
    """Achieved fraction of HBM bandwidth in decode attention: kernels that dequantise an FP8/INT8/INT4
    cache reach less of it (TensorRT-LLM XQA on H200: 4.31 TB/s with BF16 KV, 4.03 with FP8)."""
    return jnp.where(cfg.kv_bytes < BF16, hw.attn_eff_lowp, hw.attn_eff)


def kv_read_time(a: Arch, hw: Hw, cfg: Config, batch, context) -> jnp.ndarray:
    """Time to read what every sequence's decode query reads of its KV, with the tier split of `cfg`."""
    kv_chip = batch * kv_elems_read_decode(a, context) * cfg.kv_bytes * kv_share_per_chip(a, hw, cfg)
    hbm_share = jnp.clip(1.0 - cfg.dram_frac - cfg.nvme_frac, 0.0, 1.0)
    t_hbm = hbm_share * kv_chip / (hw.mem_bw * decode_attention_efficiency(hw, cfg))
    off = (cfg.dram_frac + cfg.nvme_frac) * kv_chip / jnp.maximum(hw.host_bw * hw.host_link_eff, 1.0)
    t_dram = cfg.dram_frac * kv_chip / jnp.maximum(hw.dram_bw, 1.0)
    t_nvme = cfg.nvme_frac * kv_chip / jnp.maximum(hw.nvme_bw, 1.0)
    return jnp.maximum(jnp.maximum(t_hbm, off), jnp.maximum(t_dram, t_nvme))


def attention_time(a: Arch, hw: Hw, cfg: Config, batch, context, query_tokens) -> jnp.ndarray:
    """Decode attention of `batch` sequences. Attention-DP groups hold whole sequences, so with
    fewer sequences than groups the step waits for a group that attends over a whole one while the
    others idle (`attention_spread`): DP attention does not speed up a lone sequence's decode."""
    queries = batch * query_tokens
    t_flops = attn_flops_decode(a, context) * queries / (cfg.chips * hw.flops_bf16 * hw.decode_mfu)
    score_bytes = NAIVE_SCORE_PASSES * BF16 * score_elems_decode(a, context) * queries / cfg.chips
    t_scores = jnp.where(cfg.flash > 0, 0.0, score_bytes / (hw.mem_bw * hw.hbm_eff))
    return (jnp.maximum(kv_read_time(a, hw, cfg, batch, context), t_flops) + t_scores) * attention_spread(cfg, batch)


def device_step_time(a: Arch, hw: Hw, cfg: Config, batch, context, query_tokens=1.0) -> jnp.ndarray:
    """Accelerator time of one decode (or verify) step, without the host's share."""
    tokens = batch * query_tokens
    return (gemm_time(a, hw, cfg, batch, query_tokens)
            + attention_time(a, hw, cfg, batch, context, query_tokens)
            + activation_time(a, hw, cfg, tokens, batch)
            + collective_time(a, hw, cfg, tokens)
            + fixed_layer_time(a, hw, cfg)
            + hw.step_overhead_s)


def decode_step_time(a: Arch, hw: Hw, cfg: Config, batch, context, query_tokens=1.0) -> jnp.ndarray:
    """Seconds for one decode (or speculative verify) step: `batch` sequences at mean `context`,
    each scoring `query_tokens` positions; the host's per-request work overlaps the device's."""
    return jnp.maximum(device_step_time(a, hw, cfg, batch, context, query_tokens), host_step_time(hw, cfg, batch))
