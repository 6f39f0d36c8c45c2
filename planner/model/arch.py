"""Derive parameter groups, KV geometry and attention FLOP coefficients from a model's config.

Counts follow the published Hugging Face module layouts (Llama/Qwen/Mixtral/gpt-oss/DeepSeek-V3/
V3.2/V4, Llama-4, Qwen3.5 gated DeltaNet, Nemotron-H Mamba-2);
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
    """Weights of one softmax-attention layer (projections; the indexer is added separately)."""
    if m.attention == "mla":
        rope, nope = m.qk_rope_head_dim or 0, m.qk_nope_head_dim or 0
        v_dim = m.v_head_dim or m.head_dim
        q = (m.hidden * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * m.heads * (nope + rope)
             if m.q_lora_rank else m.hidden * m.heads * (nope + rope))
        kv = m.hidden * (m.kv_lora_rank + rope) + m.kv_lora_rank + m.kv_lora_rank * m.heads * (nope + v_dim)
        out = m.heads * v_dim * m.hidden
        return float(q + kv + out)
    q_width = m.heads * m.head_dim * (2 if m.attn_output_gate else 1)
    q = (m.hidden * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * q_width) if m.q_lora_rank else m.hidden * q_width
    kv_mats = 1 if m.attention == "shared-kv" else 2  # DeepSeek-V4: one KV projection, key = value
    kv = kv_mats * m.hidden * m.kv_heads * m.head_dim
    if m.o_lora_rank and m.o_groups:  # grouped low-rank output (DeepSeek-V4): per group (Hd/G -> r), then (G r -> hidden)
        out = m.heads * m.head_dim * m.o_lora_rank + m.o_groups * m.o_lora_rank * m.hidden
    else:
        out = m.heads * m.head_dim * m.hidden
    return float(q + kv + out)


def _indexer_params(m: ModelSpec) -> float:
    """DSA lightning indexer of one layer: query heads from the query latent (or hidden), one key, head weights."""
    if not m.index_topk:
        return 0.0
    q_in = m.q_lora_rank or m.hidden
    return float(q_in * m.index_heads * m.index_head_dim + m.hidden * m.index_head_dim + m.hidden * m.index_heads)


def _linear_attention_params(m: ModelSpec) -> float:
    """One gated-DeltaNet layer (Qwen3.5 / Qwen3-Next layout): fused q/k/v/z and beta/alpha projections,
    causal conv over q, k, v, decay parameters, gated norm and the output projection."""
    key_dim = m.linear_key_heads * m.linear_key_head_dim
    value_dim = m.linear_value_heads * m.linear_value_head_dim
    in_proj = m.hidden * (2 * key_dim + 2 * value_dim) + m.hidden * 2 * m.linear_value_heads
    conv = (2 * key_dim + value_dim) * m.linear_conv_kernel
    return float(in_proj + conv + 2 * m.linear_value_heads + m.linear_value_head_dim + value_dim * m.hidden)


def _mamba_params(m: ModelSpec) -> float:
    """One Mamba-2 layer (Nemotron-H layout): in_proj to (z, x, B, C, dt), conv over (x, B, C) with
    bias, A/D/dt_bias per head, gated norm and out_proj."""
    inner = m.mamba_heads * m.mamba_head_dim
    bc = 2 * m.mamba_groups * m.mamba_state_dim
    in_proj = m.hidden * (2 * inner + bc + m.mamba_heads)
    conv = (inner + bc) * (m.mamba_conv_kernel + 1)
    return float(in_proj + conv + 3 * m.mamba_heads + inner + inner * m.hidden)


def mlp_layer_counts(m: ModelSpec) -> tuple[int, int]:
    """(layers with a dense MLP, layers with a MoE MLP). Without `moe_layers`, every layer has an MLP:
    the first `dense_layers` dense, the rest MoE (or all dense for a dense model)."""
    if not m.is_moe:
        return (m.dense_layers if m.dense_layers is not None and m.moe_layers is not None else m.layers), 0
    moe = m.moe_layers if m.moe_layers is not None else m.layers - (m.dense_layers or 0)
    return (m.dense_layers or 0), moe


def _indexer_count(m: ModelSpec) -> int:
    return m.indexer_layers if m.indexer_layers is not None else _sparse_layer_count(m)


def param_counts(m: ModelSpec) -> ParamCounts:
    mats = 3 if m.gated_mlp else 2
    mixers = mixer_params(m)
    norms = 2 * m.hidden * m.layers
    dense_layers, moe_layers = mlp_layer_counts(m)
    if m.is_moe:
        router = m.hidden * m.experts_routed
        expert_in = m.moe_latent_dim or m.hidden
        latent_proj = 2 * m.hidden * m.moe_latent_dim if m.moe_latent_dim else 0
        expert = float(moe_layers * mats * expert_in * m.moe_ffn_dim)
        routed, active = m.experts_routed, m.experts_active
    else:
        router, latent_proj, expert, routed, active = 0, 0, 0.0, 0, 0
    dense = (mixers + norms + dense_layers * mats * m.hidden * m.ffn_dim
             + moe_layers * (router + latent_proj) + shared_expert_params(m) + m.hidden)
    embed = float(m.vocab * m.hidden)
    lm_head = 0.0 if m.tie_embeddings else embed
    return ParamCounts(embed=embed, lm_head=lm_head, dense=float(dense), expert=expert,
                       experts_routed=routed, experts_active=active)


def mixer_params(m: ModelSpec) -> float:
    """Weights of every layer's token mixer: softmax attention with its indexers, linear attention
    and Mamba projections."""
    return float(m.attention_count * _attention_params(m) + _indexer_count(m) * _indexer_params(m)
                 + (m.linear_layers or 0) * (_linear_attention_params(m) if m.linear_layers else 0.0)
                 + (m.mamba_layers or 0) * (_mamba_params(m) if m.mamba_layers else 0.0))


def params_kept_wider(m: ModelSpec) -> float:
    """Weights that `ModelSpec.weight_dtype_dense_published` covers where a checkpoint mixes formats:
    a MoE checkpoint quantises its routed experts furthest and keeps every other matrix (attention,
    shared experts, dense layers) wider; a dense one keeps its attention projections wider than its
    MLPs (NVIDIA's Qwen3.6-27B NVFP4: FP8 attention and linear attention, NVFP4 MLPs). A MoE
    checkpoint that quantises its shared experts with the routed ones
    (`ModelSpec.shared_experts_at_weight_dtype_published`) keeps only the rest wider."""
    if not m.is_moe:
        return mixer_params(m)
    return param_counts(m).dense - (shared_expert_params(m) if m.shared_experts_at_weight_dtype_published else 0.0)


def shared_expert_params(m: ModelSpec) -> float:
    """Weights of every MoE layer's shared experts."""
    if not m.experts_shared:
        return 0.0
    _, moe_layers = mlp_layer_counts(m)
    mats = 3 if m.gated_mlp else 2
    return float(moe_layers * m.experts_shared * mats * m.hidden * (m.shared_ffn_dim or m.moe_ffn_dim))


def kv_elems_per_token_layer(m: ModelSpec) -> float:
    """Cached elements per entry in one attention layer (K and V, the MLA latent + RoPE key, or
    DeepSeek-V4's single shared key-value vector)."""
    if m.attention == "mla":
        return float(m.kv_lora_rank + m.qk_rope_head_dim)
    if m.attention == "shared-kv":
        return float(m.kv_heads * m.head_dim)
    return float(2 * m.kv_heads * m.head_dim)


def _attn_flops_per_pair(m: ModelSpec, absorbed: bool) -> float:
    """FLOPs for one query token attending to one cached entry in one layer."""
    if m.attention == "mla":
        rope, nope, v_dim = m.qk_rope_head_dim, m.qk_nope_head_dim or 0, m.v_head_dim or m.head_dim
        if absorbed:  # decode: attend in the latent space (kv_lora_rank + rope) and read values as latent
            return float(2 * m.heads * (m.kv_lora_rank + rope) + 2 * m.heads * m.kv_lora_rank)
        return float(2 * m.heads * (nope + rope) + 2 * m.heads * v_dim)
    return float(4 * m.heads * m.head_dim)  # QK^T and AV (shared-kv: the same 512-wide vector for both)


def _sparse_layer_count(m: ModelSpec) -> int:
    """Layers that run the top-k indexer."""
    if not m.index_topk:
        return 0
    if m.compress_ratios is not None:
        positive = sorted({r for r in m.compress_ratios if r > 0})
        return sum(1 for r in m.compress_ratios if positive and r == positive[0])
    if m.sparse_layers is not None:
        return m.sparse_layers
    return m.attention_count - (m.sliding_window_layers or 0) - (m.chunked_layers or 0)


class UnsupportedLayout(ValueError):
    """The layer kinds do not fit the cost model's three attention terms."""


def _term(m: ModelSpec, layers: float, *, ratio=1.0, span=NO_WINDOW, reach=None, topk=NO_WINDOW,
          indexed=False) -> dict[str, float]:
    e = kv_elems_per_token_layer(m)
    idx_layers = (m.indexer_layers if m.indexer_layers is not None else layers) if indexed else 0.0
    idx_e = float(m.index_head_dim) if indexed else 0.0
    idx_f = float(2 * m.index_heads * m.index_head_dim) if indexed else 0.0
    return {"elems": layers * e, "ratio": float(ratio), "span": float(span),
            "reach": float(span if reach is None else reach), "topk": float(topk),
            "idx_elems": idx_layers * idx_e, "idx_flops": idx_layers * idx_f,
            "flops_prefill": layers * _attn_flops_per_pair(m, absorbed=False),
            "flops_decode": layers * _attn_flops_per_pair(m, absorbed=True),
            "scores": float(layers * m.heads)}


def _empty_term() -> dict[str, float]:
    return {"elems": 0.0, "ratio": 1.0, "span": NO_WINDOW, "reach": NO_WINDOW, "topk": NO_WINDOW,
            "idx_elems": 0.0, "idx_flops": 0.0, "flops_prefill": 0.0, "flops_decode": 0.0, "scores": 0.0}


def attention_terms(m: ModelSpec) -> dict[str, dict[str, float]]:
    """Group the attention layers into the cost model's terms (main, local, aux); see attention.py.

    - compressed (DeepSeek-V4): the smallest positive ratio runs the indexer's top-k (main), a
      second ratio attends to all its entries (aux), and every attention layer also keeps the
      uncompressed `compress_window` (local). Ratio-0 layers have only that window.
    - otherwise: global layers (full, or sparse top-k with the indexer) are main; full layers beside
      sparse ones are aux; sliding-window or chunked layers are local (a query sees half a chunk on
      average, and the engine keeps the current chunk)."""
    terms = {"main": _empty_term(), "local": _empty_term(), "aux": _empty_term()}
    n_attn = m.attention_count
    if m.compress_ratios is not None:
        ratios = sorted({r for r in m.compress_ratios if r > 0})
        topk = m.index_topk or NO_WINDOW
        for slot, r in zip(("main", "aux"), ratios, strict=False):
            count = sum(1 for x in m.compress_ratios if x == r)
            sparse = slot == "main" and m.index_topk is not None
            terms[slot] = _term(m, count, ratio=r, topk=topk if sparse else NO_WINDOW, indexed=sparse)
        terms["local"] = _term(m, n_attn, span=m.compress_window)
        return terms
    window, chunked = m.sliding_window_layers or 0, m.chunked_layers or 0
    if window and chunked:
        raise UnsupportedLayout("sliding-window and chunked layers in one model")
    if window:
        terms["local"] = _term(m, window, span=m.sliding_window)
    elif chunked:
        terms["local"] = _term(m, chunked, span=m.attention_chunk, reach=m.attention_chunk / 2)
    global_layers = n_attn - window - chunked
    sparse = _sparse_layer_count(m)
    if sparse:
        terms["main"] = _term(m, sparse, topk=m.index_topk, indexed=True)
        if global_layers - sparse > 0:
            terms["aux"] = _term(m, global_layers - sparse)
    elif global_layers:
        terms["main"] = _term(m, global_layers)
    return terms


def fixed_state(m: ModelSpec) -> tuple[float, float]:
    """(state elements per sequence, recurrence FLOPs per token) of linear-attention and Mamba layers.

    Gated DeltaNet: a (key x value) matrix per value head, plus the causal conv's last kernel-1
    inputs; per token the delta rule updates it with two rank-1 products and reads it once
    (~6 nv dk dv FLOPs). Mamba-2: a (head_dim x state) matrix per head plus the conv's inputs; per
    token the decayed update and the read are ~4 H P N FLOPs."""
    elems = flops = 0.0
    if m.linear_layers:
        key_dim = m.linear_key_heads * m.linear_key_head_dim
        value_dim = m.linear_value_heads * m.linear_value_head_dim
        matrix = m.linear_value_heads * m.linear_key_head_dim * m.linear_value_head_dim
        conv = (m.linear_conv_kernel - 1) * (2 * key_dim + value_dim)
        elems += m.linear_layers * (matrix + conv)
        flops += m.linear_layers * 6.0 * matrix
    if m.mamba_layers:
        inner = m.mamba_heads * m.mamba_head_dim
        matrix = inner * m.mamba_state_dim
        conv = (m.mamba_conv_kernel - 1) * (inner + 2 * m.mamba_groups * m.mamba_state_dim)
        elems += m.mamba_layers * (matrix + conv)
        flops += m.mamba_layers * 4.0 * matrix
    return float(elems), float(flops)


def kv_elems_per_token(m: ModelSpec) -> float:
    """Cached elements each new token adds at short context (before windows fill; fixed states and
    caps excluded): the growth rate of the KV cache."""
    return sum((t["elems"] + t["idx_elems"]) / t["ratio"] for t in attention_terms(m).values())


def kv_elems_per_seq(m: ModelSpec, context: float) -> float:
    """Cached elements of one sequence of `context` tokens (the cost model's own expression, in numpy)."""
    from planner.model.numpy_reference import twin

    return float(twin()["attention"].kv_elems_stored(arch_arrays(m), np.float64(context)))


def kv_bytes_per_token(m: ModelSpec, bytes_per_elem: float = 2.0, context: int | None = None) -> float:
    """Average KV bytes per token at a context length (windows, compression and states included);
    without a context, the short-context growth rate."""
    if context:
        return kv_elems_per_seq(m, context) * bytes_per_elem / context
    return kv_elems_per_token(m) * bytes_per_elem


def _ffn_width_active(m: ModelSpec) -> float:
    """FFN width one token passes through per layer, averaged over the layers: the width of the
    non-GEMM activation traffic (SwiGLU, quantisation of the down-projection input)."""
    dense_layers, moe_layers = mlp_layer_counts(m)
    if not m.is_moe:
        return float(dense_layers * m.ffn_dim / m.layers)
    moe_width = m.experts_active * m.moe_ffn_dim + (m.experts_shared or 0) * (m.shared_ffn_dim or m.moe_ffn_dim)
    return float((dense_layers * m.ffn_dim + moe_layers * moe_width) / m.layers)


def arch_arrays(m: ModelSpec) -> Arch:
    p = param_counts(m)
    terms = attention_terms(m)
    state_elems, state_flops = fixed_state(m)
    _, moe_layers = mlp_layer_counts(m)
    f = np.float32
    fields = {f"{slot}_{k}": f(v) for slot, t in terms.items() for k, v in t.items()}
    return Arch(
        layers=f(m.layers),
        hidden=f(m.hidden),
        heads=f(m.heads),
        kv_heads=f(m.kv_heads),
        vocab=f(m.vocab),
        params_embed=f(p.embed if p.lm_head else 0.0),  # stored separately only when untied
        params_lm_head=f(p.embed),  # the output projection is read every decode step, tied or not
        params_dense=f(p.dense),
        params_wider=f(params_kept_wider(m)),
        params_expert=f(p.expert),
        experts_routed=f(p.experts_routed),
        experts_active=f(p.experts_active),
        moe_layers=f(moe_layers),
        expert_width=f(m.moe_ffn_dim if m.is_moe else 0.0),
        ffn_width_active=f(_ffn_width_active(m)),
        **fields,
        state_elems=f(state_elems),
        state_flops=f(state_flops),
        kv_shardable=f(0.0 if m.attention == "mla" else 1.0),
    )
