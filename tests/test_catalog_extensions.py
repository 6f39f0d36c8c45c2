"""User catalogs, price overrides, no silent truncation, draft/tokenizer compatibility, and every
issue #13 model answered at 128k prompts on H200, B200 and MI355X."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from statistics import NormalDist

import pytest
import tomli_w
from support import HARDWARE_TOML, SCENARIO_TOML, with_dotted

from planner.catalog import load_catalog, repick_drafter

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
NEW_MODELS = ["deepseek-v3.1", "deepseek-v3.2", "deepseek-v4-pro", "deepseek-v4-flash", "deepseek-r1", "kimi-k2",
              "kimi-k2.5", "kimi-k2.6", "glm-5", "glm-5.1", "qwen3-coder-480b-a35b", "qwen3.5-397b-a17b",
              "qwen3.5-122b-a10b", "qwen3.6-35b-a3b", "minimax-m2.5", "minimax-m3", "llama-4-scout",
              "llama-4-maverick", "nemotron-3-super-120b-a12b"]


# ---------------------------------------------------------------------- models list and eval at 128k


def test_models_list_shows_the_new_models_with_their_windows(invoke):
    result = invoke("models", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert rows["deepseek-v4-pro"]["max_context"] == 1_048_576
    assert rows["qwen3.5-397b-a17b"]["max_context"] == 262_144
    assert set(NEW_MODELS) <= set(rows)


def test_eval_answers_every_new_model_at_128k_and_says_why_one_does_not_fit(invoke, tmp_path):
    lines = []
    for model in NEW_MODELS:
        for hw in ("h200-sxm", "b200", "mi355x"):
            lines.append(f'[[case]]\nhardware = "{hw}"\nmodel = "{model}"\nchips = 8\nbatch = "max"\n'
                         'input = 131072\noutput = 1024\nweight_dtype = "fp8"\nkv_dtype = "fp8"\n')
    cases = tmp_path / "cases.toml"
    cases.write_text("\n".join(lines))
    result = invoke("eval", "--cases", cases, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 3 * len(NEW_MODELS)
    for row in rows:
        if row["fits"]:
            assert row["ttft_s"] > 0 and row["tpot_s"] > 0 and row["batch"] >= 1, row
        else:
            assert row["reason"], row
    by = {(r["model"], r["hardware"]): r for r in rows}
    # DeepSeek-V4-Pro (1.57T parameters derived) at FP8 is ~197 GB per H200: it cannot fit on 8 of them
    assert not by[("deepseek-v4-pro", "h200-sxm")]["fits"]
    assert "weights need" in by[("deepseek-v4-pro", "h200-sxm")]["reason"]
    # Kimi K2's 131,072-token window is shorter than 131,072 + 1,024
    assert "context window" in by[("kimi-k2", "b200")]["reason"]
    assert by[("qwen3.5-397b-a17b", "b200")]["fits"]


def test_a_max_batch_case_where_nothing_fits_is_predicted_at_one_sequence(invoke):
    """`batch` is the batch the figures stand for: where not one sequence fits, `batch = "max"` is
    predicted at one (it read 0 beside a one-sequence TPOT and 3 tokens/s), `slots` says how many fit
    (0) and the reason says which memory ran out; a case that fits has slots >= its batch."""
    def row(model: str, chips: int, prompt: int) -> dict:
        result = invoke("eval", "--hardware", "h100-sxm", "--model", model, "--chips", str(chips), "--batch", "max",
                        "--input", str(prompt), "--output", "500", "--weight-dtype", "bf16", "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    weights = row("llama-3.1-405b", 1, 8000)  # 811 GB of weights on one 80 GB chip
    assert (weights["batch"], weights["slots"], weights["fits"]) == (1, 0, False)
    assert "weights need" in weights["reason"]
    assert weights["throughput_tok_s"] == pytest.approx(1.0 / weights["tpot_s"], rel=0.1)  # one sequence
    # 141 GB of weights: TP2 holds them on 2 x 77 GB usable but has no room for a 120k-token sequence's
    # KV; of the layouts of 2 chips, none fits, and the one closest to fitting (not 2 x TP1, whose
    # weights cannot fit at all) is reported
    no_kv = row("llama-3.1-70b", 2, 120000)
    assert (no_kv["batch"], no_kv["slots"], no_kv["fits"], no_kv["layout"]["tp"]) == (1, 0, False, 2)
    assert no_kv["layout_chosen"] == "closest to fitting (none fits)"
    assert "no room for one sequence" in no_kv["reason"]
    fits = row("llama-3.1-8b", 1, 8000)
    assert fits["fits"] and fits["slots"] >= fits["batch"] > 1


def test_a_small_memory_shortfall_is_stated_to_three_figures(invoke):
    """Llama 3.1 70B in BF16 over 576 Groq LPUs: 70.55e9 x 2 B / 576 = 0.245 GB of weights per chip
    against 230 MB x 0.9 = 0.207 GB of SRAM; at one decimal both read "0.2 GB" and the reason
    contradicted itself."""
    result = invoke("eval", "--hardware", "groq-lpu", "--model", "llama-3.1-70b", "--chips", "576", "--batch", "1",
                    "--input", "1000", "--output", "200", "--weight-dtype", "bf16", "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert not row["fits"]
    assert row["reason"].startswith("weights need 0.245 GB per chip but groq-lpu has 0.207 GB usable (0.23 GB x 0.9)")


def test_layouts_that_hold_a_sequence_but_not_the_load_are_still_ranked_by_throughput(invoke):
    """At 500 requests/s of 2k-token prompts every layout of 8 H100s saturates prefill; each holds
    sequences, so the pick stays the highest throughput (8 replicas, prefill utilisation 3.5 against
    13.3 for one 8-chip replica), not the least memory per chip."""
    result = invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "8", "--batch", "max",
                    "--input", "2000", "--output", "200", "--arrival-rps", "500", "--format", "json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert not got["fits"] and got["slots"] >= 1 and "saturates prefill" in got["reason"]
    assert (got["replicas"], got["layout_chosen"]) == (8, "best throughput")


# ---------------------------------------------------------------------- user catalogs


def _user_model_toml(model_id: str = "my-llama") -> str:
    return f"""
[sources]
mine = "my own measurement of a fine-tune (test fixture)"

[[model]]
id = "{model_id}"
name = "My Llama"
hf_repo = "me/my-llama"
attention = "gqa"
layers = 32
hidden = 4096
heads = 32
kv_heads = 8
head_dim = 128
ffn_dim = 14336
vocab = 128256
max_context = 65536
tokenizer = "llama-128256"
draft_models = ["llama-3.2-1b"]

[model.sources]
layers = "mine"
hidden = "mine"
heads = "mine"
kv_heads = "mine"
head_dim = "mine"
ffn_dim = "mine"
vocab = "mine"
max_context = "mine"
"""


def test_catalog_flag_adds_a_model_and_an_accelerator(invoke, tmp_path):
    (tmp_path / "models.toml").write_text(_user_model_toml())
    (tmp_path / "gpu.toml").write_text(HARDWARE_TOML)
    result = invoke("--catalog", tmp_path, "eval", "--hardware", "test-gpu", "--model", "my-llama",
                    "--chips", "1", "--input", "1000", "--output", "100", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "my-llama"
    listed = invoke("--catalog", tmp_path / "models.toml", "models", "list", "--format", "json")
    assert "my-llama" in {r["id"] for r in json.loads(listed.stdout)}
    assert "my-llama" not in {r["id"] for r in json.loads(invoke("models", "list", "--format", "json").stdout)}


def test_env_catalog_overrides_a_bundled_entry(invoke, tmp_path, monkeypatch):
    path = tmp_path / "override.toml"
    path.write_text(_user_model_toml("llama-3.1-8b").replace("max_context = 65536", "max_context = 12345"))
    monkeypatch.setenv("PLANNER_CATALOG", str(path))
    result = invoke("models", "show", "llama-3.1-8b", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_context"] == 12345


def test_scenario_catalog_key_is_relative_to_the_scenario(invoke, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "models.toml").write_text(_user_model_toml())
    scenario = tmp_path / "s.toml"
    scenario.write_text('catalog = ["cat/models.toml"]\n' + SCENARIO_TOML.replace('"llama-3.1-8b"', '"my-llama"'))
    result = invoke("validate", scenario)
    assert result.exit_code == 0, result.output
    assert "model my-llama" in result.stdout


def test_a_bad_user_catalog_is_one_line_naming_file_and_field(invoke, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(_user_model_toml().replace("layers = 32\n", "layers = -1\n", 1))
    result = invoke("--catalog", path, "models", "list")
    assert result.exit_code == 2 and result.stdout == ""
    line, = result.stderr.strip().splitlines()
    assert str(path) in line and "layers" in line


def test_an_id_twice_in_one_catalog_file_is_bad_input(invoke, tmp_path):
    """The second entry silently replaced the first; validate said "ok (2 models: my-llama, my-llama)"."""
    text = _user_model_toml()
    models = tmp_path / "twice.toml"
    models.write_text(text + text[text.index("[[model]]"):])
    for args in (("validate", models), ("--catalog", models, "models", "list")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        line, = result.stderr.strip().splitlines()
        assert str(models) in line and "model.1: id 'my-llama' is already used by model.0" in line
    hardware = tmp_path / "gpus.toml"
    hardware.write_text(HARDWARE_TOML + HARDWARE_TOML[HARDWARE_TOML.index("[[accelerator]]"):])
    result = invoke("validate", hardware)
    assert result.exit_code == 2 and "accelerator.1: id 'test-gpu' is already used by accelerator.0" in result.stderr


def test_missing_catalog_path_is_bad_input(invoke, tmp_path):
    result = invoke("--catalog", tmp_path / "nope.toml", "models", "list")
    assert result.exit_code == 2 and "nope.toml" in result.stderr


def test_scenario_model_can_be_a_config_json(invoke, tmp_path):
    (tmp_path / "config.json").write_text((CONFIGS / "Qwen--Qwen3-8B_config.json").read_text())
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO_TOML.replace('"llama-3.1-8b"', '"config.json"'))
    result = invoke("validate", scenario)
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------- prices


def test_price_flag_and_scenario_prices_override_the_catalog(invoke, tmp_path):
    args = ("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "1", "--input", "1000",
            "--output", "100", "--format", "json")
    assert json.loads(invoke("--price", "h100-sxm=1.90", *args).stdout)["cost_per_hour"] == pytest.approx(1.90)
    assert invoke("--price", "h100=1.90", *args).exit_code == 2
    assert invoke("--price", "h100-sxm=cheap", *args).exit_code == 2
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO_TOML + '\n[prices]\n"h100-sxm" = 1.90\nb200 = { usd_per_hour = 3.0, kind = "spot" }\n')
    assert invoke("validate", scenario).exit_code == 0
    from planner.catalog import for_scenario
    from planner.cli.file_cmds import load_scenario

    sc = load_scenario(scenario)
    cat = for_scenario(load_catalog(), sc)
    assert cat.accelerator("h100-sxm").usd_per_hour == 1.90
    assert (cat.accelerator("b200").usd_per_hour, cat.accelerator("b200").price_kind) == (3.0, "spot")
    assert load_catalog().accelerator("h100-sxm").usd_per_hour != 1.90  # nothing leaks into the bundled catalog
    assert cat.citation(cat.accelerator("b200"), "usd_per_hour").startswith("set by the user (prices)")


def test_a_price_set_by_the_user_cites_the_user(invoke):
    """`hardware show` cited the catalog's price page beside the user's price."""
    bundled = load_catalog().accelerator("h100-sxm")
    doc = json.loads(invoke("--price", "h100-sxm=1.9", "hardware", "show", "h100-sxm", "--format", "json").stdout)
    assert doc["usd_per_hour"] == 1.9 and doc["price_kind"] == "user"
    assert doc["source_keys"]["usd_per_hour"] == "user-price"
    assert doc["sources"]["usd_per_hour"] == (f"set by the user (--price); the catalog's ${bundled.usd_per_hour:g}/h "
                                              f"({bundled.price_provider}, {bundled.price_date}) replaced")
    table = invoke("--price", "h100-sxm=1.9", "hardware", "show", "h100-sxm").stdout
    assert "user-price" in table and bundled.sources["usd_per_hour"] not in table.split("sources")[0]


# ---------------------------------------------------------------------- no silent truncation

LONG = SCENARIO_TOML.replace("input_tokens = { median = 2000, p90 = 8000 }",
                             "input_tokens = { median = 96000, p90 = 200000 }")


def _share_above_128k() -> float:
    """Hand-derived: log-normal through (96k, p90 200k) => sigma = ln(200/96) / z90; prompt + output
    > 131,072. The output (median 300, p90 1000) is small, so the prompt share is within 0.4 pt."""
    sigma = math.log(200 / 96) / NormalDist().inv_cdf(0.9)
    return 1 - NormalDist().cdf(math.log(131_072 / 96_000) / sigma)


def test_truncation_warning_in_table_json_validate_and_strict(invoke, tmp_path):
    scenario = tmp_path / "long.toml"
    scenario.write_text(LONG)
    prompt_share = _share_above_128k()  # 29.3 %
    table = invoke("solve", scenario)
    assert table.exit_code in (0, 1), table.output
    header = table.stdout.splitlines()[:3]
    warning = next(line for line in header if line.startswith("warning:"))
    assert "llama-3.1-8b's context window of 131,072 tokens" in warning
    assert f"{prompt_share:.1%} by the prompt alone" in table.stdout
    data = json.loads(invoke("solve", scenario, "--format", "json").stdout)
    # the window warning comes first; the quality floor adds its own (4-bit KV at a 96k median)
    assert f"{prompt_share:.1%}" in data["warnings"][0]
    assert all("context window" not in w for w in data["warnings"][1:])
    assert "warning:" in invoke("validate", scenario).stdout
    emitted = invoke("solve", scenario, "--emit", "vllm")  # a launch command is no place to drop it
    assert emitted.exit_code == 0 and emitted.stdout.startswith("#"), emitted.output
    assert "llama-3.1-8b's context window of 131,072 tokens" in emitted.stderr
    assert f"{prompt_share:.1%} by the prompt alone" in emitted.stderr
    strict = invoke("solve", scenario, "--strict")
    assert strict.exit_code == 2 and strict.stdout == ""
    assert "--strict" in strict.stderr and len(strict.stderr.strip().splitlines()) == 1
    short = tmp_path / "short.toml"
    short.write_text(SCENARIO_TOML)
    assert json.loads(invoke("solve", short, "--format", "json").stdout)["warnings"] == []
    assert invoke("solve", short, "--strict").exit_code in (0, 1)


def test_truncation_warning_in_the_tui_status_line(tmp_path):
    import asyncio

    from test_tui import SIZE, make_app, scenario_data, settle

    from planner.tui.document import ScenarioDocument

    async def run() -> str:
        data = scenario_data()
        catalog = load_catalog()
        document = ScenarioDocument(data=data, catalog=catalog, origin="bundled: test.toml")
        document.validate()
        document.saved = document.scenario
        app = make_app(tmp_path, catalog=catalog)
        app.document = document
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            return app.status.message

    message = asyncio.run(run())
    # the TUI fixture scenario: Llama 3.3 70B, prompts median 96k / p90 200k, outputs median 500
    assert message.startswith("warning: ") and "llama-3.3-70b's 131,072-token window" in message


# ---------------------------------------------------------------------- drafts and tokenizers


def test_a_draft_with_another_tokenizer_is_an_error_naming_both(invoke, tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO_TOML.replace('"llama-3.1-8b"', '"qwen3-32b"')
                        + '\n[speculative]\nmethod = "draft"\ndraft_model = "llama-3.2-1b"\n')
    result = invoke("validate", scenario)
    assert result.exit_code == 2
    line, = result.stderr.strip().splitlines()
    assert "llama-3.2-1b" in line and "qwen3-32b" in line and "tokenizer" in line
    # in a cases file the case gets its row with the reason (the rest of the file is answered)
    case = invoke("eval", "--cases", _case(tmp_path, 'model = "qwen3-32b"\ndraft = "llama-3.2-1b"\nspec_k = 2'),
                  "--format", "json")
    row, = json.loads(case.stdout)
    assert case.exit_code == 0 and not row["fits"] and "tokenizer" in row["reason"]


def _case(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "cases.toml"
    path.write_text(f'[[case]]\nhardware = "h100-sxm"\nchips = 1\nbatch = 1\ninput = 100\noutput = 10\n{extra}\n')
    return path


def test_switching_the_target_re_picks_a_compatible_draft():
    cat = load_catalog()
    # Qwen3-32B: the smallest Qwen-tokenizer model replaces the Llama draft
    assert repick_drafter(cat, cat.model("qwen3-32b"), "draft", "llama-3.2-1b")[:2] == ("draft", "qwen3-0.6b")
    # DeepSeek-V3.2: no smaller DeepSeek-tokenizer model, but an MTP head
    assert repick_drafter(cat, cat.model("deepseek-v3.2"), "draft", "llama-3.2-1b")[:2] == ("mtp", None)
    # Kimi K2: neither a same-tokenizer draft nor an MTP head: speculation off, with the reason
    method, draft, why = repick_drafter(cat, cat.model("kimi-k2"), "draft", "llama-3.2-1b")
    assert (method, draft) == ("none", None) and "kimi-k2" in why
    # a compatible draft is kept
    assert repick_drafter(cat, cat.model("llama-3.1-70b"), "draft", "llama-3.2-1b") == ("draft", "llama-3.2-1b", None)


def test_a_target_without_mtp_heads_loses_mtp_speculation_to_a_draft_or_to_none():
    cat = load_catalog()
    method, draft, why = repick_drafter(cat, cat.model("llama-3.3-70b"), "mtp", None)
    assert (method, draft) == ("draft", "llama-3.2-1b") and "no multi-token-prediction head" in why
    method, draft, why = repick_drafter(cat, cat.model("kimi-k2"), "mtp", None)
    assert (method, draft) == ("none", None) and "kimi-k2" in why
    assert repick_drafter(cat, cat.model("deepseek-v3"), "mtp", None) == ("mtp", None, None)


def test_setting_another_model_re_picks_speculation_with_a_warning(capsys):
    """The bundled scenario speculates with DeepSeek-V4-Flash's MTP head; `--set model.id=` another
    model serves it with that model's drafter (or none) and says so, instead of refusing the file.
    A speculative setting the user passes themselves is checked as written."""
    from planner.cli.file_cmds import load_scenario
    from planner.errors import PlannerError

    path = Path(__file__).parent.parent / "scenarios" / "agentic-coding.toml"
    assert load_scenario(path).speculative.method == "mtp"
    scenario = load_scenario(path, ["model.id=llama-3.3-70b"])
    spec = scenario.speculative
    assert (spec.method, spec.draft_model) == ("draft", "llama-3.2-1b")
    assert "--set model.id=llama-3.3-70b: speculation now drafts with llama-3.2-1b" in capsys.readouterr().err
    with pytest.raises(PlannerError, match="draft_model"):
        load_scenario(path, ["model.id=qwen3-32b", "speculative.method=draft", "speculative.draft_model=llama-3.2-1b"])


def test_tui_model_switch_repicks_the_draft(tmp_path):
    from planner.tui.document import ScenarioDocument

    doc = ScenarioDocument.from_file(Path(__file__).parent.parent / "scenarios" / "studies" / "speculative-context.toml",
                                     load_catalog())
    doc.set("speculative.method", "draft")
    doc.set("speculative.draft_model", "llama-3.2-1b")
    doc.set("model.id", "qwen3-32b")
    message = doc.repick_drafter()
    assert doc.validate() is not None, doc.errors
    assert doc.get("speculative.draft_model") == "qwen3-0.6b" and "qwen3-0.6b" in message


def test_tui_model_switch_away_from_an_mtp_model_keeps_the_scenario_valid():
    """The bundled scenario speculates with DeepSeek-V4-Flash's MTP head; switching the TUI's model to
    one without MTP heads used to leave `speculative.method = "mtp"` for a model that cannot run it."""
    from planner.tui.document import ScenarioDocument

    doc = ScenarioDocument.from_file(Path(__file__).parent.parent / "scenarios" / "agentic-coding.toml", load_catalog())
    doc.set("model.id", "llama-3.3-70b")
    assert "llama-3.2-1b" in doc.repick_drafter()
    assert doc.validate() is not None, doc.errors
    assert (doc.get("speculative.method"), doc.get("speculative.draft_model")) == ("draft", "llama-3.2-1b")


def test_eval_table_marks_uncalibrated_hardware_and_says_where_its_priors_come_from(invoke):
    args = ("--model", "llama-3.1-8b", "--chips", "1", "--batch", "1", "--input", "1000", "--output", "100")
    marked = invoke("eval", "--hardware", "mi355x", *args)
    assert marked.exit_code == 0
    assert "mi355x*" in marked.stdout
    assert "* uncalibrated" in marked.stdout and "mi355x: priors from cdna3's fit" in " ".join(marked.stdout.split())
    fitted = invoke("eval", "--hardware", "h100-sxm", *args)
    assert fitted.exit_code == 0 and "uncalibrated" not in fitted.stdout and "h100-sxm*" not in fitted.stdout


# ---------------------------------------------------------------------- probe fixes (twenty-eighth session)


def test_a_listed_draft_that_cannot_draft_is_refused_where_the_catalog_is_read(invoke, tmp_path):
    """`eval --spec-k` took a user model's first listed draft, another tokenizer's, and failed with
    an internal error (exit 3); the catalog now refuses the entry, naming the file, model and draft."""
    other = tmp_path / "other-tokenizer.toml"
    other.write_text(_user_model_toml().replace('tokenizer = "llama-128256"', 'tokenizer = "mistral-32000"'))
    bigger = tmp_path / "bigger.toml"
    bigger.write_text(_user_model_toml().replace('["llama-3.2-1b"]', '["llama-3.1-70b"]'))
    for path, why in ((other, "tokenizer"), (bigger, "not smaller")):
        result = invoke("--catalog", path, "eval", "--hardware", "h100-sxm", "--model", "my-llama", "--spec-k", "2")
        assert result.exit_code == 2 and result.stdout == "", result.output
        line, = result.stderr.strip().splitlines()
        assert str(path) in line and "my-llama" in line and "draft_models[0]" in line and why in line
        checked = invoke("validate", path)
        assert checked.exit_code == 2 and why in checked.stderr


def test_an_eval_case_drafting_with_a_larger_model_says_why(invoke, tmp_path):
    """Without spec_method a case's draft was not checked for size, and the lowering asserted (exit 3);
    in a cases file that case's row says why (`draft` is a cases-file key only)."""
    result = invoke("eval", "--cases", _case(tmp_path, 'model = "llama-3.1-8b"\ndraft = "llama-3.1-70b"\nspec_k = 2'),
                    "--format", "json")
    assert result.exit_code == 0, result.output
    row, = json.loads(result.stdout)
    assert not row["fits"] and row["reason"].startswith("cannot evaluate: draft: ") and "not smaller" in row["reason"]


def test_validate_reads_a_catalog_file_as_the_catalog_flag_does(invoke, tmp_path):
    """A models file whose draft is a bundled model was refused ("not in the catalog"), and a file of
    both [[model]] and [[accelerator]] tables, which --catalog takes, was refused as a hardware file."""
    models = tmp_path / "models.toml"
    models.write_text(_user_model_toml())
    result = invoke("validate", models)
    assert result.exit_code == 0, result.output
    assert "valid models catalog (1 model: my-llama)" in result.stdout
    both = tmp_path / "both.toml"
    both.write_text(HARDWARE_TOML.replace("[sources]\n", '[sources]\nmine = "a fine-tune (test fixture)"\n', 1)
                    + "\n[[model]]" + _user_model_toml().split("[[model]]", 1)[1])
    assert invoke("--catalog", both, "eval", "--hardware", "test-gpu", "--model", "my-llama").exit_code == 0
    result = invoke("validate", both)
    assert result.exit_code == 0, result.output
    assert "1 accelerator: test-gpu; 1 model: my-llama" in result.stdout
    missing = tmp_path / "missing.toml"
    missing.write_text(_user_model_toml().replace('["llama-3.2-1b"]', '["no-such-model"]'))
    result = invoke("validate", missing)
    assert result.exit_code == 2 and "draft_models[0]: 'no-such-model' is not in the catalog" in result.stderr


@pytest.mark.parametrize("field", ["workload.arrival_rate_rps", "slo.ttft_p95_s", "workload.input_tokens.median"])
@pytest.mark.parametrize("value", ["true", '"3"'])
def test_a_boolean_or_quoted_number_in_a_numeric_field_is_bad_input(invoke, tmp_path, field, value):
    """`median = true` validated as a 1-token prompt and `arrival_rate_rps = "3"` as 3 req/s: TOML
    has numbers, and a value of another type is a typo, not a number."""
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(with_dotted(tomllib.loads(SCENARIO_TOML), {field: tomllib.loads(f"v = {value}")["v"]})))
    result = invoke("validate", path)
    assert result.exit_code == 2 and result.stdout == "", result.output
    line, = result.stderr.strip().splitlines()
    assert field in line and ("valid number" in line or "valid integer" in line)


def test_a_boolean_in_a_hardware_number_is_bad_input(invoke, tmp_path):
    path = tmp_path / "gpu.toml"
    path.write_text(HARDWARE_TOML.replace("hbm_gb = ", "hbm_gb = true\nx_was = ", 1).replace("x_was = ", "#", 1))
    result = invoke("validate", path)
    assert result.exit_code == 2, result.output
    assert "hbm_gb" in result.stderr


def test_eval_table_names_a_config_json_model_by_its_id(invoke, tmp_path):
    config = tmp_path / "Qwen3-32B" / "config.json"
    config.parent.mkdir()
    config.write_text((CONFIGS / "Qwen--Qwen3-32B_config.json").read_text())
    result = invoke("eval", "--hardware", "h200-sxm", "--model", config, "--chips", "8", "--batch", "1")
    assert result.exit_code == 0, result.output
    assert " qwen3-32b " in result.stdout and str(config) not in result.stdout


def test_a_case_missing_a_key_names_only_the_keys_a_case_needs(invoke, tmp_path):
    path = tmp_path / "cases.toml"
    path.write_text('[[case]]\nhardware = "h100-sxm"\nmodel = "llama-3.1-8b"\nchips = 1\nbatch = 1\ninput = 100\n')
    result = invoke("eval", "--cases", path)
    assert result.exit_code == 2
    assert "missing key 'output' (a case needs hardware, model, chips, batch, input, output;" in result.stderr


def test_hardware_show_says_what_an_unknown_field_is_assumed_to_be(invoke):
    result = invoke("hardware", "show", "h800")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "unknown (assumed 50 GB/s per chip" in rows["scale_out_gbps"]
    assert "unknown (assumed hopper's collective_latency_us" in rows["allreduce_latency_us"]


def test_models_list_and_show_give_the_counts_the_planner_sizes_weights_with(invoke, tmp_path):
    """An imported model publishes no counts: the list showed n/a / n/a while the planner sized it."""
    config = tmp_path / "mistralai--Mixtral-8x7B-v0.1_config.json"
    config.write_text((CONFIGS / "mistralai--Mixtral-8x7B-v0.1_config.json").read_text())
    imported = tmp_path / "mix.toml"
    imported.write_text(invoke("models", "import", config, "--id", "my-mixtral").stdout)
    listed = invoke("--catalog", imported, "models", "list")
    row, = [line for line in listed.stdout.splitlines() if line.startswith("my-mixtral ")]
    assert "~46.7B / ~12.9B" in row
    shown = json.loads(invoke("--catalog", imported, "models", "show", "my-mixtral", "--format", "json").stdout)
    assert round(shown["params_total_derived"] / 1e9, 1) == 46.7 and round(shown["params_active_derived"] / 1e9, 1) == 12.9


def test_a_whole_float_in_an_integer_field_is_that_integer(invoke, tmp_path):
    """Strict numbers refuse `true` and "3", not `median = 96000.0`: TOML writes a number either way."""
    path = tmp_path / "s.toml"
    data = with_dotted(tomllib.loads(SCENARIO_TOML), {"workload.input_tokens.median": 1000.0, "search.batch": [1.0, 8]})
    path.write_text(tomli_w.dumps(data))
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    data["workload"]["input_tokens"]["median"] = 1000.5
    path.write_text(tomli_w.dumps(data))
    result = invoke("validate", path)
    assert result.exit_code == 2 and "workload.input_tokens.median: Input should be a valid integer" in result.stderr


def test_a_prefix_reloaded_from_a_tier_the_hardware_lacks_is_not_a_figure(invoke, tmp_path):
    """tpu-v6e states no NVMe bandwidth: a 32k-token reload from NVMe read as a TTFT of ~4.3e9 s with fits = true."""
    path = tmp_path / "cases.toml"
    case = 'model = "llama-3.1-8b"\nchips = 1\nbatch = 1\ninput = 32768\noutput = 256\ncached_tokens = 32767\n'
    path.write_text(f'[[case]]\nhardware = "tpu-v6e"\n{case}cache_tier = "nvme"\n\n'
                    f'[[case]]\nhardware = "h100-sxm"\n{case}cache_tier = "nvme"\n')
    missing, present = json.loads(invoke("eval", "--cases", path, "--format", "json").stdout)
    assert missing["fits"] is False and missing["ttft_s"] is None
    assert missing["reason"].startswith("cache_tier nvme: tpu-v6e has no NVMe tier the model can time")
    assert present["fits"] is True and 0 < present["ttft_s"] < 10


def test_a_batch_that_does_not_split_over_pinned_replicas_is_bad_input(invoke):
    """batch 1 over 2 replicas ran half a sequence on each and reported batch 2."""
    result = invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "2", "--batch", "1",
                    "--replicas", "2")
    assert result.exit_code == 2 and "--batch: 1 sequences do not split evenly over replicas = 2" in result.stderr


def test_strict_turns_the_searchs_own_warnings_into_errors(invoke, tmp_path):
    """--strict checked only the context-window warning: a dtype a quality floor left out of the search
    was printed as a warning and the solve exited 0."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO_TOML + '\n[quality]\nweight_dtype_min = "fp8"\n')
    plain = invoke("solve", scenario)
    assert plain.exit_code == 0 and "not searched: below quality.weight_dtype_min = fp8" in plain.output
    strict = invoke("solve", scenario, "--strict")
    assert strict.exit_code == 2 and strict.stdout == ""
    assert "not searched: below quality.weight_dtype_min = fp8" in strict.stderr and "--strict" in strict.stderr


def test_csv_keeps_the_top_hardware_rows_the_table_shows(invoke):
    import csv
    import io

    table = json.loads(invoke("solve", "scenarios/chat.toml", "--top", "3", "--format", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(invoke("solve", "scenarios/chat.toml", "--top", "3", "--format", "csv").stdout)))
    aggregated = [r["hardware"] for r in rows if r["mode"] == "aggregated"]
    assert aggregated == [p["hardware"] for p in table["per_hardware"]]
    ranked = [p["hardware"] for p in json.loads(invoke("solve", "scenarios/chat.toml", "--format", "json").stdout)["per_hardware"]]
    assert len(ranked) > 3  # the cut is real
