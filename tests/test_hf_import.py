"""`planner models import` and config.json model references: every copied config imports, the
catalog entries agree with their config, parameter counts match what the model cards and names state,
and architectures the importer cannot interpret fail with one line naming the field."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from planner.catalog import load_catalog
from planner.hf_import import import_model
from planner.model.arch import param_counts

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
ALL = sorted(CONFIGS.glob("*_config.json"))

# Catalog IDs and the config each entry cites (tests/data/hf-configs/<owner>--<repo>_config.json).
ENTRIES = {
    "deepseek-r1": "deepseek-ai--DeepSeek-R1", "deepseek-v3.1": "nvidia--DeepSeek-V3.1-NVFP4",
    "deepseek-v3.2": "deepseek-ai--DeepSeek-V3.2", "deepseek-v4-pro": "deepseek-ai--DeepSeek-V4-Pro",
    "deepseek-v4-flash": "deepseek-ai--DeepSeek-V4-Flash", "kimi-k2": "moonshotai--Kimi-K2-Instruct",
    "kimi-k2.5": "moonshotai--Kimi-K2.5", "kimi-k2.6": "nvidia--Kimi-K2.6-NVFP4", "glm-5": "zai-org--GLM-5",
    "glm-5.1": "zai-org--GLM-5.1", "qwen3-coder-480b-a35b": "Qwen--Qwen3-Coder-480B-A35B-Instruct",
    "qwen3.5-397b-a17b": "Qwen--Qwen3.5-397B-A17B", "qwen3.5-122b-a10b": "Qwen--Qwen3.5-122B-A10B",
    "qwen3.6-35b-a3b": "nvidia--Qwen3.6-35B-A3B-NVFP4", "minimax-m2.5": "MiniMaxAI--MiniMax-M2.5",
    "minimax-m3": "MiniMaxAI--MiniMax-M3", "llama-4-scout": "meta-llama--Llama-4-Scout-17B-16E-Instruct",
    "llama-4-maverick": "meta-llama--Llama-4-Maverick-17B-128E-Instruct",
    "nemotron-3-super-120b-a12b": "nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-FP8",
    "qwen3-8b": "Qwen--Qwen3-8B", "qwen3.5-27b": "Qwen--Qwen3.5-27B", "qwen3.5-35b-a3b": "Qwen--Qwen3.5-35B-A3B",
    "qwen3.6-27b": "nvidia--Qwen3.6-27B-NVFP4", "kimi-k2.7-code": "nvidia--Kimi-K2.7-Code-NVFP4",
    "glm-5.2": "zai-org--GLM-5.2", "glm-5.3": "zai-org--GLM-5.3",
    "nemotron-3-nano-30b-a3b": "nvidia--NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
    "nemotron-3.5-lightning-30b-a3b": "nvidia--NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4",
    "mixtral-8x22b": "mistralai--Mixtral-8x22B-v0.1",
}
# The context windows, read by hand from each config.json's max_position_embeddings.
WINDOWS = {
    "deepseek-r1": 163_840, "deepseek-v3.1": 163_840, "deepseek-v3.2": 163_840, "deepseek-v4-pro": 1_048_576,
    "deepseek-v4-flash": 1_048_576, "kimi-k2": 131_072, "kimi-k2.5": 262_144, "kimi-k2.6": 262_144,
    "glm-5": 202_752, "glm-5.1": 202_752, "qwen3-coder-480b-a35b": 262_144, "qwen3.5-397b-a17b": 262_144,
    "qwen3.5-122b-a10b": 262_144, "qwen3.6-35b-a3b": 262_144, "minimax-m2.5": 196_608,
    "minimax-m3": 1_048_576, "llama-4-scout": 10_485_760, "llama-4-maverick": 1_048_576,
    "nemotron-3-super-120b-a12b": 262_144, "qwen3-8b": 40_960, "qwen3.5-27b": 262_144, "qwen3.5-35b-a3b": 262_144,
    "qwen3.6-27b": 262_144, "kimi-k2.7-code": 262_144, "glm-5.2": 1_048_576, "glm-5.3": 1_048_576,
    "nemotron-3-nano-30b-a3b": 262_144, "nemotron-3.5-lightning-30b-a3b": 1_048_576, "mixtral-8x22b": 65_536,
}
ARCH_FIELDS = ("attention", "layers", "hidden", "heads", "kv_heads", "head_dim", "vocab", "max_context",
               "experts_routed", "experts_active", "experts_shared", "moe_ffn_dim", "kv_lora_rank",
               "index_topk", "compress_ratios", "linear_layers", "mamba_layers", "attention_layers",
               "chunked_layers", "sliding_window_layers", "moe_layers", "dense_layers", "mtp_layers", "tokenizer")


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_every_required_model_is_in_the_catalog_with_its_window(cat):
    for model_id, window in WINDOWS.items():
        assert cat.model(model_id).max_context == window, model_id


@pytest.mark.parametrize("path", ALL, ids=[p.name.removesuffix("_config.json") for p in ALL])
def test_every_copied_config_imports(path):
    spec, sources = import_model(path)
    assert spec.layers > 0 and spec.max_context > 0
    assert all(key in sources for key in spec.sources.values())  # every number cites the file


@pytest.mark.parametrize("model_id", sorted(ENTRIES))
def test_catalog_entry_matches_its_config(cat, model_id):
    imported, _ = import_model(CONFIGS / f"{ENTRIES[model_id]}_config.json", model_id)
    entry = cat.model(model_id)
    for field in ARCH_FIELDS:
        assert getattr(entry, field) == getattr(imported, field), field
    assert ENTRIES[model_id] + "_config.json" in cat.model_sources[f"hf-{model_id}"]


# Published totals and active counts with the tolerance their statement allows: model cards state a
# figure to 2-3 significant digits (within 2 % here, plus what the rounding of the figure allows);
# repository names round to a marketing figure ("30B-A3B" for 31.6B / 3.6B with embeddings), so
# they get at least 8 % plus the rounding.
NAME_TOLERANCE = 0.08


def _tolerance(stated: float, named: bool = False) -> float:
    if named:
        return max(NAME_TOLERANCE, 0.02 + 0.5 / (stated / 1e9)) + 0.05 * (stated < 5e9)
    digits = f"{stated / 1e9:g}"
    unit = 10 ** -len(digits.split(".")[1]) if "." in digits else 1.0
    if stated >= 1e12:
        unit = 100.0 if stated % 1e12 else 500.0  # "1.6T" is +-50B, "1T" +-500B
    return 0.02 + unit / 2 / (stated / 1e9)


@pytest.mark.parametrize("model_id", sorted(ENTRIES))
def test_parameter_counts_match_what_is_published(cat, model_id):
    m = cat.model(model_id)
    counts = param_counts(m)
    checked = 0
    for stated, derived, field in ((m.params_total_published, counts.total, "params_total_published"),
                                   (m.params_active_published, counts.active, "params_active_published")):
        if stated:
            named = m.sources[field].startswith("name-")
            assert derived == pytest.approx(stated, rel=_tolerance(stated, named)), field
            checked += 1
    # no published count recalled reliably (MiniMax), or none recorded for a release (left unknown)
    if model_id not in ("minimax-m2.5", "minimax-m3", "kimi-k2.7-code", "glm-5.2", "glm-5.3"):
        assert checked, f"{model_id} has no published count to check"


# Configs that no catalog entry was written from: totals and actives from their repository names.
UNSEEN = ["Qwen--Qwen3-235B-A22B", "Qwen--Qwen3-VL-30B-A3B-Instruct", "nvidia--Nemotron-H-56B-Base-8K",
          "meta-llama--Meta-Llama-3.1-8B"]


@pytest.mark.parametrize("stem", UNSEEN)
def test_counts_of_configs_not_in_the_catalog(stem):
    spec, _ = import_model(CONFIGS / f"{stem}_config.json")
    counts = param_counts(spec)
    assert spec.params_total_published or spec.params_active_published
    if spec.params_total_published:
        total = spec.params_total_published
        assert counts.total == pytest.approx(total, rel=_tolerance(total, named=True))
    if spec.params_active_published:
        active = spec.params_active_published
        assert counts.active == pytest.approx(active, rel=_tolerance(active, named=True))


def test_import_command_prints_a_catalog_file_that_round_trips(invoke, tmp_path):
    config = CONFIGS / "deepseek-ai--DeepSeek-V3.2_config.json"
    result = invoke("models", "import", config, "--id", "my-v32")
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout)
    assert data["model"][0]["id"] == "my-v32" and data["model"][0]["index_topk"] == 2048
    assert "deepseek-ai/DeepSeek-V3.2 config.json" in data["sources"]["config-my-v32"]
    catalog = tmp_path / "mine.toml"
    catalog.write_text(result.stdout)
    shown = invoke("--catalog", catalog, "models", "show", "my-v32", "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["kv_bytes_per_token_bf16"] == 61 * (512 + 64 + 128) * 2


def test_import_json_format(invoke):
    result = invoke("models", "import", CONFIGS / "Qwen--Qwen3.5-397B-A17B_config.json", "--format", "json")
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"][0]
    assert (model["linear_layers"], model["params_total_published"]) == (45, 397e9)


@pytest.mark.parametrize(("edit", "field"), [
    ({"model_type": "mystery_lm"}, "model_type: 'mystery_lm' is not an architecture the importer knows"),
    ({"layer_types": ["full_attention"] * 35 + ["mamba3"]}, "layer_types[35]: 'mamba3' is not a layer kind"),
    ({"num_hidden_layers": None}, "num_hidden_layers: required field is missing"),
    ({"hidden_size": "big"}, "hidden_size: expected an integer"),
])
def test_unknown_architectures_fail_with_one_line_naming_the_field(invoke, tmp_path, edit, field):
    data = json.loads((CONFIGS / "openai--gpt-oss-120b_config.json").read_text())
    data.update(edit)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    result = invoke("models", "import", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and str(path) in lines[0]


def test_a_config_path_works_as_a_model_id_in_eval(invoke):
    config = CONFIGS / "Qwen--Qwen3.5-397B-A17B_config.json"
    result = invoke("eval", "--hardware", "h200-sxm", "--model", config, "--chips", "8", "--input", "8192",
                    "--output", "512", "--weight-dtype", "fp8", "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    catalog = invoke("eval", "--hardware", "h200-sxm", "--model", "qwen3.5-397b-a17b", "--chips", "8", "--input",
                     "8192", "--output", "512", "--weight-dtype", "fp8", "--format", "json")
    assert row["tpot_s"] == pytest.approx(json.loads(catalog.stdout)["tpot_s"], rel=1e-6)


def test_a_config_path_in_a_cases_file_is_relative_to_it(invoke, tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text((CONFIGS / "Qwen--Qwen3-8B_config.json").read_text())
    cases = tmp_path / "cases.toml"
    cases.write_text('[[case]]\nhardware = "h100-sxm"\nmodel = "cfg/config.json"\nchips = 1\nbatch = 1\n'
                     'input = 1024\noutput = 128\nweight_dtype = "fp8"\n')
    result = invoke("eval", "--cases", cases, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["fits"] is True


def test_a_config_the_importer_cannot_read_is_a_row_in_a_cases_file(invoke, tmp_path):
    bad = json.loads((CONFIGS / "Qwen--Qwen3-8B_config.json").read_text()) | {"model_type": "mystery_lm"}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "good.json").write_text((CONFIGS / "Qwen--Qwen3-8B_config.json").read_text())
    case = 'hardware = "h100-sxm"\nchips = 1\nbatch = 1\ninput = 1024\noutput = 128\nweight_dtype = "fp8"\n'
    cases = tmp_path / "cases.toml"
    cases.write_text(f'[[case]]\nmodel = "bad.json"\n{case}\n[[case]]\nmodel = "good.json"\n{case}')
    result = invoke("eval", "--cases", cases, "--format", "json")
    assert result.exit_code == 0, result.output
    bad_row, good_row = json.loads(result.stdout)
    assert bad_row["fits"] is False and "model_type: 'mystery_lm'" in bad_row["reason"] and bad_row["ttft_s"] is None
    assert good_row["fits"] is True and good_row["ttft_s"] > 0


def test_glm_5_2_indexer_sharing_is_read_without_layer_types():
    """zai-org's GLM-5.2 lists `indexer_types` (21 'full' of 78 layers; 'shared' layers reuse the
    top-k) but, unlike NVIDIA's NVFP4 copy, no `layer_types`: both must give the same architecture,
    and the indexer's prefill cost (quadratic in the prompt) must count 21 layers, not 78."""
    zai, _ = import_model(CONFIGS / "zai-org--GLM-5.2_config.json")
    nvidia, _ = import_model(CONFIGS / "nvidia--GLM-5.2-NVFP4_config.json")
    assert zai.indexer_layers == nvidia.indexer_layers == 21
    assert zai.sparse_layers in (None, zai.layers) and nvidia.sparse_layers == nvidia.layers


def test_minimax_lightning_attention_layers_are_read_from_attn_type_list(tmp_path):
    """MiniMax-Text-01 / M1 mark each layer in `attn_type_list`: 0 lightning (linear) attention, 1
    softmax, one softmax layer after every seven lightning ones (MiniMax-01 report). They used to import
    as all-softmax GQA (KV for 80 layers, not 10). No copy of their config.json is bundled, so this
    builds Text-01's shape on the real MiniMax-M2.5 file (same config family) with the report's
    numbers, and checks the published size: 456B parameters, 45.9B activated per token (embeddings
    not counted)."""
    config = json.loads((CONFIGS / "MiniMaxAI--MiniMax-M2.5_config.json").read_text())
    config.update(model_type="minimax_text_01", num_hidden_layers=80, hidden_size=6144, num_attention_heads=64,
                  num_key_value_heads=8, head_dim=128, intermediate_size=9216, num_local_experts=32,
                  num_experts_per_tok=2, attn_type_list=[1 if (i + 1) % 8 == 0 else 0 for i in range(80)])
    for key in ("use_mtp", "mtp_transformer_layers", "num_mtp_modules"):
        config.pop(key)
    path = tmp_path / "minimax-text-01_config.json"
    path.write_text(json.dumps(config))
    spec, _ = import_model(path)
    assert spec.linear_layers == 70 and spec.linear_value_heads == 64 and spec.linear_value_head_dim == 128
    counts = param_counts(spec)
    assert counts.total == pytest.approx(456e9, rel=0.01)
    assert counts.active - counts.embed - counts.lm_head == pytest.approx(45.9e9, rel=0.01)
    # M2.5's own list is all softmax: nothing changes for it
    m25, _ = import_model(CONFIGS / "nvidia--MiniMax-M2.5-NVFP4_config.json")
    assert not m25.linear_layers
    config["attn_type_list"][3] = 2
    path.write_text(json.dumps(config))
    with pytest.raises(Exception, match="attn_type_list"):
        import_model(path)


def test_a_multimodal_config_says_only_its_language_model_is_read():
    vl, _ = import_model(CONFIGS / "Qwen--Qwen3-VL-30B-A3B-Instruct_config.json")
    text, _ = import_model(CONFIGS / "Qwen--Qwen3-235B-A22B_config.json")
    assert "vision encoder" in vl.notes and "vision encoder" not in text.notes


def test_import_errors_name_a_folder_and_a_missing_model_type(invoke, tmp_path):
    """A folder given for its config.json said "file not found"; a config without model_type said
    "'None' is not an architecture"; a cases file's missing config read "cannot evaluate: cannot
    evaluate: ...". Each is now one plain line."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 10}')
    result = invoke("models", "import", folder)
    assert result.exit_code == 2 and "a folder, not a config.json (give the file; its" in result.stderr
    result = invoke("models", "import", folder / "config.json")
    assert result.exit_code == 2 and "model_type: missing" in result.stderr and "'None'" not in result.stderr
    cases = tmp_path / "cases.toml"
    cases.write_text('[[case]]\nhardware = "h100-sxm"\nmodel = "missing.json"\nchips = 1\nbatch = 1\n'
                     'input = 100\noutput = 10\n')
    rows = json.loads(invoke("eval", "--cases", cases, "--format", "json").stdout)
    assert rows[0]["reason"].count("cannot evaluate") == 1 and "file not found" in rows[0]["reason"]


def test_the_hugging_face_cache_layout_names_the_repository(invoke, tmp_path):
    """`models--owner--Repo/snapshots/<revision>/config.json` was imported as id and repo "<revision>"."""
    source = CONFIGS / "nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-FP8_config.json"
    cached = tmp_path / "models--nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-FP8" / "snapshots" / "0123abcd" / "config.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(source.read_text())
    entry = tomllib.loads(invoke("models", "import", cached).stdout)["model"][0]
    assert (entry["id"], entry["hf_repo"]) == ("nvidia-nemotron-3-super-120b-a12b-fp8",
                                               "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8")
    assert entry["params_total_published"] == 120e9  # the repository's name states it


def test_a_plain_folder_names_the_model_but_is_not_cited_as_its_repository(invoke, tmp_path):
    """`~/Downloads/config.json` gave hf_repo = "Downloads"; a folder's name is not a repository."""
    folder = tmp_path / "Downloads" / "config.json"
    folder.parent.mkdir()
    folder.write_text((CONFIGS / "Qwen--Qwen3-32B_config.json").read_text())
    data = tomllib.loads(invoke("models", "import", folder).stdout)
    entry = data["model"][0]
    assert (entry["id"], entry["name"], entry["hf_repo"]) == ("downloads", "Downloads", "unknown")
    assert not any("repository name" in text for text in data["sources"].values())


def test_a_cached_config_is_named_by_its_snapshot_path_not_its_blob(invoke, tmp_path, monkeypatch):
    """The cache's snapshots/<rev>/config.json is a link to blobs/<hash>: eval named the model by the
    hash, a scenario could not find it, and a relative path from inside the cache named the revision."""
    repo = tmp_path / "hub" / "models--Qwen--Qwen3-32B"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "9f8e7d6c5b4a").write_text((CONFIGS / "Qwen--Qwen3-32B_config.json").read_text())
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").symlink_to("../../blobs/9f8e7d6c5b4a")
    config = repo / "snapshots" / "abc123" / "config.json"
    result = invoke("eval", "--hardware", "h200-sxm", "--model", config, "--chips", "8", "--batch", "1")
    assert result.exit_code == 0, result.output
    assert " qwen3-32b " in result.stdout and "9f8e7d6c5b4a" not in result.stdout
    monkeypatch.chdir(repo)
    entry = tomllib.loads(invoke("models", "import", "snapshots/abc123/config.json").stdout)["model"][0]
    assert (entry["id"], entry["hf_repo"]) == ("qwen3-32b", "Qwen/Qwen3-32B")
    gpt2 = tmp_path / "models--gpt2" / "snapshots" / "r1" / "config.json"
    gpt2.parent.mkdir(parents=True)
    gpt2.write_text((CONFIGS / "Qwen--Qwen3-32B_config.json").read_text())
    assert tomllib.loads(invoke("models", "import", gpt2).stdout)["model"][0]["hf_repo"] == "gpt2"
