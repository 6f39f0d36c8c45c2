"""Speculative decoding (Leviathan et al., ICML 2023).

With per-token acceptance alpha and lookahead k, a verify step yields E = (1 - alpha^(k+1)) / (1 - alpha)
tokens. Acceptance falls with context: alpha(c) = a_long + (a_short - a_long) * exp(-c / c0).
Cost per step: one target step scoring k+1 positions per sequence, plus k draft steps (a small
model, own weights and KV) or k MTP/EAGLE head steps at a fixed fraction of a target step.
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.compute import host_step_time
from planner.model.decode import device_step_time
from planner.model.memory import BF16
from planner.model.types import Arch, Config, Hw, Spec


def acceptance(spec: Spec, context) -> jnp.ndarray:
    return spec.alpha_long + (spec.alpha_short - spec.alpha_long) * jnp.exp(-context / spec.alpha_context)


def tokens_per_step(alpha, k) -> jnp.ndarray:
    """Expected tokens emitted per verify step, including the bonus token; 1 when k = 0."""
    alpha = jnp.clip(alpha, 1e-6, 1.0 - 1e-6)
    return (1.0 - jnp.power(alpha, k + 1.0)) / (1.0 - alpha)


def draft_step_time(hw: Hw, cfg: Config, spec: Spec, batch, context) -> jnp.ndarray:
    """One step of the draft model on the same chips: its weights and KV streamed once. Draft steps
    run inside the target's iteration, so they pay collective latency but not the scheduler overhead."""
    weights = spec.draft_params * BF16 / cfg.chips
    kv = batch * spec.draft_kv_elems * context * cfg.kv_bytes / cfg.chips
    t_mem = (weights + kv) / (hw.mem_bw * hw.hbm_eff)
    t_flops = 2.0 * spec.draft_params * batch / (cfg.chips * hw.flops_bf16 * hw.decode_mfu)
    latency = jnp.where(cfg.chips > 1, 2.0 * spec.draft_layers * hw.collective_latency_s, 0.0)
    return jnp.maximum(t_mem, t_flops) + latency + spec.draft_layers * hw.layer_latency_s


def speculative_step(a: Arch, hw: Hw, cfg: Config, spec: Spec, batch, context):
    """(seconds per step, tokens per sequence per step) at mean `context`."""
    k = cfg.spec_k
    verify = device_step_time(a, hw, cfg, batch, context, query_tokens=k + 1.0)
    plain = device_step_time(a, hw, cfg, batch, context, query_tokens=1.0)
    drafter = jnp.where(spec.draft_params > 0, draft_step_time(hw, cfg, spec, batch, context),
                        spec.mtp_cost_fraction * plain)
    # the host's per-request work overlaps the device's whole iteration (drafts and verify)
    step = jnp.maximum(jnp.where(k > 0, verify + k * drafter, plain), host_step_time(hw, batch))
    tokens = jnp.where(k > 0, tokens_per_step(acceptance(spec, context), k), 1.0)
    return step, tokens
