"""Model catalog schema: the architecture numbers the cost model needs, each from a published config.

Parameter counts are *derived* from the architecture (see `planner.model.arch`); the published
totals are kept (`params_total_published`) so tests can check the derivation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from planner.schema.common import KebabId, Strict, WeightDtype, check_sources, unique_ids

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
    "attention_layers",
    "attention_chunk",
    "chunked_layers",
    "index_topk",
    "index_heads",
    "index_head_dim",
    "sparse_layers",
    "indexer_layers",
    "compress_ratios",
    "compress_window",
    "o_lora_rank",
    "o_groups",
    "linear_layers",
    "linear_key_heads",
    "linear_value_heads",
    "linear_key_head_dim",
    "linear_value_head_dim",
    "linear_conv_kernel",
    "mamba_layers",
    "mamba_heads",
    "mamba_head_dim",
    "mamba_state_dim",
    "mamba_groups",
    "mamba_conv_kernel",
    "moe_layers",
    "shared_ffn_dim",
    "moe_latent_dim",
    "params_total_published",
    "params_active_published",
    "weight_dtype_published",
    "weight_dtype_dense_published",
    "shared_experts_at_weight_dtype_published",
    "lm_head_dtype_published",
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
    "attention_layers": 10_000,
    "attention_chunk": 100_000_000,
    "chunked_layers": 10_000,
    "index_topk": 100_000_000,
    "index_heads": 100_000,
    "index_head_dim": 100_000,
    "sparse_layers": 10_000,
    "indexer_layers": 10_000,
    "compress_window": 100_000_000,
    "o_lora_rank": 1_000_000,
    "o_groups": 100_000,
    "linear_layers": 10_000,
    "linear_key_heads": 100_000,
    "linear_value_heads": 100_000,
    "linear_key_head_dim": 100_000,
    "linear_value_head_dim": 100_000,
    "linear_conv_kernel": 1_000,
    "mamba_layers": 10_000,
    "mamba_heads": 100_000,
    "mamba_head_dim": 100_000,
    "mamba_state_dim": 100_000,
    "mamba_groups": 100_000,
    "mamba_conv_kernel": 1_000,
    "moe_layers": 10_000,
    "shared_ffn_dim": 10_000_000,
    "moe_latent_dim": 10_000_000,
    "params_total_published": 1e15,
    "params_active_published": 1e15,
}

class ModelSpec(Strict):
    id: KebabId = Field(description="Catalog ID, e.g. 'llama-3.1-70b'")
    name: str = Field(description="Published name")
    hf_repo: str = Field(description="Hugging Face repository whose config.json the numbers come from")
    attention: Literal["gqa", "mla", "shared-kv"] = Field(
        description="'gqa' (MHA/GQA/MQA), 'mla' (DeepSeek latent) or 'shared-kv' (one KV vector of head_dim per "
                    "entry, used as key and value: DeepSeek-V4)")
    layers: int = Field(gt=0, description="Blocks (num_hidden_layers; hybrid models count every mixer block)")
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
    dense_layers: int | None = Field(None, ge=0, description="Layers with a dense MLP instead of MoE")
    moe_layers: int | None = Field(None, ge=0, description="Layers with a MoE MLP (default: layers - dense_layers; "
                                   "Llama-4 interleaves, Nemotron-H blocks without an MLP count in neither)")
    shared_ffn_dim: int | None = Field(None, gt=0, description="Width of a shared expert (default moe_ffn_dim)")
    moe_latent_dim: int | None = Field(None, gt=0, description="Experts run in this latent width (Nemotron-3 "
                                       "moe_latent_size), projected from and back to hidden")
    # multi-head latent attention (DeepSeek)
    q_lora_rank: int | None = Field(None, gt=0, description="MLA query compression rank")
    kv_lora_rank: int | None = Field(None, gt=0, description="MLA KV latent rank (cached)")
    qk_rope_head_dim: int | None = Field(None, gt=0, description="MLA decoupled RoPE key dim (cached)")
    qk_nope_head_dim: int | None = Field(None, gt=0, description="MLA non-RoPE query/key dim per head")
    v_head_dim: int | None = Field(None, gt=0, description="MLA value head dim")
    attn_output_gate: bool = Field(False, description="Gated attention output (Qwen3.5: q_proj twice as wide)")
    o_lora_rank: int | None = Field(None, gt=0, description="Low-rank grouped output projection rank (DeepSeek-V4)")
    o_groups: int | None = Field(None, gt=0, description="Groups of the low-rank output projection (DeepSeek-V4)")
    attention_layers: int | None = Field(None, ge=0, description="Layers with softmax attention (default: layers "
                                         "minus linear_layers and mamba_layers)")
    # sparse top-k attention with a lightweight indexer (DeepSeek-V3.2 / GLM-5 DSA, MiniMax-M3 block top-k)
    index_topk: int | None = Field(None, gt=0, description="Entries each query attends to in sparse layers")
    index_heads: int | None = Field(None, gt=0, description="Indexer heads")
    index_head_dim: int | None = Field(None, gt=0, description="Indexer key width (one key cached per entry)")
    sparse_layers: int | None = Field(None, ge=0, description="Layers using the indexer and top-k (default: "
                                      "every attention layer that is not windowed, chunked or compressed)")
    indexer_layers: int | None = Field(None, ge=0, description="Sparse layers that run their own indexer (GLM-5.2 "
                                       "indexer_types 'full'; 'shared' layers reuse its top-k; default: all)")
    # sequence-compressed attention (DeepSeek-V4)
    compress_ratios: list[int] | None = Field(None, description="Tokens per cached entry, one per layer "
                                              "(0 = no compressed branch); the indexer selects top-k on ratio-4 layers")
    compress_window: int | None = Field(None, gt=0, description="Uncompressed sliding window every compressed-"
                                        "attention layer also keeps, tokens")
    # chunked local attention (Llama-4)
    attention_chunk: int | None = Field(None, gt=0, description="Chunk of chunked local-attention layers, tokens")
    chunked_layers: int | None = Field(None, ge=0, description="How many layers use chunked local attention")
    # linear attention with a fixed state (gated DeltaNet: Qwen3.5 / Qwen3.6)
    linear_layers: int | None = Field(None, ge=0, description="Linear-attention (gated DeltaNet) layers")
    linear_key_heads: int | None = Field(None, gt=0, description="linear_num_key_heads")
    linear_value_heads: int | None = Field(None, gt=0, description="linear_num_value_heads")
    linear_key_head_dim: int | None = Field(None, gt=0, description="linear_key_head_dim")
    linear_value_head_dim: int | None = Field(None, gt=0, description="linear_value_head_dim")
    linear_conv_kernel: int | None = Field(None, gt=0, description="linear_conv_kernel_dim")
    # Mamba-2 layers (Nemotron-H / Nemotron-3)
    mamba_layers: int | None = Field(None, ge=0, description="Mamba-2 layers")
    mamba_heads: int | None = Field(None, gt=0, description="mamba_num_heads")
    mamba_head_dim: int | None = Field(None, gt=0, description="mamba_head_dim")
    mamba_state_dim: int | None = Field(None, gt=0, description="ssm_state_size")
    mamba_groups: int | None = Field(None, gt=0, description="n_groups")
    mamba_conv_kernel: int | None = Field(None, gt=0, description="conv_kernel")
    # sliding-window attention on some layers (gpt-oss)
    sliding_window: int | None = Field(None, gt=0, description="Window of sliding-window layers, tokens")
    sliding_window_layers: int | None = Field(None, ge=0, description="How many layers use the window")
    # speculative decoding
    mtp_layers: int | None = Field(None, ge=0, description="Multi-token-prediction modules shipped")
    draft_models: list[KebabId] = Field(default_factory=list, description="Catalog IDs usable as drafts")
    tokenizer: str | None = Field(None, description="Tokenizer family (a draft must share its target's)")
    # published totals for cross-checking the derived counts
    params_total_published: float | None = Field(None, gt=0, description="Published total parameters")
    params_active_published: float | None = Field(None, gt=0, description="Published active parameters")
    weight_dtype_published: WeightDtype | None = Field(
        None, description="The dtype engines serve the published checkpoint (hf_repo) at, from its config.json "
                          "quantization_config (planner.checkpoint_dtype): what `planner eval` assumes when no "
                          "weight dtype is given; None: not recorded (eval assumes bf16)")
    weight_dtype_dense_published: WeightDtype | None = Field(
        None, description="The dtype a mixed-precision checkpoint keeps wider than weight_dtype_published: a "
                          "MoE's non-expert matrices (attention, shared experts, dense layers; Kimi-K2.5: bf16 "
                          "beside INT4 experts), a dense model's attention projections (Qwen3.6-27B NVFP4: fp8 "
                          "beside 4-bit MLPs), from its config.json (planner.checkpoint_dtype); the planner "
                          "reads and computes them at it whenever it runs the published weights")
    shared_experts_at_weight_dtype_published: bool | None = Field(
        None, description="True: a mixed-precision MoE checkpoint quantises its shared experts to weight_dtype_published "
                           "like its routed experts, not to weight_dtype_dense_published with its attention (NVIDIA's "
                           "Qwen3.6-35B-A3B NVFP4: W4A16 shared experts beside FP8 attention), from its config.json "
                           "(planner.checkpoint_dtype.checkpoint_shared_experts_narrow); None: they are kept wider, or not recorded")
    lm_head_dtype_published: WeightDtype | None = Field(
        None, description="The dtype a published checkpoint stores its LM head (output projection) at where it quantises "
                          "it (NVIDIA's Qwen3.6 NVFP4 exports: W4A16, int4 here), from its config.json "
                          "(planner.checkpoint_dtype.checkpoint_lm_head_dtype); the planner holds and reads it so "
                          "whenever it runs the published weights. None: 16-bit (most checkpoints leave it out), or not recorded")
    sources: dict[str, str] = Field(description="Field name -> source key in [sources]")
    notes: str = ""

    @property
    def is_moe(self) -> bool:
        return self.experts_routed is not None

    @property
    def narrowest_part(self) -> str:
        """What `weight_dtype_published` describes in a mixed checkpoint, in words."""
        return "experts" if self.is_moe else "MLPs"

    def kept_wider(self) -> str | None:
        """What a mixed checkpoint keeps wider and at which dtype, in words ('attention and shared
        experts in fp8'); None for a checkpoint in one format."""
        if self.weight_dtype_dense_published is None:
            return None
        parts = ["attention"]
        if self.is_moe and self.experts_shared and not self.shared_experts_at_weight_dtype_published:
            parts.append("shared experts")
        if self.is_moe and self.dense_layers:
            parts.append("dense layers")
        words = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
        return f"{words} in {self.weight_dtype_dense_published}"

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
        if self.weight_dtype_dense_published is not None and self.weight_dtype_published is None:
            raise ValueError("weight_dtype_dense_published needs weight_dtype_published: it is the part of a "
                             "published checkpoint kept wider than the rest")
        if self.shared_experts_at_weight_dtype_published and not (self.experts_shared and self.weight_dtype_dense_published):
            raise ValueError("shared_experts_at_weight_dtype_published needs experts_shared and weight_dtype_dense_published: "
                             "it says which of a mixed checkpoint's two dtypes its shared experts are in")
        if self.lm_head_dtype_published is not None and self.weight_dtype_published is None:
            raise ValueError("lm_head_dtype_published needs weight_dtype_published: it is part of a published checkpoint")
        if (self.sliding_window is None) != (self.sliding_window_layers is None):
            raise ValueError("sliding_window and sliding_window_layers go together")
        if self.sliding_window_layers is not None and self.sliding_window_layers > self.layers:
            raise ValueError("sliding_window_layers cannot exceed layers")
        if (self.attention_chunk is None) != (self.chunked_layers is None):
            raise ValueError("attention_chunk and chunked_layers go together")
        idx = (self.index_topk, self.index_heads, self.index_head_dim)
        if any(v is not None for v in idx) and not all(v is not None for v in idx):
            raise ValueError("sparse attention needs index_topk, index_heads and index_head_dim together")
        if self.compress_ratios is not None:
            if len(self.compress_ratios) != self.attention_count:
                raise ValueError(f"compress_ratios has {len(self.compress_ratios)} entries; "
                                 f"one per attention layer ({self.attention_count}) is needed")
            ratios = set(self.compress_ratios) - {0}
            if any(r < 0 for r in ratios) or len(ratios) > 2:
                raise ValueError("compress_ratios: at most two distinct positive ratios (and 0) are supported")
            if self.compress_window is None:
                raise ValueError("compress_ratios needs compress_window (the uncompressed window)")
        lin = (self.linear_key_heads, self.linear_value_heads, self.linear_key_head_dim,
               self.linear_value_head_dim, self.linear_conv_kernel)
        if self.linear_layers and not all(v is not None for v in lin):
            raise ValueError("linear_layers needs linear_key_heads, linear_value_heads, linear_key_head_dim, "
                             "linear_value_head_dim and linear_conv_kernel")
        mamba = (self.mamba_heads, self.mamba_head_dim, self.mamba_state_dim, self.mamba_groups,
                 self.mamba_conv_kernel)
        if self.mamba_layers and not all(v is not None for v in mamba):
            raise ValueError("mamba_layers needs mamba_heads, mamba_head_dim, mamba_state_dim, mamba_groups "
                             "and mamba_conv_kernel")
        local = (self.sliding_window_layers or 0) + (self.chunked_layers or 0)
        if local > self.attention_count:
            raise ValueError("sliding_window_layers + chunked_layers cannot exceed the attention layers")
        if (self.linear_layers or 0) + (self.mamba_layers or 0) > self.layers:
            raise ValueError("linear_layers + mamba_layers cannot exceed layers")
        if self.moe_layers is not None and self.moe_layers + (self.dense_layers or 0) > self.layers:
            raise ValueError("moe_layers + dense_layers cannot exceed layers")
        if self.attention == "shared-kv" and self.compress_ratios is None:
            raise ValueError("attention = 'shared-kv' needs compress_ratios (DeepSeek-V4 layout)")
        return self

    @property
    def attention_count(self) -> int:
        """Layers with softmax attention."""
        if self.attention_layers is not None:
            return self.attention_layers
        return self.layers - (self.linear_layers or 0) - (self.mamba_layers or 0)


class ModelsFile(Strict):
    sources: dict[str, str]
    model: list[ModelSpec]

    @model_validator(mode="after")
    def _sources_resolve(self, info: ValidationInfo) -> ModelsFile:
        unique_ids("model", [m.id for m in self.model])
        ids = {m.id for m in self.model} | set((info.context or {}).get("known_models", ()))
        for i, spec in enumerate(self.model):
            values = {name: getattr(spec, name) for name in SOURCED_MODEL_FIELDS}
            check_sources(f"model.{i} ({spec.id})", values, spec.sources, self.sources)
            for j, draft in enumerate(spec.draft_models):
                if draft not in ids:
                    raise ValueError(f"model.{i} ({spec.id}).draft_models[{j}]: '{draft}' is not in the catalog "
                                     "nor in this file (see `planner models list`)")
        return self
