"""The published checkpoint's weight dtype: read from config.json, cited by the catalog, assumed by
`planner eval` when a case gives none, and named next to a bill whose 4-bit weights are the model itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from planner import io, paths, quality
from planner.catalog import load_catalog
from planner.checkpoint_dtype import checkpoint_dtype
from planner.evaluation import case_from_dict, evaluate_cases
from planner.hf_import import import_model
from planner.schema import ModelsFile

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
FP8_BLOCKS = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}


def _group(bits: int, kind: str) -> dict:
    return {"weights": {"num_bits": bits, "type": kind, "group_size": 32}, "targets": ["Linear"]}


@pytest.mark.parametrize(("cfg", "repo", "expected"), [
    ({"torch_dtype": "bfloat16"}, "meta-llama/Llama-3.1-8B", "bf16"),
    ({"torch_dtype": "float16"}, "meta-llama/Llama-2-7b-hf", "bf16"),  # served at 16 bits either way
    ({"text_config": {"torch_dtype": "bfloat16"}}, None, "bf16"),  # multimodal wrapper
    ({"quantization_config": FP8_BLOCKS}, "deepseek-ai/DeepSeek-V3", "fp8"),
    ({"quantization_config": FP8_BLOCKS, "expert_dtype": "fp4"}, "deepseek-ai/DeepSeek-V4-Flash", "int4"),
    ({"quantization_config": {"quant_method": "mxfp4"}}, "openai/gpt-oss-120b", "int4"),
    ({"quantization_config": {"quant_method": "awq", "bits": 4}}, None, "int4"),
    ({"quantization_config": {"quant_method": "gptq", "bits": 8}}, None, "int8"),
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": _group(4, "int")}}},
     "moonshotai/Kimi-K2.5", "int4"),
    ({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}}, "nvidia/GLM-5.1-NVFP4", "fp4"),
    # mixed groups read at the narrowest (the MoE experts'): FP8 attention, NVFP4 experts
    ({"quantization_config": {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
                              "config_groups": {"a": _group(8, "float"), "b": _group(4, "float")}}}, None, "fp4"),
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
    ({"quantization_config": {"quant_method": "gptq", "bits": 3}}, None, "3 bits"),
    ({}, None, "no torch_dtype"),
])
def test_an_unreadable_or_contradicted_format_is_not_recorded(cfg: dict, repo: str | None, why: str) -> None:
    dtype, reason = checkpoint_dtype(cfg, repo)
    assert dtype is None and why in reason


def _cited_file(citation: str) -> Path | None:
    found = re.search(r"tests/data/hf-configs/(\S+_config\.json)", citation)
    return CONFIGS / found.group(1) if found else None


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


def test_the_importer_records_the_checkpoint_dtype() -> None:
    spec, _ = import_model(CONFIGS / "deepseek-ai--DeepSeek-V3_config.json")
    assert spec.weight_dtype_published == "fp8" and spec.sources["weight_dtype_published"]
    spec, _ = import_model(CONFIGS / "nvidia--DeepSeek-V3.1-NVFP4_config.json")
    assert spec.weight_dtype_published is None  # NVFP4 by name, not by its config.json


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
