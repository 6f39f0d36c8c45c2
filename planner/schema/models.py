"""Model catalog schema: the architecture numbers the cost model needs, each from a published config.

Parameter counts are *derived* from the architecture (see `planner.model.arch`); the published
totals are kept (`params_total_published`) so tests can check the derivation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from planner.schema.common import KebabId, Strict, check_sources

SOURCED_MODEL_FIELDS = (
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn_dim",
    "vocab",
    "max_context",
    "experts_routed",
    "experts_active",
    "experts_shared",
    "moe_ffn_dim",
    "dense_layers",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "sliding_window",
    "sliding_window_layers",
    "mtp_layers",
    "params_total_published",
    "params_active_published",
)


# The largest plausible value of each architecture number (far above any published model): bigger
# numbers are typos, and they would overflow the float32 cost model.
MODEL_LIMITS: dict[str, float] = {
    "layers": 10_000,
    "hidden": 1_000_000,
    "heads": 100_000,
    "kv_heads": 100_000,
    "head_dim": 100_000,
    "ffn_dim": 10_000_000,
    "vocab": 100_000_000,
    "max_context": 100_000_000,
    "experts_routed": 1_000_000,
    "experts_active": 1_000_000,
    "experts_shared": 10_000,
    "moe_ffn_dim": 10_000_000,
    "dense_layers": 10_000,
    "q_lora_rank": 1_000_000,
    "kv_lora_rank": 1_000_000,
    "qk_rope_head_dim": 100_000,
    "qk_nope_head_dim": 100_000,
    "v_head_dim": 100_000,
    "sliding_window": 100_000_000,
    "sliding_window_layers": 10_000,
    "mtp_layers": 100,
    "params_total_published": 1e15,
    "params_active_published": 1e15,
}

class ModelSpec(Strict):
    id: KebabId = Field(description="Catalog ID, e.g. 'llama-3.1-70b'")
    name: str = Field(description="Published name")
    hf_repo: str = Field(description="Hugging Face repository whose config.json the numbers come from")
    attention: Literal["gqa", "mla"] = Field(description="'gqa' (MHA/GQA/MQA) or 'mla' (DeepSeek latent)")
    layers: int = Field(gt=0, description="Transformer blocks")
    hidden: int = Field(gt=0, description="Model (residual) width")
    heads: int = Field(gt=0, description="Query heads")
    kv_heads: int = Field(gt=0, description="KV heads (GQA); for MLA the number of heads of the expanded K/V")
    head_dim: int = Field(gt=0, description="Per-head dimension of Q/K/V (GQA)")
    ffn_dim: int = Field(gt=0, description="Intermediate width of dense (non-MoE) MLP layers")
    vocab: int = Field(gt=0, description="Vocabulary size")
    max_context: int = Field(gt=0, description="Maximum context length, tokens")
    tie_embeddings: bool = Field(False, description="Input and output embeddings share weights")
    gated_mlp: bool = Field(True, description="SwiGLU-style MLP (3 matrices) rather than 2")
    # mixture of experts
    experts_routed: int | None = Field(None, ge=1, description="Routed experts per MoE layer")
    experts_active: int | None = Field(None, ge=1, description="Routed experts per token")
    experts_shared: int | None = Field(None, ge=0, description="Always-on shared experts per MoE layer")
    moe_ffn_dim: int | None = Field(None, gt=0, description="Intermediate width of one expert")
    dense_layers: int | None = Field(None, ge=0, description="Leading layers with a dense MLP instead of MoE")
    # multi-head latent attention (DeepSeek)
    q_lora_rank: int | None = Field(None, gt=0, description="MLA query compression rank")
    kv_lora_rank: int | None = Field(None, gt=0, description="MLA KV latent rank (cached)")
    qk_rope_head_dim: int | None = Field(None, gt=0, description="MLA decoupled RoPE key dim (cached)")
    qk_nope_head_dim: int | None = Field(None, gt=0, description="MLA non-RoPE query/key dim per head")
    v_head_dim: int | None = Field(None, gt=0, description="MLA value head dim")
    # sliding-window attention on some layers (gpt-oss)
    sliding_window: int | None = Field(None, gt=0, description="Window of sliding-window layers, tokens")
    sliding_window_layers: int | None = Field(None, ge=0, description="How many layers use the window")
    # speculative decoding
    mtp_layers: int | None = Field(None, ge=0, description="Multi-token-prediction modules shipped")
    draft_models: list[KebabId] = Field(default_factory=list, description="Catalog IDs usable as drafts")
    # published totals for cross-checking the derived counts
    params_total_published: float | None = Field(None, gt=0, description="Published total parameters")
    params_active_published: float | None = Field(None, gt=0, description="Published active parameters")
    sources: dict[str, str] = Field(description="Field name -> source key in [sources]")
    notes: str = ""

    @property
    def is_moe(self) -> bool:
        return self.experts_routed is not None

    @model_validator(mode="after")
    def _plausible(self) -> ModelSpec:
        for name, limit in MODEL_LIMITS.items():
            value = getattr(self, name)
            if value is not None and value > limit:
                raise ValueError(f"{name} = {value!r} is out of range (allowed: at most {limit:g})")
        if self.dense_layers is not None and self.dense_layers > self.layers:
            raise ValueError("dense_layers cannot exceed layers")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        moe = (self.experts_routed, self.experts_active, self.moe_ffn_dim)
        if any(v is not None for v in moe) and not all(v is not None for v in moe):
            raise ValueError("MoE models need experts_routed, experts_active and moe_ffn_dim together")
        if self.experts_routed and self.experts_active and self.experts_active > self.experts_routed:
            raise ValueError("experts_active cannot exceed experts_routed")
        if self.attention == "mla" and (self.kv_lora_rank is None or self.qk_rope_head_dim is None):
            raise ValueError("attention = 'mla' needs kv_lora_rank and qk_rope_head_dim")
        if self.heads % self.kv_heads:
            raise ValueError("heads must be a multiple of kv_heads")
        if (self.sliding_window is None) != (self.sliding_window_layers is None):
            raise ValueError("sliding_window and sliding_window_layers go together")
        if self.sliding_window_layers is not None and self.sliding_window_layers > self.layers:
            raise ValueError("sliding_window_layers cannot exceed layers")
        return self


class ModelsFile(Strict):
    sources: dict[str, str]
    model: list[ModelSpec]

    @model_validator(mode="after")
    def _sources_resolve(self) -> ModelsFile:
        ids = {m.id for m in self.model}
        for i, spec in enumerate(self.model):
            values = {name: getattr(spec, name) for name in SOURCED_MODEL_FIELDS}
            check_sources(f"model.{i} ({spec.id})", values, spec.sources, self.sources)
            for draft in spec.draft_models:
                if draft not in ids:
                    raise ValueError(f"{spec.id}: draft model '{draft}' is not in the catalog")
        return self
