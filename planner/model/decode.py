"""Decode step: a roofline per kernel class, run back to back.

step = max(weight bytes / BW, GEMM FLOPs / peak)          (linear layers)
     + max(KV bytes / BW per tier, attention FLOPs / peak) (attention; tiers stream in parallel)
     + collectives + per-step overhead.
GEMMs and attention are separate kernels, so their times add; within each, the slower of memory
and compute binds. KV that lives in host DRAM or on NVMe crosses the host link every step
(layer-by-layer prefetch overlaps it with the HBM-resident part, hence a max, not a sum).
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.compute import collective_time, gemm_peak, linear_work
from planner.model.memory import BF16, kv_elems_per_seq, kv_share_per_chip, layout
from planner.model.prefill import NAIVE_SCORE_PASSES
from planner.model.types import Arch, Config, Hw


def gemm_time(a: Arch, hw: Hw, cfg: Config, batch, query_tokens) -> jnp.ndarray:
    tokens = batch * query_tokens
    tp, _ = layout(hw, cfg, a)
    # with pipeline stages every micro-batch re-reads its stage's weights, so a chip streams W/tp
    linear_bytes, linear_flops = linear_work(a, hw, tokens, cfg.weight_bytes)
    w_chip = (linear_bytes + a.params_lm_head * BF16) / tp
    flops = linear_flops + 2.0 * a.params_lm_head * tokens
    t_mem = w_chip / (hw.mem_bw * hw.hbm_eff)
    t_flops = flops / (cfg.chips * gemm_peak(hw, cfg) * hw.decode_mfu)
    return jnp.maximum(t_mem, t_flops)


def kv_read_time(a: Arch, hw: Hw, cfg: Config, batch, context) -> jnp.ndarray:
    """Time to stream every sequence's KV once, with the tier split of `cfg`."""
    kv_chip = batch * kv_elems_per_seq(a, context) * cfg.kv_bytes * kv_share_per_chip(a, hw, cfg)
    hbm_share = jnp.clip(1.0 - cfg.dram_frac - cfg.nvme_frac, 0.0, 1.0)
    t_hbm = hbm_share * kv_chip / (hw.mem_bw * hw.attn_eff)
    off = (cfg.dram_frac + cfg.nvme_frac) * kv_chip / jnp.maximum(hw.host_bw, 1.0)
    t_dram = cfg.dram_frac * kv_chip / jnp.maximum(hw.dram_bw, 1.0)
    t_nvme = cfg.nvme_frac * kv_chip / jnp.maximum(hw.nvme_bw, 1.0)
    return jnp.maximum(jnp.maximum(t_hbm, off), jnp.maximum(t_dram, t_nvme))


def attention_time(a: Arch, hw: Hw, cfg: Config, batch, context, query_tokens) -> jnp.ndarray:
    eff_ctx = (1.0 - a.attn_window_frac) * context + a.attn_window_frac * jnp.minimum(context, a.window)
    pairs = batch * query_tokens * eff_ctx
    t_flops = a.attn_flops_decode * pairs / (cfg.chips * hw.flops_bf16 * hw.decode_mfu)
    score_bytes = NAIVE_SCORE_PASSES * BF16 * a.q_heads_per_layer_total * pairs / cfg.chips
    t_scores = jnp.where(cfg.flash > 0, 0.0, score_bytes / (hw.mem_bw * hw.hbm_eff))
    return jnp.maximum(kv_read_time(a, hw, cfg, batch, context), t_flops) + t_scores


def decode_step_time(a: Arch, hw: Hw, cfg: Config, batch, context, query_tokens=1.0) -> jnp.ndarray:
    """Seconds for one decode (or speculative verify) step: `batch` sequences at mean `context`,
    each scoring `query_tokens` positions."""
    return (gemm_time(a, hw, cfg, batch, query_tokens)
            + attention_time(a, hw, cfg, batch, context, query_tokens)
            + collective_time(a, hw, cfg, batch * query_tokens)
            + a.layers * hw.layer_latency_s
            + hw.step_overhead_s)
