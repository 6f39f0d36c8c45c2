"""Speculative decoding (Leviathan et al., ICML 2023), for every drafter kind.

With per-token acceptance alpha and lookahead k, a verify step yields E = (1 - alpha^(k+1)) / (1 - alpha)
tokens. Acceptance is a function of context: a tabulated curve from published measurements
(`curve_ctx`, `curve_alpha`: linear between points, flat outside), or the scenario's own
alpha(c) = a_long + (a_short - a_long) * exp(-c / c0) (a zero table adds nothing to it).
Cost per step: one target step scoring k+1 positions per sequence (its physics makes gains shrink
with batch: the verify turns compute-bound), plus k drafter steps, whichever the drafter is:
- a draft model, an EAGLE-3 head or an MTP layer: its own weights (MoE layers: the experts a
  batch touches) and its own KV streamed once per draft token (`draft_step_time`);
- self-speculation: the target itself attending to a compressed KV of `draft_context` tokens;
- n-gram / suffix matching: no device work, `host_draft_s` per drafted token on the host.
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.compute import busiest_group_requests, host_step_time
from planner.model.decode import device_step_time
from planner.model.memory import BF16
from planner.model.staging import computed_once, stacked, unstacked
from planner.model.types import Arch, Config, Hw, Spec

CURVE_POINTS = 10  # tabulated acceptance points per method (padded by repeating the last one)


def acceptance(spec: Spec, context) -> jnp.ndarray:
    """Per-token acceptance at `context` tokens: the scenario's exponential plus the tabulated curve
    (exactly one of the two is non-zero for a configured drafter)."""
    parametric = spec.alpha_long + (spec.alpha_short - spec.alpha_long) * jnp.exp(-context / spec.alpha_context)
    x, y = spec.curve_ctx, spec.curve_alpha
    if jnp.ndim(x) == 0:  # a Spec without a table (static shape: decided at trace time)
        return parametric
    c = jnp.asarray(context)[..., None]
    rise = jnp.clip((c - x[..., :-1]) / jnp.maximum(x[..., 1:] - x[..., :-1], 1.0), 0.0, 1.0)
    return parametric + y[..., 0] + jnp.sum((y[..., 1:] - y[..., :-1]) * rise, axis=-1)


def tokens_per_step(alpha, k) -> jnp.ndarray:
    """Expected tokens emitted per verify step, including the bonus token; 1 when k = 0."""
    alpha = jnp.clip(alpha, 1e-6, 1.0 - 1e-6)
    return (1.0 - jnp.power(alpha, k + 1.0)) / (1.0 - alpha)


def draft_step_time(hw: Hw, cfg: Config, spec: Spec, batch, context) -> jnp.ndarray:
    """One step of a separate drafter (draft model, EAGLE-3 head, MTP layer) on the same chips: its
    weights and KV streamed once. BF16 weights (`draft_params`), weights at the target's dtype
    (an MTP layer shipped in the checkpoint) and the target's LM head at its own (`draft_head_params`,
    `Config.head_weight_bytes`); a MoE layer streams the experts the batch touches
    (uniform routing, as for the target). Draft steps run inside the target's iteration, so they
    pay collective latency but not the scheduler overhead. Zero for drafters without device work."""
    experts = jnp.maximum(spec.draft_experts, 1.0)
    touched = spec.draft_experts * (1.0 - jnp.power(1.0 - spec.draft_topk / experts, batch))
    weights = (spec.draft_params * BF16 + spec.draft_head_params * cfg.head_weight_bytes
               + (spec.draft_params_target + touched * spec.draft_expert_params) * cfg.weight_bytes) / cfg.chips
    kv = batch * spec.draft_kv_elems * jnp.minimum(context, spec.draft_context) * cfg.kv_bytes / cfg.chips
    t_mem = (weights + kv) / (hw.mem_bw * hw.hbm_eff)
    active = spec.draft_params + spec.draft_head_params + spec.draft_params_target + spec.draft_topk * spec.draft_expert_params
    t_flops = 2.0 * active * batch / (cfg.chips * hw.flops_bf16 * hw.decode_mfu)
    latency = jnp.where(cfg.chips > 1, 2.0 * spec.draft_layers * hw.collective_latency_s, 0.0)
    return jnp.maximum(t_mem, t_flops) + latency + spec.draft_layers * hw.layer_latency_s


def speculative_step(a: Arch, hw: Hw, cfg: Config, spec: Spec, batch, context):
    """(seconds per step, tokens per sequence per step) at mean `context`."""
    k = cfg.spec_k
    # one plain step serves k = 0 and, at the compressed context, self-speculation's draft step;
    # it and the verify step are one evaluation of the step, stacked
    plain_ctx = jnp.where(spec.self_draft > 0, jnp.minimum(context, spec.draft_context), context)
    ndim = max(jnp.ndim(x) for x in (*hw, *cfg, batch, context))  # the stacking axis leads every input's axes
    contexts = stacked((context, plain_ctx), ndim)
    queries = stacked((k + 1.0, jnp.ones_like(k)), ndim)
    steps = computed_once(lambda: device_step_time(a, hw, cfg, batch, contexts, query_tokens=queries), hw.mem_bw)
    verify, plain = unstacked(steps, contexts)
    drafter = jnp.where(spec.self_draft > 0, plain - hw.step_overhead_s,
                        jnp.where(spec.mtp_cost_fraction > 0, spec.mtp_cost_fraction * plain,
                                  draft_step_time(hw, cfg, spec, batch, context)))
    # the host's per-request work (and n-gram/suffix drafting) overlaps the device's whole iteration;
    # each attention-DP group's scheduler drafts for its own requests
    host = host_step_time(hw, cfg, batch) + jnp.where(k > 0, busiest_group_requests(cfg, batch) * k * spec.host_draft_s, 0.0)
    step = jnp.maximum(jnp.where(k > 0, verify + k * drafter, plain), host)
    tokens = jnp.where(k > 0, tokens_per_step(acceptance(spec, context), k), 1.0)
    return step, tokens
