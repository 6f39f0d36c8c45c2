"""The weight dtype a published checkpoint is served at, read from its config.json.

`planner eval` evaluates a model at this dtype when a case names none. Assuming 16-bit weights for
every model made DeepSeek-V3 on 8 x H200 (its standard deployment, in the FP8 its authors publish)
read "does not fit", and billed Kimi-K2.5 (published in INT4) at four times its real weight bytes.

A checkpoint that mixes formats is read at its narrowest: MoE checkpoints quantise their routed
experts, nearly all of their weights, the furthest. Their non-expert matrices (attention, shared
experts, dense layers) often stay wider (Kimi-K2.5: INT4 experts, BF16 attention; DeepSeek-V4: FP4
experts, FP8 elsewhere; gpt-oss: MXFP4 experts, BF16 attention): `checkpoint_dense_dtype` reads that
second dtype. Few as those weights are (~1-3 % of the parameters), a decode step reads all of them
and only the experts its tokens route to: at batch 1, Kimi-K2.5's BF16 attention and shared experts
are more bytes than its eight INT4 experts per layer. Where a checkpoint's attention and shared
experts differ (NVIDIA's Qwen3.6-35B-A3B NVFP4: FP8 attention, W4A16 NVFP4 shared experts), the
attention's dtype is the second one and `checkpoint_shared_experts_narrow` says that the shared
experts take the routed experts' (`arch.params_kept_wider` then leaves them out). Most checkpoints
leave the output projection (LM head) at 16 bits; NVIDIA's Qwen3.6 NVFP4 exports give it W4A16
NVFP4, which `checkpoint_lm_head_dtype` reads (1.27 B weights of the 27B's: 2.5 GB at 16 bits, read
by every decode step, against ~13.5 GB for the rest of its 4-bit and FP8 weights).
A dense checkpoint's second dtype is its attention's (NVIDIA's Qwen3.6-27B NVFP4: FP8 attention and
linear attention beside 4-bit MLPs, 27 % of its weights; `arch.params_kept_wider`).

MXFP4 checkpoints (gpt-oss; DeepSeek-V4's `expert_dtype` fp4, with power-of-two `ue8m0` scales) read
as int4: engines run them weight-only by default (4-bit weights, 16-bit GEMMs), which is the
published model's arithmetic. The planner's fp4 is W4A4 on FP4 tensor cores, activations quantised
too: another model, which `quality.four_bit_note` flags as such. NVFP4 checkpoints (ModelOpt) are fp4,
except where they keep 16-bit activations (ModelOpt's W4A16_NVFP4, a 4-bit float group without
`input_activations`): those are weight-only, int4.
"""

from __future__ import annotations

import re
from typing import Any

SIXTEEN_BIT = ("bfloat16", "float16", "float32")  # engines serve all of them at 16 bits ("auto")
FP8_METHODS = ("fp8", "fbgemm_fp8")
WEIGHT_ONLY_4BIT = ("mxfp4", "awq", "gptq", "bitsandbytes")
QUANTISED_NAME = re.compile(r"(?:^|[-_.])(fp8|nvfp4|mxfp4|fp4|int4|int8|w4a16|w8a8|awq|gptq)(?:$|[-_.])", re.IGNORECASE)
"""A repository name that says its weights are quantised: NVIDIA ModelOpt exports keep their format
in hf_quant_config.json, so their config.json alone reads like a 16-bit checkpoint."""


def _quantization(cfg: dict[str, Any]) -> dict[str, Any] | None:
    q = cfg.get("quantization_config")
    if q is None and isinstance(cfg.get("text_config"), dict):
        q = cfg["text_config"].get("quantization_config")
    return q if isinstance(q, dict) else None


def _torch_dtype(cfg: dict[str, Any]) -> str | None:
    for where in (cfg, cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}):
        value = where.get("torch_dtype") or where.get("dtype")
        if isinstance(value, str):
            return value
    return None


def _group_dtype(bits: Any, kind: Any, activation_bits: Any = 4) -> str | None:
    """A compressed-tensors / ModelOpt weight group: 4-bit floats with 4-bit activations are NVFP4
    (W4A4 on FP4 tensor cores), without quantised activations (`input_activations` absent: W4A16)
    weight-only like 4-bit integers (int4); 8-bit floats FP8, 8-bit integers INT8."""
    if bits == 4:
        return "fp4" if kind == "float" and activation_bits == 4 else "int4"
    if bits == 8:
        return "fp8" if kind == "float" else "int8"
    return None


def _weight_group(group: Any) -> str | None:
    if not isinstance(group, dict):
        return None
    weights = group.get("weights") or {}
    return _group_dtype(weights.get("num_bits"), weights.get("type"), (group.get("input_activations") or {}).get("num_bits"))


MODELOPT_LAYER_ALGOS = {"FP8": "fp8", "NVFP4": "fp4", "W4A16_NVFP4": "int4"}
"""ModelOpt's per-layer formats (`quantized_layers` of a MIXED_PRECISION export) as the planner
serves them: W4A16_NVFP4 keeps 16-bit activations, so its 4-bit weights are weight-only (int4)."""


def _layer_dtypes(q: dict[str, Any]) -> dict[str, str | None]:
    """Module name -> planner dtype of a ModelOpt MIXED_PRECISION export's `quantized_layers` (None
    for a format not mapped). This per-layer record is what ModelOpt writes for itself; the
    `config_groups` beside it can disagree (NVIDIA's Qwen3.6-35B-A3B NVFP4: 4-bit activations in the
    group, W4A16_NVFP4 on every one of its layers)."""
    layers = q.get("quantized_layers")
    if not isinstance(layers, dict):
        return {}
    return {str(name): MODELOPT_LAYER_ALGOS.get(str((spec or {}).get("quant_algo", "")).upper())
            for name, spec in layers.items() if isinstance(spec, dict)}


def quantised_by_name(repo: str | None) -> str | None:
    """The format a repository's name claims (`nvidia/DeepSeek-V3.1-NVFP4`: 'NVFP4'), if any."""
    named = QUANTISED_NAME.search(repo.split("/")[-1]) if repo else None
    return named.group(1) if named else None


def checkpoint_dtype(cfg: dict[str, Any], repo: str | None = None) -> tuple[str | None, str]:
    """(planner weight dtype, what in the config says so); the dtype is None when the config does
    not say, contradicts the repository's name, or uses a format the planner does not map (the
    reason names it)."""
    q = _quantization(cfg)
    if q is None:
        named = quantised_by_name(repo)
        if named:
            return None, (f"the repository name says {named} but config.json has no quantization_config "
                          "(ModelOpt keeps it in hf_quant_config.json)")
        dtype = _torch_dtype(cfg)
        if dtype in SIXTEEN_BIT:
            return "bf16", f"no quantization_config; torch_dtype {dtype} (served at 16 bits)"
        return None, "no quantization_config and no torch_dtype"
    method = str(q.get("quant_method") or "").lower()
    if not method and ("quant_algo" in q or (q.get("producer") or {}).get("name") == "modelopt"):
        method = "modelopt"  # ModelOpt's own config (quant_algo, producer) without a quant_method
    if method in FP8_METHODS:
        if str(q.get("moe_quant_algo", "")).upper() == "NVFP4":
            return "fp4", ("quantization_config fp8 with moe_quant_algo NVFP4: NVFP4 routed experts (nearly all "
                           "the weights), W4A4 on FP4 tensor cores")
        if str(cfg.get("expert_dtype", "")).lower() == "fp4":
            return "int4", ("quantization_config fp8 with expert_dtype fp4: FP4 routed experts (nearly all the "
                            "weights), 4-bit weight-only as engines run them without FP4 tensor cores")
        return "fp8", f"quantization_config quant_method {method}"
    if method in WEIGHT_ONLY_4BIT:
        bits = q.get("bits", 4)
        if bits == 4:
            return "int4", f"quantization_config quant_method {method}: 4-bit weight-only"
        if bits == 8:
            return "int8", f"quantization_config quant_method {method}: 8-bit weight-only"
        return None, f"quantization_config quant_method {method} with {bits} bits"
    if method in ("compressed-tensors", "modelopt"):
        algo = str(q.get("quant_algo", "")).upper()
        if algo == "NVFP4":
            return "fp4", f"quantization_config {method} quant_algo NVFP4"
        if algo == "FP8":
            return "fp8", f"quantization_config {method} quant_algo FP8"
        layers = _layer_dtypes(q)
        if layers:
            unmapped = sorted({str(q["quantized_layers"][n].get("quant_algo")) for n, d in layers.items() if d is None})
            if unmapped:
                return None, f"quantization_config {method} quantized_layers use {unmapped[0]}, not a format the planner maps"
            narrowest = next(d for d in ("fp4", "int4", "fp8", "int8") if d in layers.values())
            return narrowest, f"quantization_config {method}: narrowest per-layer format (quantized_layers) {narrowest}"
        found = [_weight_group(g) for g in (q.get("config_groups") or {}).values()]
        found = [d for d in found if d is not None]
        if found:
            narrowest = next(d for d in ("fp4", "int4", "fp8", "int8") if d in found)
            return narrowest, f"quantization_config {method}: narrowest weight group {narrowest}"
        return None, f"quantization_config {method} without weight groups the planner reads"
    return None, f"quantization_config quant_method {method!r} is not a format the planner maps"


ATTENTION = re.compile(r"attn", re.IGNORECASE)
"""Module names of attention projections (`self_attn`, `linear_attn`, DeepSeek-V4's `attn`)."""


def checkpoint_dense_dtype(cfg: dict[str, Any], repo: str | None = None) -> tuple[str | None, str]:
    """(dtype of a MoE checkpoint's non-expert matrices, or a dense checkpoint's attention, where its
    config.json says they are wider than `checkpoint_dtype`'s, what says so); None when they are
    not, or the config does not say.
    Modules a quantization config leaves out stay at 16 bits (the checkpoint's torch_dtype; NVIDIA's
    exports that omit it store them in BF16)."""
    published, _ = checkpoint_dtype(cfg, repo)
    q = _quantization(cfg)
    if published is None or q is None:
        return None, "no mixed formats recorded"
    method = str(q.get("quant_method") or "").lower()
    found: str | None = None
    why = ""
    layers = _layer_dtypes(q)
    if method in FP8_METHODS and (str(cfg.get("expert_dtype", "")).lower() == "fp4"
                                  or str(q.get("moe_quant_algo", "")).upper() == "NVFP4"):
        found, why = "fp8", "quantization_config fp8 for every matrix but the routed experts (FP4)"
    elif method in WEIGHT_ONLY_4BIT:
        kept = [m for m in q.get("modules_to_not_convert") or [] if ATTENTION.search(str(m))]
        if kept:
            found, why = "bf16", f"modules_to_not_convert keeps {kept[0]} at 16 bits"
    elif layers:
        attention = {d for name, d in layers.items() if ATTENTION.search(name)}
        if len(attention) == 1:
            found = attention.pop()
            why = f"quantized_layers give the attention projections {found}"
    elif method in ("compressed-tensors", "modelopt") or "config_groups" in q:
        for group in (q.get("config_groups") or {}).values():
            targets = [t for t in (group.get("targets") or []) if ATTENTION.search(str(t))] if isinstance(group, dict) else []
            dtype = _weight_group(group)
            if targets and dtype is not None:
                found, why = dtype, f"a config group quantises the attention projections ({targets[0]}) to {dtype}"
                break
        else:
            everything = [str(m) for m in q.get("ignore") or []]
            ignored = [m for m in everything if ATTENTION.search(m)]
            if ignored and _every_layer(ignored, everything, cfg):
                found, why = "bf16", f"quantization_config ignore lists {ignored[0]}: kept at 16 bits"
    if found is None or found == published:
        return None, "every matrix in one format"
    return found, why


SHARED_EXPERTS = re.compile(r"shared_experts?(?:[.*]|$)", re.IGNORECASE)
"""Module names of a MoE's shared experts (`mlp.shared_expert.*` in Qwen, `mlp.shared_experts` in
DeepSeek, Kimi and GLM)."""


def checkpoint_shared_experts_narrow(cfg: dict[str, Any], repo: str | None = None) -> tuple[bool, str]:
    """(whether a mixed MoE checkpoint quantises its shared experts as far as its routed experts
    rather than keeping them at `checkpoint_dense_dtype` with its attention, what says so). Most do
    keep them wider (DeepSeek-V4: FP8; NVIDIA's GLM and Kimi-K2.6 exports list them in `ignore`);
    NVIDIA's Qwen3.6-35B-A3B NVFP4 gives them W4A16_NVFP4 like its experts, and a generic `Linear`
    group with no `ignore` entry for them (NVIDIA's Kimi-K2.5 NVFP4) quantises them too. An
    `ignore` entry for any layer's shared experts reads as all of them kept wider."""
    published, _ = checkpoint_dtype(cfg, repo)
    q = _quantization(cfg)
    if published is None or q is None or checkpoint_dense_dtype(cfg, repo)[0] is None:
        return False, "no mixed formats recorded"
    layers = _layer_dtypes(q)
    if layers:
        shared = {d for name, d in layers.items() if SHARED_EXPERTS.search(name)}
        if shared == {published}:
            return True, f"quantized_layers give the shared experts {published}, as the routed experts"
        return False, "quantized_layers do not give the shared experts the routed experts' format"
    method = str(q.get("quant_method") or "").lower()
    if method not in ("compressed-tensors", "modelopt"):
        return False, f"quant_method {method} keeps every matrix but the routed experts wider"
    ignored = [str(m) for m in q.get("ignore") or [] if SHARED_EXPERTS.search(str(m))]
    if ignored:
        return False, f"quantization_config ignore lists {ignored[0]}: kept wider"
    for group in (q.get("config_groups") or {}).values():
        targets = [str(t) for t in group.get("targets") or []] if isinstance(group, dict) else []
        named = [t for t in targets if SHARED_EXPERTS.search(t)]
        if (named or "Linear" in targets) and _weight_group(group) == published:
            return True, f"a config group quantises {named[0] if named else 'every Linear layer'} to {published}, shared experts included"
    return False, "no config group quantises the shared experts to the routed experts' format"


LM_HEAD = re.compile(r"(?:^|\.)lm_head(?:$|[.*])")
"""The output projection's module name (`lm_head`, `model.lm_head`, `lm_head.*`)."""


def checkpoint_lm_head_dtype(cfg: dict[str, Any], repo: str | None = None) -> tuple[str | None, str]:
    """(the dtype a quantised checkpoint stores its LM head at, what says so); None where it is
    16-bit or the config does not say. Read in order: a module list that leaves it out (`ignore`,
    `modules_to_not_convert`), the per-layer record (ModelOpt's `quantized_layers`), then config
    groups that target it by name or target every `Linear` layer (compressed-tensors quantises the
    head then too). FP8, MXFP4, AWQ and GPTQ integrations never quantise it."""
    published, _ = checkpoint_dtype(cfg, repo)
    q = _quantization(cfg)
    if published is None or q is None:
        return None, "no quantized format recorded"
    left_out = [str(m) for key in ("ignore", "modules_to_not_convert", "exclude_modules")
                for m in (q.get(key) or []) if LM_HEAD.search(str(m))]
    if left_out:
        return None, f"quantization_config leaves {left_out[0]} out: 16-bit"
    layers = _layer_dtypes(q)
    if layers:
        head = [d for name, d in layers.items() if LM_HEAD.search(name)]
        if not head:
            return None, "quantized_layers do not list lm_head: 16-bit"
        if head[0] is None:
            return None, "quantized_layers give lm_head a format the planner does not map"
        return head[0], f"quantized_layers give lm_head {head[0]}"
    method = str(q.get("quant_method") or "").lower()
    if method not in ("compressed-tensors", "modelopt"):
        return None, f"quant_method {method} leaves the LM head at 16 bits"
    for group in (q.get("config_groups") or {}).values():
        targets = [str(t) for t in group.get("targets") or []] if isinstance(group, dict) else []
        named = [t for t in targets if LM_HEAD.search(t)]
        dtype = _weight_group(group)
        if (named or "Linear" in targets) and dtype is not None:
            return dtype, f"a config group quantises {named[0] if named else 'every Linear layer, lm_head included'} to {dtype}"
    return None, "no config group quantises lm_head: 16-bit"


def _every_layer(attention: list[str], ignored: list[str], cfg: dict[str, Any]) -> bool:
    """Whether ignored module names cover the attention of (nearly) every layer: an attention
    pattern without a layer index covers all; else the layers named by attention entries or ignored
    whole (NVIDIA's exports leave the first dense layer out under `layers.0*`) must be at least
    90 % of the layers."""
    indexed = [re.search(r"layers\.(\d+)\.", n) for n in attention]
    if any(m is None for m in indexed):
        return True
    whole = {m.group(1) for m in (re.search(r"layers\.(\d+)\*$", n) for n in ignored) if m}
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    layers = text.get("num_hidden_layers") or cfg.get("num_hidden_layers")
    return bool(layers) and len({m.group(1) for m in indexed if m} | whole) >= 0.9 * int(layers)
