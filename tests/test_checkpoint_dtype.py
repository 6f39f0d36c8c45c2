"""The published checkpoint's weight dtype: read from config.json, cited by the catalog, assumed by
`planner eval` when a case gives none, and named next to a bill whose 4-bit weights are the model itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from planner import io, paths, quality
from planner.catalog import load_catalog
from planner.checkpoint_dtype import (
    checkpoint_dense_dtype,
    checkpoint_dtype,
    checkpoint_lm_head_dtype,
    checkpoint_shared_experts_narrow,
)
from planner.evaluation import case_from_dict, evaluate_cases
from planner.hf_import import import_model
from planner.schema import ModelsFile

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
FP8_BLOCKS = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}


def _group(bits: int, kind: str, activations: int | None = None) -> dict:
    group = {"weights": {"num_bits": bits, "type": kind, "group_size": 32}, "targets": ["Linear"]}
    if activations is not None:
        group["input_activations"] = {"num_bits": activations, "type": kind}
    return group


def _layers_in(**algos: str) -> dict:
    """A ModelOpt MIXED_PRECISION record: module -> per-layer format."""
    return {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
            "quantized_layers": {name.replace("__", "."): {"quant_algo": a} for name, a in algos.items()}}


@pytest.mark.parametrize(("cfg", "repo", "expected"), [
    ({"torch_dtype": "bfloat16"}, "meta-llama/Llama-3.1-8B", "bf16"),
    ({"torch_dtype": "float16"}, "meta-llama/Llama-2-7b-hf", "bf16"),  # served at 16 bits either way
    ({"text_config": {"torch_dtype": "bfloat16"}}, None, "bf16"),  # multimodal wrapper
    ({"quantization_config": FP8_BLOCKS}, "deepseek-ai/DeepSeek-V3", "fp8"),
    ({"quantization_config": FP8_BLOCKS, "expert_dtype": "fp4"}, "deepseek-ai/DeepSeek-V4-Flash", "int4"),
    # NVIDIA's NVFP4 export of it: block FP8 beside NVFP4 experts, which run W4A4 on FP4 tensor cores
    ({"quantization_config": {**FP8_BLOCKS, "moe_quant_algo": "NVFP4"}, "expert_dtype": "fp4"},
     "nvidia/DeepSeek-V4-Flash-NVFP4", "fp4"),
    ({"quantization_config": {"quant_method": "mxfp4"}}, "openai/gpt-oss-120b", "int4"),
    ({"quantization_config": {"quant_method": "awq", "bits": 4}}, None, "int4"),
    ({"quantization_config": {"quant_method": "gptq", "bits": 8}}, None, "int8"),
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": _group(4, "int")}}},
     "moonshotai/Kimi-K2.5", "int4"),
    ({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}}, "nvidia/GLM-5.1-NVFP4", "fp4"),
    # mixed groups read at the narrowest (the MoE experts'): FP8 attention, NVFP4 experts
    ({"quantization_config": {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
                              "config_groups": {"a": _group(8, "float", 8), "b": _group(4, "float", 4)}}}, None, "fp4"),
    # a 4-bit float group that leaves activations at 16 bits (W4A16 NVFP4) is weight-only
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"b": _group(4, "float")}}},
     None, "int4"),
    # ModelOpt's per-layer record decides where its groups disagree (NVIDIA's Qwen3.6-35B-A3B NVFP4)
    ({"quantization_config": {**_layers_in(layers__0__self_attn__q_proj="FP8", layers__0__mlp__experts="W4A16_NVFP4"),
                              "config_groups": {"a": _group(8, "float", 8), "b": _group(4, "float", 4)}}}, None, "int4"),
    ({"quantization_config": _layers_in(layers__0__self_attn__q_proj="FP8", layers__0__mlp__experts="NVFP4")},
     None, "fp4"),
    ({"text_config": {"quantization_config": FP8_BLOCKS}}, None, "fp8"),
    # ModelOpt's own config: no quant_method, its algorithm and producer instead
    ({"quantization_config": {"quant_algo": "FP8", "producer": {"name": "modelopt"}}},
     "Qwen/Qwen3-32B-FP8-Static-PerTensor", "fp8"),
])
def test_checkpoint_formats_read_as_the_planner_serves_them(cfg: dict, repo: str | None, expected: str) -> None:
    assert checkpoint_dtype(cfg, repo)[0] == expected


@pytest.mark.parametrize(("cfg", "repo", "why"), [
    # ModelOpt exports keep their format outside config.json: never read them as 16-bit
    ({"torch_dtype": "bfloat16"}, "nvidia/DeepSeek-V3.1-NVFP4", "repository name says NVFP4"),
    ({"torch_dtype": "bfloat16"}, "nvidia/Llama-3.1-70B-Instruct-FP8", "repository name says FP8"),
    ({"quantization_config": {"quant_method": "hqq"}}, None, "'hqq' is not a format"),
    ({"quantization_config": _layers_in(layers__0__self_attn__q_proj="FP8", layers__0__mlp__up_proj="W4A8_AWQ")},
     None, "W4A8_AWQ, not a format"),
    ({"quantization_config": {"quant_method": "gptq", "bits": 3}}, None, "3 bits"),
    ({}, None, "no torch_dtype"),
])
def test_an_unreadable_or_contradicted_format_is_not_recorded(cfg: dict, repo: str | None, why: str) -> None:
    dtype, reason = checkpoint_dtype(cfg, repo)
    assert dtype is None and why in reason


def _layers(count: int, module: str) -> list[str]:
    return [f"model.layers.{i}.{module}*" for i in range(count)]


@pytest.mark.parametrize(("cfg", "expected"), [
    # DeepSeek-V4: block FP8 everywhere but the FP4 routed experts (MXFP4, or NVIDIA's NVFP4)
    ({"quantization_config": FP8_BLOCKS, "expert_dtype": "fp4"}, "fp8"),
    ({"quantization_config": {**FP8_BLOCKS, "moe_quant_algo": "NVFP4"}}, "fp8"),
    # gpt-oss: MXFP4 experts, attention left out of the conversion
    ({"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"]}},
     "bf16"),
    # Kimi-K2.5: one INT4 group, attention ignored by a pattern
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": _group(4, "int")},
                              "ignore": ["lm_head", "re:.*self_attn.*"]}}, "bf16"),
    # NVIDIA's exports: every layer's attention listed (one of 4 may sit under a whole-layer entry)
    ({"num_hidden_layers": 4, "quantization_config": {"quant_method": "modelopt", "config_groups": {"g": _group(4, "float")},
                                                      "ignore": ["model.layers.0*", *_layers(4, "self_attn")[1:]]}}, "bf16"),
    # Qwen3.6 NVFP4: a group of its own quantises the attention projections to FP8
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {
        "a": {**_group(8, "float", 8), "targets": ["model.layers.0.self_attn.q_proj"]}, "b": _group(4, "float", 4)}}}, "fp8"),
    # ... and its per-layer record says so too (attention and linear attention FP8, MLPs W4A16 NVFP4)
    ({"quantization_config": _layers_in(layers__0__linear_attn__in_proj_qkv="FP8", layers__3__self_attn__q_proj="FP8",
                                        layers__0__mlp__up_proj="W4A16_NVFP4")}, "fp8"),
    # one format throughout: nothing to record
    ({"quantization_config": FP8_BLOCKS}, None),
    ({"quantization_config": {"quant_method": "mxfp4"}}, None),
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": _group(4, "int")}}}, None),
    ({"torch_dtype": "bfloat16"}, None),
    # attention of a few layers only (here 1 of 4) is not the non-expert part's format
    ({"num_hidden_layers": 4, "quantization_config": {"quant_method": "modelopt", "config_groups": {"g": _group(4, "float")},
                                                      "ignore": _layers(1, "self_attn")}}, None),
])
def test_the_non_expert_format_of_a_mixed_checkpoint(cfg: dict, expected: str | None) -> None:
    assert checkpoint_dense_dtype(cfg)[0] == expected


def _cited_file(citation: str) -> Path | None:
    found = re.search(r"tests/data/hf-configs/(\S+_config\.json)", citation)
    return CONFIGS / found.group(1) if found else None


@pytest.mark.parametrize(("cfg", "expected"), [
    # NVIDIA's Qwen3.6-35B-A3B: W4A16 NVFP4 experts and shared experts beside FP8 attention
    ({"quantization_config": _layers_in(layers__0__self_attn__q_proj="FP8", layers__0__mlp__experts="W4A16_NVFP4",
                                        layers__0__mlp__shared_expert__up_proj="W4A16_NVFP4")}, True),
    # ... a record whose shared experts are FP8 like its attention keeps them wider
    ({"quantization_config": _layers_in(layers__0__self_attn__q_proj="FP8", layers__0__mlp__experts="W4A16_NVFP4",
                                        layers__0__mlp__shared_expert__up_proj="FP8")}, False),
    # NVIDIA's Kimi-K2.5 NVFP4: one Linear group, only attention ignored: shared experts are NVFP4 too
    ({"num_hidden_layers": 2, "quantization_config": {"quant_method": "modelopt", "config_groups": {"g": _group(4, "float", 4)},
                                                      "ignore": _layers(2, "self_attn")}}, True),
    # NVIDIA's GLM / Kimi-K2.6 exports, Moonshot's Kimi-K2.5: the shared experts are ignored (kept wider)
    ({"num_hidden_layers": 2, "quantization_config": {"quant_method": "modelopt", "config_groups": {"g": _group(4, "float", 4)},
                                                      "ignore": [*_layers(2, "self_attn"), *_layers(2, "mlp.shared_experts")]}}, False),
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": _group(4, "int")},
                              "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*"]}}, False),
    # DeepSeek-V4: block FP8 for every matrix but the FP4 routed experts
    ({"quantization_config": FP8_BLOCKS, "expert_dtype": "fp4"}, False),
    # one format throughout: nothing is kept wider, so nothing is narrower than it either
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": _group(4, "int")}}}, False),
])
def test_whether_a_mixed_checkpoint_quantises_its_shared_experts_with_its_experts(cfg: dict, expected: bool) -> None:
    assert checkpoint_shared_experts_narrow(cfg)[0] is expected


def test_every_catalog_checkpoint_dtype_is_what_its_cited_config_says() -> None:
    models = io.load(ModelsFile, paths.models_file())
    checked = 0
    for spec in models.model:
        if spec.weight_dtype_published is None:
            continue
        path = _cited_file(models.sources[spec.sources["weight_dtype_published"]])
        assert path is not None and path.exists(), f"{spec.id}: weight_dtype_published cites no config copy"
        repo = path.name.removesuffix("_config.json").replace("--", "/", 1)
        assert checkpoint_dtype(json.loads(path.read_text()), repo)[0] == spec.weight_dtype_published, spec.id
        checked += 1
    assert checked >= 35
    known = {m.id: m.weight_dtype_published for m in models.model}
    assert (known["deepseek-v3"], known["kimi-k2.5"], known["gpt-oss-120b"], known["llama-3.1-70b"]) == (
        "fp8", "int4", "int4", "bf16")


def test_every_mixed_checkpoint_in_the_catalog_records_what_it_keeps_wider() -> None:
    """Each model's second dtype (a MoE's non-expert matrices, a dense model's attention) is the one
    its cited config.json says: recorded where it is wider than the rest, absent where it is not."""
    models = io.load(ModelsFile, paths.models_file())
    recorded = {}
    for spec in models.model:
        if spec.weight_dtype_published is None:
            assert spec.weight_dtype_dense_published is None, spec.id
            continue
        path = _cited_file(models.sources[spec.sources["weight_dtype_published"]])
        repo = path.name.removesuffix("_config.json").replace("--", "/", 1)
        expected = checkpoint_dense_dtype(json.loads(path.read_text()), repo)[0]
        assert spec.weight_dtype_dense_published == expected, spec.id
        if expected is not None:
            cited = models.sources[spec.sources["weight_dtype_dense_published"]]
            assert _cited_file(cited) == path, spec.id
            recorded[spec.id] = expected
        narrow = bool(spec.experts_shared) and expected is not None and checkpoint_shared_experts_narrow(
            json.loads(path.read_text()), repo)[0]
        assert bool(spec.shared_experts_at_weight_dtype_published) is narrow, spec.id
        if narrow:
            assert models.sources[spec.sources["shared_experts_at_weight_dtype_published"]] == cited, spec.id
    assert [m.id for m in models.model if m.shared_experts_at_weight_dtype_published] == ["qwen3.6-35b-a3b"]
    assert {k: recorded.get(k) for k in ("kimi-k2.5", "deepseek-v4-flash", "gpt-oss-120b", "deepseek-v3", "qwen3.6-27b")} == {
        "kimi-k2.5": "bf16", "deepseek-v4-flash": "fp8", "gpt-oss-120b": "bf16", "deepseek-v3": None, "qwen3.6-27b": "fp8"}


def test_the_importer_records_the_checkpoint_dtype() -> None:
    spec, _ = import_model(CONFIGS / "deepseek-ai--DeepSeek-V3_config.json")
    assert spec.weight_dtype_published == "fp8" and spec.sources["weight_dtype_published"]
    spec, _ = import_model(CONFIGS / "nvidia--DeepSeek-V3.1-NVFP4_config.json")
    assert spec.weight_dtype_published is None  # NVFP4 by name, not by its config.json
    spec, _ = import_model(CONFIGS / "moonshotai--Kimi-K2.5_config.json")
    assert (spec.weight_dtype_published, spec.weight_dtype_dense_published) == ("int4", "bf16")
    assert spec.sources["weight_dtype_dense_published"]
    assert spec.shared_experts_at_weight_dtype_published is None  # Moonshot's ignore list keeps them bf16
    spec, _ = import_model(CONFIGS / "nvidia--Qwen3.6-27B-NVFP4_config.json")
    # a dense model: W4A16 NVFP4 MLPs (weight-only, int4) beside FP8 attention
    assert (spec.weight_dtype_published, spec.weight_dtype_dense_published) == ("int4", "fp8")
    spec, _ = import_model(CONFIGS / "nvidia--Qwen3.6-35B-A3B-NVFP4_config.json")
    assert (spec.weight_dtype_published, spec.weight_dtype_dense_published) == ("int4", "fp8")
    assert spec.shared_experts_at_weight_dtype_published is True
    assert spec.sources["shared_experts_at_weight_dtype_published"]
    assert spec.kept_wider() == "attention in fp8"


def _eval(**case) -> dict:
    cat = load_catalog()
    raw = {"hardware": "h200-sxm", "model": "deepseek-v3", "chips": 8, "batch": 1, "input": 1000, "output": 100, **case}
    return evaluate_cases([case_from_dict(raw, "test", catalog=cat)], cat)[0]


def test_eval_without_a_weight_dtype_serves_the_published_checkpoint() -> None:
    row = _eval()
    assert row["weight_dtype"] == "fp8" and row["fits"]
    assert any("published checkpoint (deepseek-ai/DeepSeek-V3)" in note for note in row["assumed"])
    written = _eval(weight_dtype="bf16")  # as written: 1.34 TB of BF16 weights do not fit on 8 x 141 GB
    assert written["weight_dtype"] == "bf16" and not written["fits"]
    assert not any("published" in note for note in written.get("assumed", ()))


def test_a_16_bit_checkpoint_needs_no_note() -> None:
    row = _eval(model="llama-3.1-70b")
    assert row["weight_dtype"] == "bf16" and not any("published" in n for n in row.get("assumed", ()))


def test_a_quantised_name_without_a_recorded_format_is_not_guessed_but_said() -> None:
    row = _eval(model="deepseek-v3.1", hardware="b200")  # nvidia/DeepSeek-V3.1-NVFP4: config.json is silent
    assert row["weight_dtype"] == "bf16"
    assert any("name says NVFP4" in note and "give weight_dtype" in note for note in row["assumed"])


def test_fp4_checkpoint_runs_weight_only_on_a_chip_without_fp4() -> None:
    hopper = _eval(model="kimi-k2.6", hardware="h200-sxm")
    blackwell = _eval(model="kimi-k2.6", hardware="b200")
    assert (hopper["weight_dtype"], blackwell["weight_dtype"]) == ("int4", "fp4")
    assert any("no FP4 tensor cores" in note for note in hopper["assumed"])
    # its attention and shared experts are BF16 in the checkpoint, and the warning says so on both chips
    for row in (hopper, blackwell):
        assert any("attention, shared experts and dense layers in bf16" in note for note in row["assumed"])


def test_eval_cli_warns_which_dtype_it_assumed(invoke) -> None:
    result = invoke("eval", "--hardware", "h200-sxm", "--model", "deepseek-v3", "--chips", "8", "--batch", "1",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weight_dtype"] == "fp8"
    assert "weight_dtype not given: evaluated as fp8" in result.stderr


def test_4bit_weights_as_published_carry_no_accuracy_caveat() -> None:
    published = quality.four_bit_note("int4", "bf16", "int4")
    assert published == "4-bit weights as the model is published" and not quality.unmodelled_accuracy(published)
    quantised = quality.four_bit_note("int4", "bf16", "bf16")
    assert quality.unmodelled_accuracy(quantised) and "4-bit weights:" in quantised
    both = quality.four_bit_note("int4", "int4", "int4")
    assert both.startswith("4-bit weights as the model is published; 4-bit KV cache:")
    assert quality.unmodelled_accuracy(both)
    # W4A4 on FP4 cores quantises the activations of an MXFP4 checkpoint (read as int4): another model
    assert quality.unmodelled_accuracy(quality.four_bit_note("fp4", "bf16", "int4"))
    # an FP4 checkpoint run weight-only keeps every published weight (activations stay 16-bit)
    assert not quality.unmodelled_accuracy(quality.four_bit_note("int4", "bf16", "fp4"))
    # the matrices a mixed checkpoint keeps wider are named; a planner-made int4 has none
    mixed = quality.four_bit_note("int4", "bf16", "int4", "attention in fp8")
    assert mixed == "4-bit weights as the model is published (attention in fp8)"
    assert not quality.unmodelled_accuracy(mixed)
    assert "attention" not in quality.four_bit_note("int4", "bf16", "bf16", "attention in fp8")
    assert quality.four_bit_note("fp8", "bf16", "fp8") is None


def test_the_default_search_adds_the_published_format_and_says_so() -> None:
    from support import with_dotted

    from planner.grid import build_grid
    from planner.schema import Scenario

    data = io.read_toml(paths.default_scenario())
    data["search"].pop("weight_dtype", None)
    data = with_dotted(data, {"model.id": "kimi-k2.6", "speculative.method": "ngram",
                              "search.hardware": ["b200", "h200-sxm"]})
    cat = load_catalog()
    grid = build_grid(io.validate(Scenario, data, "test"), cat)
    assert grid.weight_dtype == ["bf16", "fp8", "int4", "fp4"]
    assert any("fp4 added to the default list" in n for n in grid.warnings)
    written = build_grid(io.validate(Scenario, with_dotted(data, {"search.weight_dtype": ["fp8", "int4"]}), "test"), cat)
    assert written.weight_dtype == ["fp8", "int4"]  # a list the user wrote is searched as written
    assert not any("added to the default list" in n for n in written.warnings)


def test_the_published_format_is_exempt_from_the_weight_floor() -> None:
    from support import with_dotted

    from planner.grid import build_grid
    from planner.schema import Scenario

    data = io.read_toml(paths.default_scenario())
    data = with_dotted(data, {"quality.weight_dtype_min": "fp8",
                              "search.weight_dtype": ["bf16", "fp8", "int4"], "search.hardware": ["h200-sxm"],
                              "speculative.method": "ngram"})
    cat = load_catalog()
    for model, searched in (("kimi-k2.5", ["bf16", "fp8", "int4"]), ("deepseek-v3", ["bf16", "fp8"])):
        sc = io.validate(Scenario, with_dotted(data, {"model.id": model}), "test")
        grid = build_grid(sc, cat)
        assert grid.weight_dtype == searched, model
        exempt = [n for n in grid.warnings if "searched although below quality.weight_dtype_min" in n]
        assert bool(exempt) == (model == "kimi-k2.5"), grid.warnings
    assert quality.weight_ok(sc, "int4", "int4") and not quality.weight_ok(sc, "int4", "fp8")


def _eval_kimi(catalog, weight_dtype: str | None = None) -> dict:
    raw = {"hardware": "h200-sxm", "model": "kimi-k2.5", "chips": 8, "batch": 1, "input": 8000, "output": 100, "tp": 8}
    if weight_dtype is not None:
        raw["weight_dtype"] = weight_dtype
    return evaluate_cases([case_from_dict(raw, "test", catalog=catalog)], catalog)[0]


def test_the_published_non_expert_format_is_what_the_weights_and_a_decode_step_read() -> None:
    """Kimi-K2.5 publishes INT4 experts beside BF16 attention, shared experts and dense layer: at its
    published INT4 each chip holds those non-expert weights at 2 bytes each, not INT4's 0.53, and a
    batch-1 decode step, which reads all of them, takes longer. A planner-made fp8 covers every
    matrix: there the record changes nothing."""
    from dataclasses import replace

    from planner.lowering import WEIGHT_BYTES
    from planner.model.arch import param_counts

    cat = load_catalog()
    model = cat.model("kimi-k2.5")
    uniform = replace(cat, models={**cat.models, "kimi-k2.5": model.model_copy(update={"weight_dtype_dense_published": None})})
    mixed, flat = _eval_kimi(cat), _eval_kimi(uniform)
    dense = float(param_counts(model).dense)
    wider_gb = dense * (WEIGHT_BYTES["bf16"] - WEIGHT_BYTES["int4"]) / 8 / 1e9  # split over tp 8
    assert mixed["weights_gb_per_chip"] - flat["weights_gb_per_chip"] == pytest.approx(wider_gb, rel=1e-3)
    assert mixed["tpot_s"] > flat["tpot_s"] * 1.03
    assert mixed["kv_capacity_tokens"] < flat["kv_capacity_tokens"]
    planner_fp8, flat_fp8 = _eval_kimi(cat, "fp8"), _eval_kimi(uniform, "fp8")
    assert (planner_fp8["weights_gb_per_chip"], planner_fp8["tpot_s"]) == (flat_fp8["weights_gb_per_chip"], flat_fp8["tpot_s"])


def test_non_expert_gemms_run_at_their_published_format() -> None:
    """DeepSeek-V4-Flash keeps everything but its FP4 routed experts in block FP8: at the published
    weights its attention and shared-expert GEMMs run on FP8 tensor cores (the experts weight-only,
    in BF16 GEMMs), so a compute-bound prefill is faster than with every GEMM in BF16."""
    from dataclasses import replace

    cat = load_catalog()
    model = cat.model("deepseek-v4-flash")
    uniform = replace(cat, models={**cat.models, model.id: model.model_copy(update={"weight_dtype_dense_published": None})})
    raw = {"hardware": "h200-sxm", "model": model.id, "chips": 8, "batch": 1, "input": 8000, "output": 100, "tp": 8}
    mixed, flat = (evaluate_cases([case_from_dict(raw, "test", catalog=c)], c)[0] for c in (cat, uniform))
    assert mixed["weight_dtype"] == flat["weight_dtype"] == "int4"
    assert mixed["ttft_s"] < flat["ttft_s"] * 0.97


def test_a_dense_checkpoint_keeps_its_attention_wider() -> None:
    """NVIDIA's Qwen3.6-27B NVFP4 keeps its attention and linear-attention projections in FP8 beside
    4-bit MLPs: at the published weights each chip holds exactly those projections (counted from the
    shapes, not from the code under test's totals) at FP8's bytes rather than 4-bit ones, and a
    batch-1 decode step, which reads every weight, takes longer; the MLPs are not touched."""
    from dataclasses import replace

    from planner.lowering import WEIGHT_BYTES

    cat = load_catalog()
    model = cat.model("qwen3.6-27b")
    uniform = replace(cat, models={**cat.models, model.id: model.model_copy(update={"weight_dtype_dense_published": None})})
    raw = {"hardware": "h200-sxm", "model": model.id, "chips": 1, "batch": 1, "input": 8000, "output": 100}
    mixed, flat = (evaluate_cases([case_from_dict(raw, "test", catalog=c)], c)[0] for c in (cat, uniform))
    assert mixed["weight_dtype"] == flat["weight_dtype"] == "int4"
    h, kd, vd = model.hidden, model.linear_key_heads * model.linear_key_head_dim, model.linear_value_heads * model.linear_value_head_dim
    linear = (h * (2 * kd + 2 * vd) + h * 2 * model.linear_value_heads  # in_proj_qkv, in_proj_z, in_proj_b/a
              + (2 * kd + vd) * model.linear_conv_kernel + 2 * model.linear_value_heads + model.linear_value_head_dim
              + vd * h)  # conv, A_log/dt_bias, norm, out_proj
    q = model.heads * model.head_dim * 2  # gated queries
    softmax = h * q + 2 * h * model.kv_heads * model.head_dim + model.heads * model.head_dim * h
    attention = model.linear_layers * linear + (model.layers - model.linear_layers) * softmax
    assert attention == pytest.approx(7.24e9, rel=0.01)  # 27 % of its 26.9 B weights
    wider_gb = attention * (WEIGHT_BYTES["fp8"] - WEIGHT_BYTES["int4"]) / 1e9
    assert mixed["weights_gb_per_chip"] - flat["weights_gb_per_chip"] == pytest.approx(wider_gb, rel=2e-3)
    assert mixed["tpot_s"] > flat["tpot_s"] * 1.05
    # the attention GEMMs run on FP8 tensor cores: a compute-bound prefill is faster than all-BF16
    assert mixed["ttft_s"] < flat["ttft_s"]


def test_shared_experts_quantised_with_the_experts_are_read_at_their_bytes() -> None:
    """NVIDIA's Qwen3.6-35B-A3B NVFP4 gives its shared experts W4A16 NVFP4 like its routed experts,
    beside FP8 attention: each chip holds exactly the shared experts' weights (counted from the
    shapes here) at 4-bit bytes rather than FP8's, and its footer names only the attention as wider."""
    from dataclasses import replace

    from planner.lowering import WEIGHT_BYTES

    cat = load_catalog()
    model = cat.model("qwen3.6-35b-a3b")
    assert model.kept_wider() == "attention in fp8"
    wider = replace(cat, models={**cat.models, model.id: model.model_copy(update={"shared_experts_at_weight_dtype_published": None})})
    assert wider.model(model.id).kept_wider() == "attention and shared experts in fp8"
    raw = {"hardware": "h200-sxm", "model": model.id, "chips": 1, "batch": 1, "input": 8000, "output": 100}
    narrow, flat = (evaluate_cases([case_from_dict(raw, "test", catalog=c)], c)[0] for c in (cat, wider))
    shared = model.layers * model.experts_shared * 3 * model.hidden * model.moe_ffn_dim  # gate, up, down
    assert shared == pytest.approx(125.8e6, rel=1e-3)
    saved_gb = shared * (WEIGHT_BYTES["fp8"] - WEIGHT_BYTES["int4"]) / 1e9
    assert flat["weights_gb_per_chip"] - narrow["weights_gb_per_chip"] == pytest.approx(saved_gb, rel=2e-3)
    assert narrow["tpot_s"] <= flat["tpot_s"]


@pytest.mark.parametrize(("cfg", "expected"), [
    # NVIDIA's Qwen3.6 NVFP4 exports: the per-layer record gives lm_head W4A16 NVFP4 (weight-only: int4)
    ({"quantization_config": _layers_in(layers__0__mlp__down_proj="W4A16_NVFP4", layers__0__self_attn__q_proj="FP8",
                                        lm_head="W4A16_NVFP4")}, "int4"),
    # ... a record that does not list it leaves it at 16 bits
    ({"quantization_config": _layers_in(layers__0__mlp__down_proj="W4A16_NVFP4", layers__0__self_attn__q_proj="FP8")}, None),
    # NVIDIA's GLM / Kimi / MiniMax exports and gpt-oss list it in `ignore` / `modules_to_not_convert`
    ({"quantization_config": {"quant_method": "modelopt", "config_groups": {"g": _group(4, "float", 4)},
                              "ignore": ["lm_head", "model.layers.0*"]}}, None),
    ({"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"]}}, None),
    # compressed-tensors: a group over every Linear layer with no ignore entry quantises the head too
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": _group(8, "float", 8)}}}, "fp8"),
    # ... and one that names it does so whatever else it targets
    ({"quantization_config": {"quant_method": "compressed-tensors",
                              "config_groups": {"g": {**_group(4, "int"), "targets": ["re:.*mlp.*", "lm_head"]}}}}, "int4"),
    # block FP8 (DeepSeek, Kimi-K2, MiniMax): the head is not among the quantised Linear layers
    ({"quantization_config": FP8_BLOCKS}, None),
    ({"torch_dtype": "bfloat16"}, None),
])
def test_the_lm_head_dtype_a_checkpoint_records(cfg: dict, expected: str | None) -> None:
    assert checkpoint_lm_head_dtype(cfg)[0] == expected


def test_every_catalog_lm_head_dtype_is_what_its_cited_config_says() -> None:
    models = io.load(ModelsFile, paths.models_file())
    for spec in models.model:
        if spec.weight_dtype_published is None:
            assert spec.lm_head_dtype_published is None, spec.id
            continue
        cited = models.sources[spec.sources["weight_dtype_published"]]
        path = _cited_file(cited)
        repo = path.name.removesuffix("_config.json").replace("--", "/", 1)
        assert spec.lm_head_dtype_published == checkpoint_lm_head_dtype(json.loads(path.read_text()), repo)[0], spec.id
        if spec.lm_head_dtype_published is not None:
            assert models.sources[spec.sources["lm_head_dtype_published"]] == cited, spec.id
    quantised = {m.id: m.lm_head_dtype_published for m in models.model if m.lm_head_dtype_published}
    assert quantised == {"qwen3.6-27b": "int4", "qwen3.6-35b-a3b": "int4"}


def test_the_importer_records_a_quantised_lm_head() -> None:
    spec, _ = import_model(CONFIGS / "nvidia--Qwen3.6-27B-NVFP4_config.json")
    assert spec.lm_head_dtype_published == "int4" and spec.sources["lm_head_dtype_published"]
    spec, _ = import_model(CONFIGS / "moonshotai--Kimi-K2.5_config.json")
    assert spec.lm_head_dtype_published is None  # its ignore list keeps lm_head 16-bit


def test_a_quantised_lm_head_is_held_and_read_at_its_bytes_only_as_published() -> None:
    """Qwen3.6-27B NVFP4 stores its LM head (248,320 x 5,120, untied) in W4A16 NVFP4: served as
    published, each chip holds exactly that matrix at 4-bit bytes instead of 16-bit ones, and a
    batch-1 decode step, which reads every weight, is faster. Quantised by the planner (fp8, not
    the published format) the head stays 16-bit, as engines keep it."""
    from dataclasses import replace

    from planner.grid import smallest_head_bytes
    from planner.lowering import WEIGHT_BYTES

    cat = load_catalog()
    model = cat.model("qwen3.6-27b")
    assert not model.tie_embeddings
    wide = replace(cat, models={**cat.models, model.id: model.model_copy(update={"lm_head_dtype_published": None})})
    raw = {"hardware": "h200-sxm", "model": model.id, "chips": 1, "batch": 1, "input": 8000, "output": 100}
    narrow, flat = (evaluate_cases([case_from_dict(raw, "test", catalog=c)], c)[0] for c in (cat, wide))
    head = 248320 * 5120
    assert model.vocab * model.hidden == head
    saved_gb = head * (2.0 - WEIGHT_BYTES["int4"]) / 1e9
    assert flat["weights_gb_per_chip"] - narrow["weights_gb_per_chip"] == pytest.approx(saved_gb, rel=2e-3)
    assert narrow["tpot_s"] < flat["tpot_s"] * 0.97  # ~9 % of the bytes a step reads
    fp8 = {**raw, "weight_dtype": "fp8"}
    a, b = (evaluate_cases([case_from_dict(fp8, "test", catalog=c)], c)[0] for c in (cat, wide))
    assert a["weights_gb_per_chip"] == b["weights_gb_per_chip"]
    # the search's memory floor prices the head at its smallest searched bytes, so layouts that fit
    # only with the 4-bit head are still searched
    assert smallest_head_bytes(model, ["fp8", "int4"]) == WEIGHT_BYTES["int4"]
    assert smallest_head_bytes(model, ["fp8"]) == 2.0
