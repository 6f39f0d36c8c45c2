"""Derive parameter groups, KV geometry and attention FLOP coefficients from a model's config.

Counts follow the published Hugging Face module layouts (Llama/Qwen/Mixtral/gpt-oss/DeepSeek-V3);
tests compare the derived totals with the published parameter counts. Small terms (norms, biases)
are included where they are structural; DeepSeek-V3's MTP module is not counted in the weights
(it is loaded only when used as the drafter, and is ~2 % of the total).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.model.types import Arch
from planner.schema.models import ModelSpec

NO_WINDOW = 1e12  # "no sliding window": larger than any context


@dataclass(frozen=True)
class ParamCounts:
    embed: float
    lm_head: float
    dense: float  # attention + dense MLPs + norms + routers + shared experts
    expert: float  # one routed expert summed over all MoE layers
    experts_routed: int
    experts_active: int

    @property
    def total(self) -> float:
        return self.embed + self.lm_head + self.dense + self.experts_routed * self.expert

    @property
    def active(self) -> float:
        """Parameters per token as published 'active' counts state them (embeddings included)."""
        return self.embed + self.lm_head + self.dense + self.experts_active * self.expert


def _attention_params(m: ModelSpec) -> float:
    if m.attention == "mla":
        rope, nope = m.qk_rope_head_dim or 0, m.qk_nope_head_dim or 0
        v_dim = m.v_head_dim or m.head_dim
        q = (m.hidden * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * m.heads * (nope + rope)
             if m.q_lora_rank else m.hidden * m.heads * (nope + rope))
        kv = m.hidden * (m.kv_lora_rank + rope) + m.kv_lora_rank + m.kv_lora_rank * m.heads * (nope + v_dim)
        out = m.heads * v_dim * m.hidden
        return float(q + kv + out)
    q = m.hidden * m.heads * m.head_dim
    kv = 2 * m.hidden * m.kv_heads * m.head_dim
    out = m.heads * m.head_dim * m.hidden
    return float(q + kv + out)


def param_counts(m: ModelSpec) -> ParamCounts:
    mats = 3 if m.gated_mlp else 2
    attn = _attention_params(m)
    norms = 2 * m.hidden
    if m.is_moe:
        dense_layers = m.dense_layers or 0
        moe_layers = m.layers - dense_layers
        shared = (m.experts_shared or 0) * mats * m.hidden * m.moe_ffn_dim
        router = m.hidden * m.experts_routed
        expert = float(moe_layers * mats * m.hidden * m.moe_ffn_dim)
        routed, active = m.experts_routed, m.experts_active
    else:
        dense_layers, moe_layers, shared, router, expert, routed, active = m.layers, 0, 0, 0, 0.0, 0, 0
    dense = (m.layers * (attn + norms) + dense_layers * mats * m.hidden * m.ffn_dim
             + moe_layers * (shared + router) + m.hidden)
    embed = float(m.vocab * m.hidden)
    lm_head = 0.0 if m.tie_embeddings else embed
    return ParamCounts(embed=embed, lm_head=lm_head, dense=float(dense), expert=expert,
                       experts_routed=routed, experts_active=active)


def kv_elems_per_token_layer(m: ModelSpec) -> float:
    """Cached elements per token in one attention layer (K and V, or the MLA latent + RoPE key)."""
    if m.attention == "mla":
        return float(m.kv_lora_rank + m.qk_rope_head_dim)
    return float(2 * m.kv_heads * m.head_dim)


def kv_bytes_per_token(m: ModelSpec, bytes_per_elem: float = 2.0, context: int | None = None) -> float:
    """Average KV bytes per token at a context length (sliding-window layers stop growing)."""
    per_layer = kv_elems_per_token_layer(m) * bytes_per_elem
    swa = m.sliding_window_layers or 0
    if swa and context:
        window_share = min(context, m.sliding_window) / context
        return per_layer * ((m.layers - swa) + swa * window_share)
    return per_layer * m.layers


def _attn_flops_per_pair(m: ModelSpec, absorbed: bool) -> float:
    """FLOPs for one query token attending to one context token, summed over layers."""
    if m.attention == "mla":
        rope, nope, v_dim = m.qk_rope_head_dim, m.qk_nope_head_dim or 0, m.v_head_dim or m.head_dim
        if absorbed:  # decode: attend in the latent space (kv_lora_rank + rope) and read values as latent
            per_layer = 2 * m.heads * (m.kv_lora_rank + rope) + 2 * m.heads * m.kv_lora_rank
        else:
            per_layer = 2 * m.heads * (nope + rope) + 2 * m.heads * v_dim
    else:
        per_layer = 4 * m.heads * m.head_dim
    return float(per_layer * m.layers)


def _ffn_width_active(m: ModelSpec) -> float:
    """FFN width one token passes through per layer, averaged over the layers: the width of the
    non-GEMM activation traffic (SwiGLU, quantisation of the down-projection input)."""
    if not m.is_moe:
        return float(m.ffn_dim)
    dense_layers = m.dense_layers or 0
    moe_width = (m.experts_active + (m.experts_shared or 0)) * m.moe_ffn_dim
    return float((dense_layers * m.ffn_dim + (m.layers - dense_layers) * moe_width) / m.layers)


def arch_arrays(m: ModelSpec) -> Arch:
    p = param_counts(m)
    swa = m.sliding_window_layers or 0
    per_layer = kv_elems_per_token_layer(m)
    moe_layers = (m.layers - (m.dense_layers or 0)) if m.is_moe else 0
    f = np.float32
    return Arch(
        layers=f(m.layers),
        hidden=f(m.hidden),
        heads=f(m.heads),
        kv_heads=f(m.kv_heads),
        vocab=f(m.vocab),
        params_embed=f(p.embed if p.lm_head else 0.0),  # stored separately only when untied
        params_lm_head=f(p.embed),  # the output projection is read every decode step, tied or not
        params_dense=f(p.dense),
        params_expert=f(p.expert),
        experts_routed=f(p.experts_routed),
        experts_active=f(p.experts_active),
        moe_layers=f(moe_layers),
        expert_width=f(m.moe_ffn_dim if m.is_moe else 0.0),
        ffn_width_active=f(_ffn_width_active(m)),
        kv_elems_full=f(per_layer * (m.layers - swa)),
        kv_elems_window=f(per_layer * swa),
        window=f(m.sliding_window or NO_WINDOW),
        attn_flops_prefill=f(_attn_flops_per_pair(m, absorbed=False)),
        attn_flops_decode=f(_attn_flops_per_pair(m, absorbed=True)),
        attn_window_frac=f(swa / m.layers),
        kv_shardable=f(0.0 if m.attention == "mla" else 1.0),
        q_heads_per_layer_total=f(m.heads * m.layers),
    )
