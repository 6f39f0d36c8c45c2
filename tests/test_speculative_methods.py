"""Speculative methods (issue #14 item 3): default curves from published measurements, drafter costs,
gains that shrink with batch, compatibility errors, and the method as a search decision.

Expected values are derived here from the sources' numbers (planner/data/speculative.toml cites
them), not read back from the code: e.g. an EAGLE-3 head measured at AL 2.295 with 3 draft tokens
must give 2.295 tokens per verify step at k = 3 and 2k context.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import with_dotted
from typer.testing import CliRunner

from planner import io, paths
from planner.catalog import load_catalog
from planner.cli import app
from planner.errors import InputFileError
from planner.grid import build_grid
from planner.lowering import config_arrays, hardware_arrays, model_arrays
from planner.model import numpy_reference
from planner.model.decode import device_step_time
from planner.model.speculative import acceptance, draft_step_time, speculative_step, tokens_per_step
from planner.schema import Scenario
from planner.schema.scenario import SPEC_METHODS, Speculative
from planner.speculative_methods import alpha_from_length, drafter, incompatibility

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def spec_for(catalog, model: str, method: str, **settings_):
    target = catalog.model(model)
    fields = {"method": method, **settings_}
    if method == "draft" and "draft_model" not in fields:
        fields["draft_model"] = target.draft_models[0]
    return drafter(method, catalog, target, Speculative(**fields))


def tokens(spec, context: float, k: int) -> float:
    return float(tokens_per_step(acceptance(spec, np.float32(context)), np.float32(k)))


# --- acceptance at given contexts, from the published numbers ------------------------------------

@pytest.mark.parametrize(("context", "al"), [(2000, 2.295), (8000, 1.687), (16000, 1.090), (20000, 1.084)])
def test_short_trained_eagle3_reproduces_its_acceptance_lengths(catalog, context, al):
    """Qwen3-8B EAGLE-3 (LongBench-v2, 3 draft tokens): AL 2.295 at 2k falls to 1.09 by 16k."""
    spec = spec_for(catalog, "llama-3.1-8b", "eagle3").spec
    assert tokens(spec, context, 3) == pytest.approx(al, abs=2e-3)


def test_short_trained_eagle3_is_linear_between_points_and_flat_outside(catalog):
    spec = spec_for(catalog, "llama-3.1-8b", "eagle3").spec
    a2, a4 = alpha_from_length(2.295, 3), alpha_from_length(2.040, 3)
    assert float(acceptance(spec, np.float32(3000))) == pytest.approx((a2 + a4) / 2, abs=1e-5)
    assert tokens(spec, 500, 3) == pytest.approx(2.295, abs=2e-3)  # below the first measurement
    assert tokens(spec, 128_000, 3) == pytest.approx(1.084, abs=2e-3)  # past the last


def test_long_trained_eagle3_stays_flat_to_32k(catalog):
    spec = spec_for(catalog, "llama-3.1-8b", "eagle3", curves=["eagle3-long"]).spec
    assert tokens(spec, 1000, 3) == pytest.approx(2.69, abs=2e-3)
    assert tokens(spec, 32000, 3) == pytest.approx(2.65, abs=2e-3)


def test_self_speculation_uses_the_measured_acceptance_rate(catalog):
    """MagicDec (StreamingLLM draft KV of 512 tokens): 0.82 at 16k, 0.81 at 32k, 0.79 from 64k."""
    spec = spec_for(catalog, "llama-3.1-8b", "self").spec
    assert float(acceptance(spec, np.float32(16000))) == pytest.approx(0.82, abs=1e-6)
    assert float(acceptance(spec, np.float32(24000))) == pytest.approx(0.815, abs=1e-6)
    assert float(acceptance(spec, np.float32(100_000))) == pytest.approx(0.79, abs=1e-6)
    assert float(acceptance(spec, np.float32(1000))) == pytest.approx(0.84, abs=1e-6)


def test_mtp_acceptance_is_deepseeks_second_token_rate(catalog):
    spec = spec_for(catalog, "deepseek-v3", "mtp").spec
    assert tokens(spec, 4000, 1) == pytest.approx(1.85, abs=1e-5)  # 1 + 0.85
    assert tokens(spec, 100_000, 2) == pytest.approx(1 + 0.85 + 0.85**2, abs=1e-5)  # context dependence unknown: flat


@pytest.mark.parametrize(("method", "curve", "speedup"), [
    ("suffix", None, 286 / 75.8), ("ngram", None, 175 / 75.8), ("suffix", "suffix-chat", 113 / 76.0),
    ("ngram", "ngram-chat", 91.2 / 76.0), ("draft", None, 1.5)])
def test_speedup_measurements_bound_acceptance_from_below(catalog, method, curve, speedup):
    """At batch 1 a verify step costs at least a plain one, so tokens per step >= the speedup; the
    geometric series with a long lookahead reaches exactly that: alpha = 1 - 1/speedup."""
    spec = spec_for(catalog, "llama-3.1-70b", method, **({"curves": [curve]} if curve else {})).spec
    alpha = float(acceptance(spec, np.float32(50_000)))
    assert alpha == pytest.approx(1 - 1 / speedup, abs=1e-4)
    assert tokens(spec, 50_000, 16) == pytest.approx(speedup, rel=0.02)


def test_scenario_values_override_the_default_curve(catalog):
    spec = spec_for(catalog, "llama-3.1-8b", "eagle3", acceptance_short=0.9, acceptance_long=0.5,
                    acceptance_context_tokens=10_000).spec
    assert float(acceptance(spec, np.float32(10_000))) == pytest.approx(0.5 + 0.4 * np.exp(-1), abs=1e-6)


# --- draft cost ---------------------------------------------------------------------------------

def _one(catalog, hw_id: str, model: str, chips: int, batch: float, k: int):
    acc = catalog.accelerator(hw_id)
    hw = hardware_arrays([acc], catalog)
    hw = type(hw)(*(np.float32(x[0]) for x in hw))
    cfg = config_arrays(chips=chips, batch=batch, weight_dtype="bf16", kv_dtype="bf16", spec_k=k)
    return model_arrays(catalog.model(model)), hw, cfg


def test_context_drafters_cost_no_device_time(catalog):
    """n-gram / suffix: the step is the verify step (k + 1 query tokens), nothing else on the device."""
    a, hw, cfg = _one(catalog, "h100-sxm", "llama-3.1-70b", 8, 1.0, 4)
    spec = spec_for(catalog, "llama-3.1-70b", "suffix").spec
    step, _ = speculative_step(a, hw, cfg, spec, 1.0, 30_000.0)
    assert float(draft_step_time(hw, cfg, spec, 1.0, 30_000.0)) == 0.0
    assert float(step) == pytest.approx(float(device_step_time(a, hw, cfg, 1.0, 30_000.0, 5.0)), rel=1e-6)


def test_host_drafting_time_is_counted_per_token_and_request(catalog):
    a, hw, cfg = _one(catalog, "h100-sxm", "llama-3.1-8b", 1, 256.0, 4)
    spec = spec_for(catalog, "llama-3.1-8b", "ngram", host_draft_us=200.0).spec
    step, _ = speculative_step(a, hw, cfg, spec, 256.0, 2000.0)
    host = 256 * float(hw.host_s_per_req) + 256 * 4 * 200e-6  # every request drafts 4 tokens
    assert float(step) >= host * (1 - 1e-6)
    assert float(step) == pytest.approx(max(host, float(device_step_time(a, hw, cfg, 256.0, 2000.0, 5.0))), rel=1e-5)


def test_draft_model_streams_its_own_weights_and_kv(catalog):
    """llama-3.2-1b drafting on one H100 at batch 1: its BF16 weights plus its KV at 8k, at the HBM
    efficiency, plus its layers' fixed latency (one chip: no collectives)."""
    a, hw, cfg = _one(catalog, "h100-sxm", "llama-3.1-70b", 1, 1.0, 4)
    d = spec_for(catalog, "llama-3.1-70b", "draft", draft_model="llama-3.2-1b")
    draft = catalog.model("llama-3.2-1b")
    kv_per_token = draft.layers * 2 * draft.kv_heads * draft.head_dim  # GQA: K and V per layer
    bytes_ = d.params_bf16 * 2 + 8000 * kv_per_token * 2
    expected = bytes_ / (float(hw.mem_bw) * float(hw.hbm_eff)) + draft.layers * float(hw.layer_latency_s)
    assert float(draft_step_time(hw, cfg, d.spec, 1.0, 8000.0)) == pytest.approx(expected, rel=1e-5)
    assert d.params_bf16 == pytest.approx(1.24e9, rel=0.02)  # Llama 3.2 1B: 1.24 B parameters


def test_deepseek_mtp_module_weighs_what_deepseek_publishes(catalog):
    """DeepSeek-V3's checkpoint: 671 B main model + 14 B MTP module (rounded), which carries its own copy
    of the embedding (129,280 x 7,168 = 0.93 B) that engines share with the main model: ~13.1 B held."""
    d = spec_for(catalog, "deepseek-v3", "mtp")
    held = d.params_bf16 + d.params_target + d.params_head
    assert held == pytest.approx(14e9 - 129_280 * 7_168, rel=0.05)


def test_mtp_step_streams_a_small_share_of_a_target_step(catalog):
    """At batch 1 one MTP layer (its touched experts, attention, eh_proj and the LM head) reads a few
    percent of what the 61-layer target reads: the v1 default of 5 % was a guess of that share."""
    a, hw, cfg = _one(catalog, "h200-sxm", "deepseek-v3", 8, 1.0, 1)
    cfg = cfg._replace(weight_bytes=np.float32(1.0))
    spec = spec_for(catalog, "deepseek-v3", "mtp").spec
    share = float(draft_step_time(hw, cfg, spec, 1.0, 4000.0)) / float(device_step_time(a, hw, cfg, 1.0, 4000.0))
    assert 0.01 < share < 0.15


def test_an_mtp_step_streams_the_lm_head_in_the_checkpoint_format(catalog):
    """An MTP module computes its logits with the target's LM head: 16-bit in most checkpoints, 4-bit
    in NVIDIA's Qwen3.6-27B NVFP4 (1.27 B weights, ~2.5 GB at 16 bits against ~0.7 GB). Served as
    published, a draft step reads exactly that difference less, and its copy of the head is held
    at 4-bit bytes too."""
    from planner.lowering import WEIGHT_BYTES, draft_arrays, head_weight_dtype

    model = catalog.model("qwen3.6-27b")
    a, hw, cfg = _one(catalog, "h200-sxm", "qwen3.6-27b", 1, 1.0, 1)
    drafter = spec_for(catalog, "qwen3.6-27b", "mtp")
    head = model.vocab * model.hidden
    assert drafter.params_head == head and float(drafter.spec.draft_head_params) == head
    assert head_weight_dtype(model, "int4") == "int4" and head_weight_dtype(model, "fp8") == "bf16"
    wide, narrow = (cfg._replace(head_weight_bytes=np.float32(WEIGHT_BYTES[d])) for d in ("bf16", "int4"))
    saved = float(draft_step_time(hw, wide, drafter.spec, 1.0, 4000.0)) - float(draft_step_time(hw, narrow, drafter.spec, 1.0, 4000.0))
    assert saved == pytest.approx(head * (2.0 - WEIGHT_BYTES["int4"]) / (float(hw.mem_bw) * float(hw.hbm_eff)), rel=1e-3)
    spec = Speculative(method="mtp")
    _, held_int4 = draft_arrays(catalog, model, spec, "int4")
    _, held_fp8 = draft_arrays(catalog, model, spec, "fp8")
    assert held_int4 == pytest.approx(drafter.params_target * WEIGHT_BYTES["int4"] + head * WEIGHT_BYTES["int4"], rel=1e-6)
    assert held_fp8 == pytest.approx(drafter.params_target * WEIGHT_BYTES["fp8"] + head * 2.0, rel=1e-6)


def test_self_speculation_drafts_with_the_target_at_its_compressed_context(catalog):
    a, hw, cfg = _one(catalog, "h100-sxm", "llama-3.1-8b", 1, 64.0, 3)
    spec = spec_for(catalog, "llama-3.1-8b", "self").spec
    step, _ = speculative_step(a, hw, cfg, spec, 64.0, 32_000.0)
    draft = float(device_step_time(a, hw, cfg, 64.0, 512.0)) - float(hw.step_overhead_s)
    assert float(step) == pytest.approx(float(device_step_time(a, hw, cfg, 64.0, 32_000.0, 4.0)) + 3 * draft, rel=1e-5)


def test_gains_shrink_with_batch_as_verification_turns_compute_bound(catalog):
    """Suffix decoding on Llama-3.1-8B at 2k context: the verify step of 5 tokens per sequence costs
    about one plain step at batch 1 (weights dominate) and several at batch 512 (FLOPs dominate), so
    less than half of the batch-1 gain is left."""
    def gain(batch):
        a, hw, cfg = _one(catalog, "h100-sxm", "llama-3.1-8b", 1, batch, 4)
        spec = spec_for(catalog, "llama-3.1-8b", "suffix").spec
        step, tok = speculative_step(a, hw, cfg, spec, batch, 2000.0)
        plain = float(device_step_time(a, hw, cfg, batch, 2000.0))
        plain = max(plain, batch * float(hw.host_s_per_req))
        return plain / (float(step) / float(tok))

    gains = [gain(b) for b in (1.0, 16.0, 128.0, 512.0)]
    assert gains == sorted(gains, reverse=True)
    assert gains[0] > 2.0 and gains[-1] < gains[0] / 2


# --- compatibility -------------------------------------------------------------------------------

def test_mtp_needs_mtp_heads(catalog):
    assert "ships no multi-token-prediction heads" in incompatibility(
        "mtp", catalog, catalog.model("llama-3.1-70b"), Speculative(method="mtp"))
    assert incompatibility("mtp", catalog, catalog.model("deepseek-v3"), Speculative(method="mtp")) is None


def test_draft_with_another_tokenizer_is_refused(catalog):
    why = incompatibility("draft", catalog, catalog.model("llama-3.1-70b"),
                          Speculative(method="draft", draft_model="qwen3-0.6b"))
    assert "tokenizer" in why


def _scenario_file(tmp_path, **updates):
    data = with_dotted(io.read_toml(paths.scenarios_dir() / "chat.toml"), updates)
    path = tmp_path / "s.toml"
    import tomli_w

    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def test_mtp_on_a_model_without_heads_is_a_one_line_error(tmp_path):
    path = _scenario_file(tmp_path, **{"speculative": {"method": "mtp"}})
    result = RUNNER.invoke(app, ["validate", str(path)])
    if result.exit_code == 0:  # validate checks the schema only; solve checks the catalog
        result = RUNNER.invoke(app, ["solve", str(path)])
    assert result.exit_code == 2, result.output
    assert "speculative.method" in result.output and "mtp_layers" in result.output
    assert "Traceback" not in result.output


def test_unknown_curve_is_a_one_line_error(tmp_path):
    path = _scenario_file(tmp_path, **{"speculative": {"method": "suffix", "curves": ["sufix-chat"]}})
    result = RUNNER.invoke(app, ["solve", str(path)])
    assert result.exit_code == 2, result.output
    assert "speculative.curves" in result.output and "suffix-chat" in result.output


def test_searched_method_the_model_cannot_use_is_a_visible_note(catalog):
    data = with_dotted(io.read_toml(paths.scenarios_dir() / "chat.toml"),
                       {"search.spec_method": ["mtp", "suffix"], "search.hardware": ["h100-sxm"]})
    grid = build_grid(io.validate(Scenario, data, "t"), catalog)
    assert any("'mtp' not searched" in w and "mtp_layers" in w for w in grid.warnings)
    assert set(grid.spec_method) == {"none", "draft", "suffix"}


def test_eval_spec_method_flag(catalog):
    result = RUNNER.invoke(app, ["eval", "--hardware", "h100-sxm", "--model", "llama-3.1-70b", "--chips", "8",
                                 "--batch", "1", "--input", "8000", "--output", "256", "--spec-k", "4",
                                 "--spec-method", "suffix", "--format", "json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    alpha = 1 - 75.8 / 286
    assert row["spec_method"] == "suffix"
    assert row["tokens_per_step"] == pytest.approx((1 - alpha**5) / (1 - alpha), rel=1e-4)
    bad = RUNNER.invoke(app, ["eval", "--hardware", "h100-sxm", "--model", "llama-3.1-70b", "--spec-k", "2",
                              "--spec-method", "mtp"])
    assert bad.exit_code == 2 and "--spec-method" in bad.output and "Traceback" not in bad.output


def test_eval_without_spec_method_keeps_the_v1_answer(catalog):
    """--spec-k/--spec-alpha alone: the model's listed draft model with a flat acceptance."""
    result = RUNNER.invoke(app, ["eval", "--hardware", "h100-sxm", "--model", "llama-3.1-70b", "--chips", "8",
                                 "--batch", "1", "--spec-k", "2", "--spec-alpha", "0.6", "--format", "json"])
    row = json.loads(result.output)
    assert row["spec_method"] == "draft"
    assert row["tokens_per_step"] == pytest.approx(1 + 0.6 + 0.36, rel=1e-5)


def test_eval_says_what_a_speculative_rows_acceptance_rests_on(catalog):
    """The default EAGLE-3 curve is a short-chat head's: at 50k tokens of context it accepts almost
    nothing. eval must say so beside the row, not leave a slower TPOT unexplained."""
    args = ["eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--batch", "1", "--input", "50000",
            "--output", "200", "--spec-k", "3", "--spec-method", "eagle3"]
    row = json.loads(RUNNER.invoke(app, [*args, "--format", "json"]).output)
    assert row["spec_acceptance"].startswith("curve eagle3-short: ") and row["tokens_per_step"] < 1.1
    table = RUNNER.invoke(app, args).output
    assert "speculation eagle3 k=3: 1.08 tokens per verify step at 50,000 tokens of context" in " ".join(table.split())
    flat = json.loads(RUNNER.invoke(app, [*args, "--spec-alpha", "0.66", "--format", "json"]).output)
    assert flat["spec_acceptance"] == "flat per-token acceptance 0.66"
    off = json.loads(RUNNER.invoke(app, [*args[:-4], "--format", "json"]).output)
    assert "spec_acceptance" not in off


# --- the method as a search decision ------------------------------------------------------------

SMALL = {"hardware": ["h100-sxm", "b200"], "chips": [1, 2, 4], "batch": [8, 64], "weight_dtype": ["fp8"],
         "kv_dtype": ["fp8"], "dram_fraction": [0.0], "nvme_fraction": [0.0], "spec_k": [0, 2, 4],
         "prefix_cache": [True], "attention": ["flash"]}


def _min_bill(catalog, methods: list[str]) -> float:
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = {**SMALL, "spec_method": methods}
    data["model"] = {"id": "llama-3.1-8b"}
    data["speculative"] = {"method": "none"}
    grid = build_grid(io.validate(Scenario, data, "t"), catalog)
    with np.errstate(all="ignore"):
        ref = numpy_reference.evaluate_serving(grid.arch, grid.hw, grid.cfg, grid.spec, grid.load,
                                               np.float32(grid.draft_weight_bytes), grid.valid)
    bills = np.broadcast_to(ref["monthly_usd"], grid.shape).ravel()[grid.real()]
    return float(np.min(bills))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.sampled_from([m for m in SPEC_METHODS if m != "mtp"]), max_size=3),
       st.sampled_from([m for m in SPEC_METHODS if m != "mtp"]))
def test_adding_a_method_never_raises_the_minimum_bill(catalog, methods, extra):
    base = _min_bill(catalog, sorted(methods))
    more = _min_bill(catalog, sorted(methods | {extra}))
    assert more <= base * (1 + 1e-6)


def test_plans_and_json_say_which_method(catalog):
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = {**SMALL, "spec_method": ["suffix", "eagle3"]}
    path = paths.scenarios_dir() / "chat.toml"
    from planner.search import solve

    scenario = io.validate(Scenario, data, path)
    result = solve(scenario, catalog)
    methods = {p["spec_method"] for p in result.per_hardware}
    assert methods <= {"none", "draft", "suffix", "eagle3"}
    for p in result.per_hardware:
        assert (p["spec_method"] == "none") == (p["spec_k"] == 0)


def test_whatif_compares_methods(catalog):
    from planner.analyses.whatif import evaluate, pick_variants

    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = dict(SMALL)
    scenario = io.validate(Scenario, data, "t")
    ev = evaluate(scenario, catalog, pick_variants(["spec-suffix", "spec-mtp", "spec-draft"]))
    by = {v.name: v for v in ev.variants}
    assert by["spec-suffix"].best["spec_method"] in ("suffix", "none")
    assert not by["spec-mtp"].searched  # llama-3.3-70b has no MTP heads
    assert ev.best["monthly_usd"] <= min(v.monthly_usd for v in ev.variants if v.monthly_usd is not None)


def test_incompatible_scenario_method_raises_in_the_grid(catalog):
    data = with_dotted(io.read_toml(paths.scenarios_dir() / "chat.toml"), {"speculative": {"method": "mtp"}})
    with pytest.raises(InputFileError, match="speculative.method"):
        build_grid(io.validate(Scenario, data, "t"), catalog)


def test_mtp_on_its_published_curve_drafts_one_token_per_module(catalog):
    """DeepSeek measured the MTP module's own position; k = 2 and 4 are searched as k = 1."""
    data = io.read_toml(paths.scenarios_dir() / "agentic-coding.toml")
    data["search"] = {**SMALL, "hardware": ["b200"]}
    grid = build_grid(io.validate(Scenario, data, "t"), catalog)
    assert list(zip(grid.spec_method, grid.spec_k, strict=True)) == [("none", 0), ("mtp", 1)]
    data["speculative"] = {"method": "mtp", "acceptance_short": 0.8, "acceptance_long": 0.6,
                           "acceptance_context_tokens": 65536}
    grid = build_grid(io.validate(Scenario, data, "t"), catalog)  # the scenario's own curve: k as searched
    assert list(zip(grid.spec_method, grid.spec_k, strict=True)) == [("none", 0), ("mtp", 2), ("mtp", 4)]


def test_launch_command_uses_the_plans_method():
    """The study's cheapest plan drafts by suffix decoding: vLLM's speculative config says so."""
    study = paths.scenarios_dir() / "studies" / "speculative-methods.toml"
    result = RUNNER.invoke(app, ["solve", str(study), "--emit", "vllm"])
    assert result.exit_code == 0, result.output
    assert '"method":"suffix","num_speculative_tokens":4' in result.output
    from planner.launch import _spec_note

    note = _spec_note("eagle3", {"spec_k": 2}, ("draft", "mtp"), "SGLang")
    assert note and note[0].startswith("speculation eagle3 k=2: not set here")  # a note, never an invented flag


def test_eval_says_when_it_chains_an_mtp_module_past_its_count(invoke):
    """solve drafts at most one token per MTP module (grid.lookahead_caps); eval takes the k it is
    given, so k past the modules chains one at its published acceptance: the row says so."""
    import json

    def row(k: int) -> dict:
        result = invoke("eval", "--hardware", "h200-sxm", "--model", "deepseek-v3", "--chips", "8", "--batch", "8",
                        "--input", "8000", "--output", "500", "--spec-method", "mtp", "--spec-k", str(k),
                        "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    chained = row(3)
    assert any("1 MTP module(s): the module is chained 2 more time(s)" in a for a in chained.get("assumed", []))
    assert not any("MTP module" in a for a in row(1).get("assumed", []))
