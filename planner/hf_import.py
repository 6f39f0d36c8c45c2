"""Hugging Face `config.json` -> a model catalog entry (`planner models import`, and a config path
wherever a model ID is accepted).

The importer reads only fields it understands, for architectures it knows (`KNOWN_TYPES`); any
other model type, layer kind or required field it cannot interpret fails with one line naming the
field, never with a guess. Every number of the entry cites the file it came from.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from planner.checkpoint_dtype import (
    checkpoint_dense_dtype,
    checkpoint_dtype,
    checkpoint_lm_head_dtype,
    checkpoint_shared_experts_narrow,
)
from planner.errors import InputFileError

MAX_CONFIG_BYTES = 8 * 2**20

# model_type -> tokenizer family (with the vocabulary size, the tokenizer id used for draft checks)
KNOWN_TYPES = {
    "llama": "llama", "mistral": "mistral", "mixtral": "mistral", "qwen2": "qwen", "qwen2_moe": "qwen",
    "qwen3": "qwen", "qwen3_moe": "qwen", "qwen3_vl_text": "qwen", "qwen3_vl_moe_text": "qwen",
    "qwen3_5_text": "qwen", "qwen3_5_moe_text": "qwen", "mimo": "mimo",
    "deepseek_v3": "deepseek", "deepseek_v32": "deepseek", "deepseek_v4": "deepseek", "deepseek_ref": "deepseek",
    "kimi_k2": "kimi", "glm_moe_dsa": "glm", "glm4_moe": "glm", "minimax_m2": "minimax", "minimax_m3": "minimax",
    "llama4_text": "llama4", "gpt_oss": "o200k-harmony", "nemotron_h": "nemotron",
    "minimax_text_01": "minimax", "minimax_m1": "minimax",
}
# wrappers whose language model sits under text_config (multimodal checkpoints)
WRAPPERS = {"qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe", "kimi_k25", "llama4", "minimax_m3_vl"}
LAYER_KINDS = ("full_attention", "sliding_attention", "linear_attention", "deepseek_sparse_attention")
HYBRID_CHARS = {"M": "Mamba-2", "E": "MoE", "*": "attention", "-": "MLP"}
BLOCK_TYPES = {"mamba": "M", "moe": "E", "attention": "*", "mlp": "-"}  # Nemotron layers_block_type
LLAMA4_NOPE_INTERVAL = 4  # transformers Llama4TextConfig: every 4th layer is a global NoPE layer by default


class ImportFailure(InputFileError):
    """One line: the config file, the field and why it cannot be imported."""


def read_config(path: Path) -> dict[str, Any]:
    p = Path(path)
    try:
        if p.is_dir():
            hint = f"; its {p / 'config.json'}?" if (p / "config.json").is_file() else ""
            raise ImportFailure(f"{p}: a folder, not a config.json (give the file{hint})")
        if not p.is_file():
            raise ImportFailure(f"{p}: file not found (check the path to config.json)")
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ImportFailure(f"{p}: larger than {MAX_CONFIG_BYTES // 2**20} MiB; not a config.json")
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ImportFailure(f"{p}: cannot read file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ImportFailure(f"{p}: not UTF-8 text (byte {exc.start}); expected a config.json") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ImportFailure(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ImportFailure(f"{p}: expected a JSON object (a Hugging Face config.json)")
    return data


def repo_from_path(path: Path) -> str | None:
    """The Hugging Face repository ('owner/Repo') a config.json's path states: a saved config named
    `owner--Repo_config.json`, or one in the Hugging Face cache
    (`.../models--owner--Repo/snapshots/<revision>/config.json`). None otherwise: a folder's name is
    not a repository (`~/Downloads/config.json`)."""
    m = re.fullmatch(r"(.+?)--(.+?)_config\.json", path.name)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    parents = Path(os.path.abspath(path)).parents  # a relative path from inside the cache too
    if path.name == "config.json" and len(parents) >= 3 and parents[1].name == "snapshots":
        m = re.fullmatch(r"models--(.+)", parents[2].name)
        if m:  # models--owner--Repo, or models--Repo for a repository without an owner (gpt2)
            return m.group(1).replace("--", "/", 1)
    return None


def name_from_path(path: Path) -> str:
    """A name for the model: its repository's (`repo_from_path`), else the config's folder
    ('Qwen3-8B/config.json', a clone of the repository), else the file's stem."""
    repo = repo_from_path(path)
    if repo:
        return repo.split("/")[-1]
    return path.parent.name if path.name == "config.json" and path.parent.name else path.stem


def kebab(name: str) -> str:
    out = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.")
    return re.sub(r"-{2,}", "-", out) or "imported-model"


def published_counts(repo: str | None) -> tuple[float | None, float | None]:
    """(total, active) parameters when the repository name states them: '...-397B-A17B' (total and
    active), '...-17B-128E' (Llama-4: active), '...-70B' (a dense total)."""
    if not repo:
        return None, None
    name = repo.split("/")[-1]
    m = re.search(r"(\d+(?:\.\d+)?)B-A(\d+(?:\.\d+)?)B", name)
    if m:
        return float(m.group(1)) * 1e9, float(m.group(2)) * 1e9
    m = re.search(r"(\d+(?:\.\d+)?)B-\d+E\b", name)
    if m:
        return None, float(m.group(1)) * 1e9
    m = re.search(r"-(\d+(?:\.\d+)?)B(?:-|$)", name)
    if m:
        return float(m.group(1)) * 1e9, None
    return None, None


class _Fields:
    """Reads fields of the (text) config with one-line errors naming `prefix.key`."""

    def __init__(self, cfg: dict[str, Any], path: Path, prefix: str):
        self.cfg, self.path, self.prefix = cfg, path, prefix

    def fail(self, key: str, why: str) -> ImportFailure:
        return ImportFailure(f"{self.path}: {self.prefix}{key}: {why}")

    def has(self, key: str) -> bool:
        return self.cfg.get(key) is not None

    def int(self, key: str, default: int | None = None, *, required: bool = True, minimum: int = 1) -> int | None:
        value = self.cfg.get(key)
        if value is None:
            if default is not None or not required:
                return default
            raise self.fail(key, "required field is missing (the importer needs it to size the model)")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or value != int(value) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum} (got {value!r})")
        return int(value)

    def first(self, *keys: str, required: bool = False, minimum: int = 1) -> int | None:
        for key in keys:
            if self.has(key):
                return self.int(key, minimum=minimum)
        if required:
            raise self.fail(keys[0], "required field is missing (the importer needs it to size the model)")
        return None

    def int_list(self, key: str, length: int | None = None) -> list[int]:
        value = self.cfg.get(key)
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in value):
            raise self.fail(key, f"expected a list of non-negative integers (got {str(value)[:60]})")
        if length is not None and len(value) < length:
            raise self.fail(key, f"has {len(value)} entries; expected one per layer ({length})")
        return value[:length] if length is not None else value


def _text_config(cfg: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    outer = cfg.get("model_type")
    inner = cfg.get("text_config")
    if isinstance(inner, dict):
        if outer not in WRAPPERS and outer not in KNOWN_TYPES:
            raise ImportFailure(f"{path}: model_type: '{outer}' is not an architecture the importer knows "
                                f"(multimodal wrappers it reads: {', '.join(sorted(WRAPPERS))})")
        merged = dict(inner)
        for key in ("tie_word_embeddings", "vocab_size", "max_position_embeddings"):
            if key not in merged and key in cfg:
                merged[key] = cfg[key]
        if merged.get("model_type") == "kimi_k2" or outer == "kimi_k25":
            merged["model_type"] = "kimi_k2"
        if outer == "minimax_m3_vl" and merged.get("model_type") is None:
            merged["model_type"] = "minimax_m3"
        if merged.get("model_type") is None and outer in ("llama4",):
            merged["model_type"] = "llama4_text"
        return merged, "text_config."
    return cfg, ""


def _layer_kinds(f: _Fields, layers: int, spec: dict[str, Any]) -> None:
    """Attention and mixer kinds per layer: layer_types, Nemotron-H patterns, chunked local attention."""
    c = f.cfg
    if c.get("layer_types") is not None:
        kinds = c["layer_types"]
        if not isinstance(kinds, list) or len(kinds) < layers:
            raise f.fail("layer_types", f"expected one entry per layer ({layers})")
        for i, kind in enumerate(kinds[:layers]):
            if kind not in LAYER_KINDS:
                raise f.fail(f"layer_types[{i}]", f"'{kind}' is not a layer kind the importer knows "
                             f"({', '.join(LAYER_KINDS)})")
        kinds = kinds[:layers]
        if kinds.count("sliding_attention"):
            spec["sliding_window"] = f.int("sliding_window")
            spec["sliding_window_layers"] = kinds.count("sliding_attention")
        if kinds.count("deepseek_sparse_attention"):
            spec["sparse_layers"] = kinds.count("deepseek_sparse_attention")
        if kinds.count("linear_attention"):
            spec["linear_layers"] = kinds.count("linear_attention")
            spec["linear_key_heads"] = f.int("linear_num_key_heads")
            spec["linear_value_heads"] = f.int("linear_num_value_heads")
            spec["linear_key_head_dim"] = f.int("linear_key_head_dim")
            spec["linear_value_head_dim"] = f.int("linear_value_head_dim")
            spec["linear_conv_kernel"] = f.int("linear_conv_kernel_dim")
    elif c.get("attn_type_list") is not None:
        # MiniMax (Text-01, M1; M2's lists are all 1): 0 = lightning (linear) attention, 1 = softmax. A
        # lightning layer keeps one head_dim x head_dim state per query head (q, k, v, an output gate
        # and the output projection at heads x head_dim: 456B total / 45.9B active for Text-01, as
        # published), written as a linear-attention layer without a convolution (kernel 1)
        kinds = c["attn_type_list"]
        if not isinstance(kinds, list) or len(kinds) < layers or any(k not in (0, 1) for k in kinds[:layers]):
            raise f.fail("attn_type_list", f"expected 0 (lightning attention) or 1 (softmax) per layer ({layers})")
        linear = list(kinds[:layers]).count(0)
        if linear:
            spec["linear_layers"] = linear
            spec["linear_key_heads"] = spec["linear_value_heads"] = spec["heads"]
            spec["linear_key_head_dim"] = spec["linear_value_head_dim"] = spec["head_dim"]
            spec["linear_conv_kernel"] = 1
    elif c.get("hybrid_override_pattern") is not None or c.get("layers_block_type") is not None:
        pattern = c.get("hybrid_override_pattern")
        if pattern is None:
            blocks = c["layers_block_type"]
            if not isinstance(blocks, list):
                raise f.fail("layers_block_type", "expected a list of block kinds")
            for i, b in enumerate(blocks):
                if b not in BLOCK_TYPES:
                    raise f.fail(f"layers_block_type[{i}]", f"'{b}' is not a block kind the importer knows "
                                 f"({', '.join(BLOCK_TYPES)})")
            pattern = "".join(BLOCK_TYPES[b] for b in blocks)
        if not isinstance(pattern, str) or len(pattern) != layers:
            raise f.fail("hybrid_override_pattern", f"expected a string of one character per layer ({layers})")
        for i, ch in enumerate(pattern):
            if ch not in HYBRID_CHARS:
                raise f.fail("hybrid_override_pattern", f"character {i} '{ch}' is not a block kind the importer "
                             f"knows ({', '.join(f'{k} {v}' for k, v in HYBRID_CHARS.items())})")
        spec["attention_layers"] = pattern.count("*")
        if pattern.count("M"):
            spec["mamba_layers"] = pattern.count("M")
            spec["mamba_heads"] = f.int("mamba_num_heads")
            spec["mamba_head_dim"] = f.int("mamba_head_dim")
            spec["mamba_state_dim"] = f.int("ssm_state_size")
            spec["mamba_groups"] = f.int("n_groups")
            spec["mamba_conv_kernel"] = f.int("conv_kernel")
        spec["moe_layers"] = pattern.count("E")
        spec["dense_layers"] = pattern.count("-")
    elif c.get("sliding_window") is not None and spec["_type"] in ("mistral", "mixtral"):
        spec["sliding_window"] = f.int("sliding_window")
        spec["sliding_window_layers"] = layers
    elif c.get("use_sliding_window"):
        raise f.fail("use_sliding_window", "per-layer sliding windows without layer_types are not interpreted")
    if c.get("attention_chunk_size") is not None:
        rope = c.get("no_rope_layers") or [int((i + 1) % LLAMA4_NOPE_INTERVAL != 0) for i in range(layers)]
        spec["attention_chunk"] = f.int("attention_chunk_size")
        spec["chunked_layers"] = int(sum(1 for r in rope[:layers] if r))


def _attention(f: _Fields, spec: dict[str, Any], layers: int) -> None:
    c = f.cfg
    heads = spec["heads"]
    if c.get("compress_ratios") is not None:
        spec["attention"] = "shared-kv"
        spec["head_dim"] = f.int("head_dim")
        spec["qk_rope_head_dim"] = f.int("qk_rope_head_dim")
        spec["compress_ratios"] = f.int_list("compress_ratios", layers)
        spec["compress_window"] = f.int("sliding_window")
        spec["q_lora_rank"] = f.int("q_lora_rank", required=False)
        spec["o_lora_rank"] = f.int("o_lora_rank", required=False)
        spec["o_groups"] = f.int("o_groups", required=False)
    elif c.get("kv_lora_rank") is not None:
        spec["attention"] = "mla"
        spec["kv_lora_rank"] = f.int("kv_lora_rank")
        spec["qk_rope_head_dim"] = f.int("qk_rope_head_dim")
        spec["qk_nope_head_dim"] = f.int("qk_nope_head_dim")
        spec["v_head_dim"] = f.int("v_head_dim")
        spec["q_lora_rank"] = f.int("q_lora_rank", required=False)
        spec["head_dim"] = spec["qk_nope_head_dim"] + spec["qk_rope_head_dim"]
    else:
        spec["attention"] = "gqa"
        spec["head_dim"] = f.first("head_dim", "attention_head_dim") or spec["hidden"] // heads
    if c.get("index_topk") is not None:
        spec["index_topk"] = f.int("index_topk")
        spec["index_heads"] = f.int("index_n_heads")
        spec["index_head_dim"] = f.int("index_head_dim")
        # GLM-5.2's indexer runs on the 'full' layers only; 'shared' ones reuse its top-k. Read with or
        # without layer_types: zai-org's GLM-5.2/5.3 files list indexer_types but no layer_types
        indexers = c.get("indexer_types")
        if indexers is not None:
            if not isinstance(indexers, list) or len(indexers) < layers or \
                    any(x not in ("full", "shared") for x in indexers[:layers]):
                raise f.fail("indexer_types", "expected 'full' or 'shared' per layer")
            spec["indexer_layers"] = indexers[:layers].count("full")
    sparse = c.get("sparse_attention_config")
    if isinstance(sparse, dict) and sparse.get("use_sparse_attention"):
        s = _Fields(sparse, f.path, f"{f.prefix}sparse_attention_config.")
        freq = s.int_list("sparse_attention_freq", layers)
        block = s.int("sparse_block_size")
        blocks = s.int("sparse_topk_blocks") + s.int("sparse_local_block", 0, minimum=0) \
            + s.int("sparse_init_block", 0, minimum=0)
        spec["index_topk"] = blocks * block
        spec["index_heads"] = s.int("sparse_num_index_heads")
        spec["index_head_dim"] = s.int("sparse_index_dim")
        spec["sparse_layers"] = int(sum(1 for x in freq if x))
    if c.get("attn_output_gate") or c.get("attention_output_gate"):
        spec["attn_output_gate"] = True


def _moe(f: _Fields, spec: dict[str, Any], layers: int) -> None:
    c = f.cfg
    routed = f.first("n_routed_experts", "num_local_experts", "num_experts")
    if not routed:
        return
    spec["experts_routed"] = routed
    spec["experts_active"] = f.first("num_experts_per_tok", "experts_per_token", required=True)
    llama4 = spec["_type"] == "llama4_text"
    spec["moe_ffn_dim"] = f.int("intermediate_size") if llama4 else f.first(
        "moe_intermediate_size", "intermediate_size", required=True)
    if llama4:
        step = f.int("interleave_moe_layer_step", 1)
        moe = sum(1 for i in range(layers) if (i + 1) % step == 0)
        spec["moe_layers"], spec["dense_layers"] = moe, layers - moe
        spec["ffn_dim"] = f.first("intermediate_size_mlp", "intermediate_size", required=True)
        spec["experts_shared"] = 1
    elif isinstance(c.get("moe_layer_freq"), list):
        freq = f.int_list("moe_layer_freq", layers)
        spec["moe_layers"] = int(sum(1 for x in freq if x))
        spec["dense_layers"] = layers - spec["moe_layers"]
    elif c.get("first_k_dense_replace") is not None:
        spec["dense_layers"] = f.int("first_k_dense_replace", minimum=0)
    elif c.get("mlp_only_layers"):
        dense = c["mlp_only_layers"]
        spec["dense_layers"] = len(dense) if isinstance(dense, list) else f.int("mlp_only_layers")
    if f.int("decoder_sparse_step", 1) != 1:
        raise f.fail("decoder_sparse_step", "MoE on every n-th layer via decoder_sparse_step is not interpreted")
    freq = c.get("moe_layer_freq")
    if isinstance(freq, int) and not isinstance(freq, bool) and freq != 1:
        raise f.fail("moe_layer_freq", "an integer other than 1 is not interpreted")
    shared_width = f.first("shared_expert_intermediate_size", "moe_shared_expert_intermediate_size",
                           "shared_intermediate_size", minimum=0)
    shared = f.int("n_shared_experts", required=False, minimum=0)
    if shared is None and shared_width:
        shared = 1
    if shared_width == 0:
        shared = 0
    if shared is not None and not llama4:
        spec["experts_shared"] = shared
    if shared and shared_width and shared_width != spec["moe_ffn_dim"]:
        spec["shared_ffn_dim"] = shared_width
    if c.get("moe_latent_size") is not None:
        spec["moe_latent_dim"] = f.int("moe_latent_size")


def _mtp(f: _Fields) -> int | None:
    c = f.cfg
    n = f.first("num_nextn_predict_layers", "mtp_num_hidden_layers", minimum=0)
    if n is None and c.get("use_mtp"):
        n = f.first("num_mtp_modules", "mtp_transformer_layers")
    return n


def entry_from_config(cfg: dict[str, Any], path: Path, model_id: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(model entry as a catalog dict, its [sources] table) for a parsed config.json."""
    text, prefix = _text_config(cfg, path)
    mtype = text.get("model_type")
    f = _Fields(text, path, prefix)
    if mtype is None:
        raise f.fail("model_type", "missing: a config.json names its architecture there "
                     f"(the importer knows {', '.join(sorted(KNOWN_TYPES))})")
    if mtype not in KNOWN_TYPES:
        raise f.fail("model_type", f"'{mtype}' is not an architecture the importer knows "
                     f"(known: {', '.join(sorted(KNOWN_TYPES))})")
    repo = repo_from_path(Path(path))
    name = name_from_path(Path(path))  # a folder's name names the model; only a stated repo is cited as one
    mid = model_id or kebab(name)
    layers = f.int("num_hidden_layers")
    spec: dict[str, Any] = {"_type": mtype, "id": mid, "name": name, "hf_repo": repo or "unknown"}
    spec["layers"] = layers
    spec["hidden"] = f.int("hidden_size")
    spec["heads"] = f.int("num_attention_heads")
    spec["kv_heads"] = f.int("num_key_value_heads", spec["heads"])
    _attention(f, spec, layers)
    spec["ffn_dim"] = f.first("dense_intermediate_size", "intermediate_size", "moe_intermediate_size", required=True)
    spec["vocab"] = f.int("vocab_size")
    spec["max_context"] = f.int("max_position_embeddings")
    spec["tie_embeddings"] = bool(text.get("tie_word_embeddings", False))
    act = text.get("mlp_hidden_act") or text.get("hidden_act")
    spec["gated_mlp"] = act not in ("relu2", "gelu_new", "gelu")
    _layer_kinds(f, layers, spec)
    _moe(f, spec, layers)
    if spec["heads"] % spec["kv_heads"]:
        raise f.fail("num_key_value_heads", f"{spec['kv_heads']} does not divide num_attention_heads {spec['heads']}")
    mtp = _mtp(f)
    if mtp is not None:
        spec["mtp_layers"] = mtp
    spec["tokenizer"] = f"{KNOWN_TYPES[mtype]}-{spec['vocab']}"
    published, _ = checkpoint_dtype(cfg, repo or name)
    if published is not None:
        spec["weight_dtype_published"] = published
        dense, _ = checkpoint_dense_dtype(cfg, repo or name)
        if dense is not None:
            spec["weight_dtype_dense_published"] = dense
            if spec.get("experts_shared") and checkpoint_shared_experts_narrow(cfg, repo or name)[0]:
                spec["shared_experts_at_weight_dtype_published"] = True
        head, _ = checkpoint_lm_head_dtype(cfg, repo or name)
        if head is not None:
            spec["lm_head_dtype_published"] = head
    del spec["_type"]
    cfg_key = f"config-{mid}"
    where = f"{repo} config.json (Hugging Face)" if repo else f"config.json of {name} (repository not stated by its path)"
    sources = {cfg_key: f"{where}, read from {Path(path).name} by `planner models import`"}
    total, active = published_counts(repo)
    refs = {k: cfg_key for k, v in spec.items() if k in _SOURCED and v is not None}
    if total or active:
        name_key = f"name-{mid}"
        stated = ", ".join(x for x in (f"{total / 1e9:g}B total" if total else "",
                                       f"{active / 1e9:g}B active" if active else "") if x)
        sources[name_key] = f"the repository name {repo}: {stated} (rounded as the vendor states them)"
        if total:
            spec["params_total_published"], refs["params_total_published"] = total, name_key
        if active:
            spec["params_active_published"], refs["params_active_published"] = active, name_key
    spec["notes"] = f"Imported from {Path(path).name} by `planner models import`."
    if prefix:  # a multimodal wrapper: only its language model is read
        spec["notes"] += (" Language model only (text_config): the vision encoder's weights and image tokens are "
                          "not modelled; count image tokens in the prompt lengths.")
    spec["sources"] = refs
    return spec, sources


def _sourced() -> frozenset[str]:
    from planner.schema.models import SOURCED_MODEL_FIELDS

    return frozenset(SOURCED_MODEL_FIELDS)


_SOURCED = _sourced()


def import_model(path: str | Path, model_id: str | None = None):
    """Validated ModelSpec plus its sources, for a config.json path."""
    from planner import io
    from planner.schema import ModelsFile

    p = Path(path)
    spec, sources = entry_from_config(read_config(p), p, model_id)
    parsed = io.validate(ModelsFile, {"sources": sources, "model": [spec]}, p)
    return parsed.model[0], sources


def to_toml(spec, sources: dict[str, str]) -> str:
    """A user-catalog file holding one imported model (a `--catalog` file as it stands)."""
    import tomli_w

    entry = spec.model_dump(exclude_none=True, exclude_defaults=False)
    sources_table = entry.pop("sources")
    body = {"sources": sources, "model": [{**entry, "sources": sources_table}]}
    return tomli_w.dumps(body)
