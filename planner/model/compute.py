"""Shared roofline pieces: peak FLOPs by precision, MoE expert coverage, tensor-parallel collectives."""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.memory import BF16, layout
from planner.model.types import Arch, Config, Hw

SCALE_OUT_BW = 50e9  # bytes/s per chip between domains: one NDR 400G NIC per GPU (reference: [R:hugo])


def gemm_peak(hw: Hw, cfg: Config) -> jnp.ndarray:
    """Dense peak the linear layers run at: W8A8 FP8/INT8 and W4A4 FP4 use their tensor cores;
    weight-only formats (int4, or FP8 on a chip without FP8) dequantise into BF16 GEMMs.
    FP4 realises only `fp4_scale` of its doubled peak (calibrated per family)."""
    sel = cfg.gemm_flops_sel
    peak = jnp.where(sel == 1, hw.flops_fp8, jnp.where(sel == 2, hw.flops_int8,
                     jnp.where(sel == 3, hw.flops_fp4, hw.flops_bf16)))
    native = peak > 0
    achieved = jnp.where((sel == 3) & native, peak * hw.fp4_scale, peak)
    return jnp.where(native, achieved, hw.flops_bf16)


def without_experts(a: Arch) -> Arch:
    """A dense model's arch with its (zero) MoE fields as Python constants: traced code then drops
    the expert terms when it is traced instead of computing zeros per configuration (the routing
    power costs ~7 % of a dense model's grid search on CPU). Only for models with no experts."""
    return a._replace(experts_routed=0.0, experts_active=0.0, params_expert=0.0)


def _has_no_experts(a: Arch) -> bool:
    return isinstance(a.experts_routed, float) and a.experts_routed == 0.0


def experts_touched(a: Arch, tokens: jnp.ndarray) -> jnp.ndarray:
    """Expected distinct routed experts hit per MoE layer by `tokens` tokens (uniform routing):
    E * (1 - (1 - k/E)^tokens). One token touches k; a large batch touches all E."""
    e = jnp.maximum(a.experts_routed, 1.0)
    miss = jnp.power(jnp.clip(1.0 - a.experts_active / e, 0.0, 1.0), tokens)
    return jnp.where(a.experts_routed > 0, e * (1.0 - miss), 0.0)


def linear_work(a: Arch, hw: Hw, tokens: jnp.ndarray, weight_bytes: jnp.ndarray):
    """(bytes, FLOPs) of the quantised linear layers for a step over `tokens` tokens, in
    dense-GEMM-equivalent units: expert GEMMs are grouped, small-M kernels that reach only
    `moe_eff` of a dense GEMM's efficiency, so their bytes and FLOPs are scaled by 1 / moe_eff."""
    if _has_no_experts(a):  # see without_experts
        return a.params_dense * weight_bytes, 2.0 * tokens * a.params_dense
    expert_scale = 1.0 / hw.moe_eff
    touched_bytes = (a.params_dense + experts_touched(a, tokens) * a.params_expert * expert_scale) * weight_bytes
    flops = 2.0 * tokens * (a.params_dense + a.experts_active * a.params_expert * expert_scale)
    return touched_bytes, flops


def collective_time(a: Arch, hw: Hw, cfg: Config, tokens: jnp.ndarray) -> jnp.ndarray:
    """Two ring all-reduces of the hidden state per layer over the scale-up link (tp > 1), plus one
    point-to-point hop per pipeline boundary over the scale-out network (pp > 1)."""
    tp, pp = layout(hw, cfg, a)
    msg = tokens * a.hidden * BF16
    ring = msg * (2.0 * (tp - 1.0) / tp / jnp.maximum(hw.link_bw, 1.0))
    allreduce = jnp.where(tp > 1, 2.0 * a.layers * (hw.collective_latency_s + ring), 0.0)
    hop_bw = jnp.minimum(jnp.maximum(hw.link_bw, 1.0), SCALE_OUT_BW)
    hops = (pp - 1.0) * (hw.collective_latency_s + msg * (1.0 / hop_bw))
    return allreduce + hops
