"""Where the bytes live: weights, KV cache (per tier) and activations, per chip of the layout.

The layout (tensor, pipeline, expert, attention-data and context parallelism) is a search decision
carried in the config; `layouts.py` says how it splits weights and KV over the chips.
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.attention import kv_elems_stored
from planner.model.layouts import kv_share_per_chip, layout, weights_per_chip
from planner.model.precision import lm_head_bytes, wider_extra_bytes
from planner.model.types import Arch, Config, Hw

BF16 = 2.0
PREFILL_CHUNK_TOKENS = 8192.0  # chunked-prefill budget per step (vLLM/TRT-LLM default order of magnitude)
WORKSPACE_SHARE = 0.05  # at most this share of a chip's memory goes to the prefill chunk's workspace
ACTIVATION_BYTES_PER_HIDDEN = BF16 * 16.0  # residual, QKV and MLP intermediates per token per hidden unit
LOGITS_BYTES = 4.0  # fp32 logits buffer


def kv_elems_per_seq(a: Arch, context: jnp.ndarray) -> jnp.ndarray:
    """Cached elements for one sequence of `context` tokens (per attention kind: attention.py)."""
    return kv_elems_stored(a, context)


def weight_bytes(a: Arch, cfg: Config) -> jnp.ndarray:
    """All weights of one replica. Embeddings stay in BF16 (standard in FP8/FP4 checkpoints such as
    ModelOpt's), the LM head too unless the checkpoint quantises it (`lm_head_bytes`); every other
    matrix uses the weight dtype incl. its scales, the ones a checkpoint keeps wider
    (`Arch.params_wider`) `Config.dense_weight_bytes`."""
    quantised = a.params_dense + a.experts_routed * a.params_expert
    wider = wider_extra_bytes(a, cfg.weight_bytes, cfg.dense_weight_bytes)
    return quantised * cfg.weight_bytes + a.params_embed * BF16 + lm_head_bytes(a, cfg) + wider


def prefill_chunk_tokens(a: Arch, hw: Hw, cfg: Config) -> jnp.ndarray:
    """Tokens per prefill chunk: the engine default, shrunk where the chunk's workspace would take
    more than WORKSPACE_SHARE of a chip (SRAM-only chips stream small chunks)."""
    tp, _ = layout(hw, cfg, a)
    fits = WORKSPACE_SHARE * hw.mem_bytes * tp / (a.hidden * ACTIVATION_BYTES_PER_HIDDEN)
    return jnp.maximum(jnp.minimum(PREFILL_CHUNK_TOKENS, jnp.floor(fits)), 1.0)


def workspace_bytes_per_chip(a: Arch, hw: Hw, cfg: Config) -> jnp.ndarray:
    """Workspace for one prefill chunk: residual, QKV and MLP intermediates (sharded by tp)."""
    tp, _ = layout(hw, cfg, a)
    return prefill_chunk_tokens(a, hw, cfg) * a.hidden * ACTIVATION_BYTES_PER_HIDDEN / tp


def logits_bytes_per_seq(a: Arch, hw: Hw, cfg: Config) -> jnp.ndarray:
    """FP32 logits of every scored position of one sequence (k + 1 with speculation), sharded by tp."""
    tp, _ = layout(hw, cfg, a)
    return (cfg.spec_k + 1.0) * a.vocab * LOGITS_BYTES / tp


def activation_bytes_per_chip(a: Arch, hw: Hw, cfg: Config) -> jnp.ndarray:
    return workspace_bytes_per_chip(a, hw, cfg) + cfg.batch * logits_bytes_per_seq(a, hw, cfg)


def naive_score_bytes_per_chip(a: Arch, hw: Hw, cfg: Config, context: jnp.ndarray) -> jnp.ndarray:
    """Naive attention materialises a (heads x chunk x context) score matrix per layer (fp16)."""
    tp, _ = layout(hw, cfg, a)
    chunk = jnp.minimum(prefill_chunk_tokens(a, hw, cfg), context)
    scores = (a.heads / tp) * chunk * context * BF16
    return jnp.where(cfg.flash > 0, 0.0, scores)


def memory_per_chip(a: Arch, hw: Hw, cfg: Config, context: jnp.ndarray, draft_weight_bytes, draft_kv_elems,
                    draft_context=None):
    """Bytes per chip by use; `context` is the KV length reserved per sequence. The drafter keeps
    its own KV for at most `draft_context` tokens (self-speculation's compressed cache)."""
    weights = weights_per_chip(a, cfg, weight_bytes(a, cfg)) + draft_weight_bytes / cfg.chips
    kv_seq = kv_elems_per_seq(a, context) * cfg.kv_bytes
    kv_total = cfg.batch * kv_seq * kv_share_per_chip(a, hw, cfg)
    draft_ctx = context if draft_context is None else jnp.minimum(context, draft_context)
    kv_total = kv_total + cfg.batch * draft_kv_elems * draft_ctx * cfg.kv_bytes / cfg.chips
    hbm_share = jnp.clip(1.0 - cfg.dram_frac - cfg.nvme_frac, 0.0, 1.0)
    return {
        "weights": weights,
        "kv_hbm": kv_total * hbm_share,
        "kv_dram": kv_total * cfg.dram_frac,
        "kv_nvme": kv_total * cfg.nvme_frac,
        "activations": activation_bytes_per_chip(a, hw, cfg),
        "attn_scores": naive_score_bytes_per_chip(a, hw, cfg, context),
    }


def kv_capacity(a, hw, cfg, hbm_fraction, context, draft_weight_bytes, draft_kv_elems, draft_context=None):
    """(KV tokens the instance's HBM holds, largest batch of `context`-long sequences that fits).

    Free memory = usable HBM - weights - chunk workspace - naive score buffer; each sequence then
    costs its KV plus its logits buffer."""
    one = cfg._replace(batch=jnp.ones_like(cfg.batch), dram_frac=0.0 * cfg.dram_frac, nvme_frac=0.0 * cfg.nvme_frac)
    mem = memory_per_chip(a, hw, one, context, draft_weight_bytes, draft_kv_elems, draft_context)
    free = jnp.maximum(hw.mem_bytes * hbm_fraction - mem["weights"] - workspace_bytes_per_chip(a, hw, cfg)
                       - mem["attn_scores"], 0.0)
    kv_seq = mem["kv_hbm"]  # one sequence's KV on one chip
    tokens = free / (kv_seq / context)
    batch = jnp.floor(free / (kv_seq + logits_bytes_per_seq(a, hw, cfg)))
    return tokens, batch
