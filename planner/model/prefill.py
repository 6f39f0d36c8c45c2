"""Prefill: compute-bound GEMMs over the new tokens plus causal attention that grows with L^2.

time = max(linear FLOPs / (chips * peak * mfu), weight reads per chunk / bandwidth)
       + attention (FLOPs at BF16 peak; naive attention adds score-matrix HBM traffic)
       + tensor-parallel collectives + one pass through the layers' latency (dataflow chips).
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.compute import collective_time, gemm_peak, linear_work
from planner.model.memory import BF16, prefill_chunk_tokens
from planner.model.types import Arch, Config, Hw

NAIVE_SCORE_PASSES = 4.0  # write S, read S (softmax), write P, read P: each an fp16 score matrix


def attention_pairs(a: Arch, new: jnp.ndarray, cached: jnp.ndarray) -> jnp.ndarray:
    """(query, key) pairs of causal attention for `new` tokens after `cached` ones, averaged over
    full and sliding-window layers: full layers see T^2/2 + T*cached, windowed at most T*window."""
    full = new * (0.5 * new + cached)
    windowed = new * jnp.minimum(cached + 0.5 * new, a.window)
    return (1.0 - a.attn_window_frac) * full + a.attn_window_frac * windowed


def prefill_time(a: Arch, hw: Hw, cfg: Config, new: jnp.ndarray, cached: jnp.ndarray,
                 seqs: jnp.ndarray = 1.0) -> jnp.ndarray:
    """Seconds to prefill `seqs` sequences of `new` uncached tokens each, after `cached` tokens."""
    tokens = seqs * new
    # seconds per FLOP and per byte, per chip: computed once per (hardware, chips, dtype), so the
    # per-configuration work below multiplies instead of dividing
    per_flop = 1.0 / (cfg.chips * gemm_peak(hw, cfg) * hw.prefill_mfu)
    per_byte = 1.0 / (cfg.chips * hw.mem_bw * hw.hbm_eff)
    _, flops = linear_work(a, hw, tokens, cfg.weight_bytes)
    flops_linear = flops + 2.0 * a.params_lm_head * seqs  # logits only for the last position
    t_linear = flops_linear * per_flop
    chunk = prefill_chunk_tokens(a, hw, cfg)
    chunks = jnp.maximum(jnp.ceil(tokens / chunk), 1.0)
    chunk_bytes, _ = linear_work(a, hw, jnp.minimum(tokens, chunk), cfg.weight_bytes)
    t_weights = chunks * (chunk_bytes + a.params_lm_head * BF16) * per_byte
    pairs = seqs * attention_pairs(a, new, cached)
    t_attn_flops = pairs * (a.attn_flops_prefill / (cfg.chips * hw.flops_bf16 * hw.attn_prefill_mfu))
    t_scores = jnp.where(cfg.flash > 0, 0.0, pairs * (NAIVE_SCORE_PASSES * BF16 * a.q_heads_per_layer_total * per_byte))
    t_comm = collective_time(a, hw, cfg, tokens)
    t_pipeline = a.layers * hw.layer_latency_s  # the first token's way through every layer
    return jnp.maximum(t_linear, t_weights) + t_attn_flops + t_scores + t_comm + t_pipeline
