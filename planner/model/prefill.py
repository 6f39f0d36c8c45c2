"""Prefill: compute-bound GEMMs over the new tokens plus causal attention that grows with L^2.

time = max(linear FLOPs / (chips * peak * mfu), weight reads per chunk / bandwidth)
       + attention (FLOPs at the measured kernel efficiency; naive attention adds score-matrix traffic)
       + non-GEMM activation traffic + tensor-parallel collectives
       + fixed per-layer kernel time for every chunk's forward pass (once on dataflow chips).
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.attention import attn_flops_prefill, score_elems_prefill
from planner.model.compute import (
    activation_time,
    dense_gemm_peak,
    fixed_layer_time,
    gemm_peak,
    linear_time,
    linear_work,
    quantisation_overhead,
    quantised_activations,
)
from planner.model.layouts import attention_spread, busiest_rank_skew, collective_time, pipeline_fill
from planner.model.memory import BF16, prefill_chunk_tokens
from planner.model.precision import lm_head_bytes
from planner.model.types import Arch, Config, Hw

NAIVE_SCORE_PASSES = 4.0  # write S, read S (softmax), write P, read P: each an fp16 score matrix
FP8_KV_BYTES = 1.0  # the only 1-byte KV format without per-head scales (int8 carries 2/128 extra)


def prefill_attention_mfu(hw: Hw, cfg: Config) -> jnp.ndarray:
    """Achieved fraction of the BF16 peak in fused prefill attention: engines run it in FP8 when the
    KV cache is FP8 on a chip with FP8 tensor cores (TensorRT-LLM fmha: 853-874 vs 594-610 TFLOP/s
    on H200), in BF16 otherwise."""
    fp8 = (cfg.kv_bytes == FP8_KV_BYTES) & (hw.flops_fp8 > 0)
    return jnp.where(fp8, hw.attn_prefill_mfu_fp8, hw.attn_prefill_mfu)


def prefill_time(a: Arch, hw: Hw, cfg: Config, new: jnp.ndarray, cached: jnp.ndarray,
                 seqs: jnp.ndarray = 1.0, chunk_tokens: jnp.ndarray | None = None) -> jnp.ndarray:
    """Seconds to prefill `seqs` sequences of `new` uncached tokens each, after `cached` tokens.
    `chunk_tokens` caps the tokens per forward pass (an engine's max_num_tokens)."""
    tokens = seqs * new
    # seconds per FLOP and per byte, per chip: computed once per (hardware, chips, dtype), so the
    # per-configuration work below multiplies instead of dividing
    lowp = quantised_activations(hw, cfg)
    mfu = jnp.where(lowp > 0, hw.prefill_mfu_lowp, hw.prefill_mfu)
    per_flop = 1.0 / (cfg.chips * gemm_peak(hw, cfg) * mfu)
    mfu_dense = jnp.where(quantised_activations(hw, cfg, cfg.dense_gemm_sel) > 0, hw.prefill_mfu_lowp, hw.prefill_mfu)
    per_flop_dense = 1.0 / (cfg.chips * dense_gemm_peak(hw, cfg) * mfu_dense)
    per_byte = 1.0 / (cfg.chips * hw.mem_bw * hw.hbm_eff)
    chunk = prefill_chunk_tokens(a, hw, cfg)
    if chunk_tokens is not None:
        chunk = jnp.minimum(chunk, jnp.maximum(chunk_tokens, 1.0))
    # each chunk's routed tokens are spread over the expert-parallel ranks; the busiest one sets the pace
    _, flops = linear_work(a, hw, tokens, cfg.weight_bytes, busiest_rank_skew(a, cfg, jnp.minimum(tokens, chunk)),
                           quant_extra=quantisation_overhead(hw, cfg, lowp))
    flops_linear = flops + 2.0 * a.params_lm_head * seqs  # logits only for the last position
    t_linear = linear_time(a, tokens, flops_linear, per_flop, per_flop_dense)
    chunks = jnp.maximum(jnp.ceil(tokens / chunk), 1.0)
    chunk_bytes, _ = linear_work(a, hw, jnp.minimum(tokens, chunk), cfg.weight_bytes, dense_bytes=cfg.dense_weight_bytes)
    t_weights = chunks * (chunk_bytes + lm_head_bytes(a, cfg)) * per_byte
    t_attn_flops = seqs * attn_flops_prefill(a, new, cached) / (cfg.chips * hw.flops_bf16 * prefill_attention_mfu(hw, cfg))
    t_attn_flops = t_attn_flops * attention_spread(cfg, seqs)
    t_scores = jnp.where(cfg.flash > 0, 0.0, seqs * score_elems_prefill(a, new, cached) * (NAIVE_SCORE_PASSES * BF16 * per_byte))
    t_act = activation_time(a, hw, cfg, tokens, seqs)
    t_comm = collective_time(a, hw, cfg, tokens)
    # a GPU launches every layer's kernels once per chunk; a dataflow pipeline fills once
    passes = jnp.where(hw.sram_only > 0, 1.0, chunks)
    t_fixed = passes * fixed_layer_time(a, hw, cfg)
    # pipeline stages work on a prompt's chunks in turn: the compute fills and drains the pipeline
    t_compute = (jnp.maximum(t_linear, t_weights) + t_attn_flops + t_scores + t_act) * pipeline_fill(cfg, chunks)
    return t_compute + t_comm + t_fixed
