"""The TUI's plain-Python parts (no terminal): the edited document, field parsing, the prompt-length
curve's inputs, exports, and the `planner tui` command's error path."""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path
from types import SimpleNamespace

import pytest

from planner import io, paths
from planner.catalog import load_catalog
from planner.errors import InputFileError, PlannerError
from planner.schema import Scenario
from planner.tui.document import ScenarioDocument
from planner.tui.export import export_plans, plans_csv
from planner.tui.fields import FIELDS, FieldSpec, describe, parse_text, show_value
from planner.tui.solver import curve_medians, with_prompt_median


@pytest.fixture
def doc() -> ScenarioDocument:
    return ScenarioDocument.from_file(paths.default_scenario(), load_catalog(), bundled=True)


def test_bundled_document_is_clean_and_untitled(doc: ScenarioDocument) -> None:
    assert doc.valid and not doc.dirty
    assert doc.path is None  # ctrl+s must ask where to save, never overwrite the bundled file
    assert doc.origin == "bundled: agentic-coding.toml"


def test_every_field_path_exists_in_the_schema() -> None:
    for spec in FIELDS:
        assert describe(spec.path), spec.path  # hints come from the schema's descriptions


def test_parse_text_keeps_unparsable_text_for_the_schema_to_name() -> None:
    integer = FieldSpec("workload.input_tokens.median", "x", "int")
    assert parse_text(integer, " 96,000 ") == 96000
    assert parse_text(integer, "12.5") == "12.5"
    assert parse_text(integer, "") is None
    assert parse_text(FieldSpec("slo.ttft_p95_s", "x", "float"), "2.5") == 2.5
    assert show_value(65536.0) == "65536" and show_value(0.9) == "0.9" and show_value(None) == ""


def test_a_decimal_comma_is_not_read_as_a_thousands_separator() -> None:
    """ "0,5" in the TTFT SLO read as 5 s (every comma was dropped): commas group thousands only."""
    seconds = FieldSpec("slo.ttft_p95_s", "x", "float")
    assert parse_text(seconds, "0,5") == "0,5" and parse_text(seconds, "1.000,5") == "1.000,5"
    assert parse_text(seconds, "1,000.5") == 1000.5 and parse_text(seconds, "-2,500") == -2500.0


def test_a_whole_number_typed_with_a_decimal_point_is_an_integer_edit(doc: ScenarioDocument) -> None:
    """Strict schema numbers refused "2000.0" in an integer field, which a scenario file accepts."""
    integer = FieldSpec("workload.input_tokens.median", "x", "int")
    doc.set(integer.path, parse_text(integer, "2,000.0"))
    assert doc.validate() is not None, doc.errors
    assert doc.scenario.workload.input_tokens.median == 2000
    doc.set(integer.path, parse_text(integer, "true"))
    assert doc.validate() is None and doc.errors[0].loc == integer.path


def test_edits_validate_and_mark_dirty(doc: ScenarioDocument) -> None:
    doc.set("slo.tpot_p95_ms", 40.0)
    assert doc.validate() is not None and doc.dirty
    doc.set("workload.input_tokens.p90", 5)
    assert doc.validate() is None
    assert [(e.loc, e.message) for e in doc.errors] == [("workload.input_tokens", "p90 must be >= median")]
    doc.set("workload.input_tokens.p90", None)  # optional: removing it is valid
    assert doc.validate() is not None
    doc.set("model.id", "llama-9")
    doc.validate()
    assert doc.errors[0].loc == "model.id" and "unknown model ID" in doc.errors[0].message
    doc.set("model.id", "llama-3.1-8b")
    doc.set("search.hardware", [])
    doc.validate()
    assert doc.errors[0].loc == "search.hardware"


def test_save_refuses_an_invalid_scenario_and_round_trips_a_valid_one(doc: ScenarioDocument, tmp_path: Path) -> None:
    target = tmp_path / "s.toml"
    doc.set("slo.tpot_p95_ms", "fast")
    doc.validate()
    with pytest.raises(PlannerError):
        doc.save(target, overwrite=False)
    doc.set("slo.tpot_p95_ms", 33.0)
    doc.validate()
    doc.save(target, overwrite=False)
    assert io.load(Scenario, target) == doc.scenario and not doc.dirty and doc.path == target
    with pytest.raises(InputFileError, match="refusing to overwrite"):
        doc.save(target, overwrite=False)


def test_curve_medians_span_up_to_the_context_cap(doc: ScenarioDocument) -> None:
    sc = doc.scenario
    assert sc is not None
    medians = curve_medians(sc, load_catalog())
    assert sc.workload.input_tokens.median in medians
    assert medians == sorted(medians) and medians[-1] <= (sc.workload.input_tokens.max or medians[-1])
    variant = with_prompt_median(sc, 6000, "b200")
    assert variant.search.hardware == ["b200"]
    tokens = variant.workload.input_tokens
    w = sc.workload.input_tokens
    assert tokens.median == 6000 and tokens.p90 / 6000 == pytest.approx(w.p90 / w.median, rel=1e-3)


def _plan(hw: str) -> dict:
    return {"hardware": hw, "chips": 2, "replicas": 3, "batch": 8, "weight_dtype": "fp8", "kv_dtype": "fp8",
            "layout": {"tp": 2, "pp": 1, "ep": 1, "dp_attention": 1, "cp": 1, "replicas_per_system": 1, "nodes": 1},
            "layout_text": "tp2, 1 node", "scale_out": None,
            "tier_split": {"hbm": 0.75, "dram": 0.25, "nvme": 0.0}, "spec_k": 2, "prefix_cache": True,
            "attention": "flash", "ttft_p50_s": 1.0, "ttft_p95_s": 2.0, "tpot_p50_ms": 20.0, "tpot_p95_ms": None,
            "throughput_tok_s": 500.0, "usd_per_hour": 10.0, "usd_per_mtok_input": 0.1,
            "usd_per_mtok_output": 2.0, "monthly_usd": 7300.0, "binding": "tpot"}


def test_export_csv_uses_the_solve_columns(tmp_path: Path) -> None:
    from planner.solve_report import CSV_COLUMNS

    plans = [_plan("b200"), _plan("mi300x")]
    result = SimpleNamespace(per_hardware=plans, ranked_plans=lambda: plans)
    rows = list(csv.reader(_io.StringIO(plans_csv(result))))
    assert tuple(rows[0]) == CSV_COLUMNS
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["hardware"] == "b200" and first["tier_dram"] == "0.25" and first["tpot_p95_ms"] == ""
    assert first["layout"] == "tp2, 1 node" and first["tp"] == "2" and first["mode"] == "aggregated"
    with pytest.raises(InputFileError, match=r"\.csv or \.json"):
        export_plans(result, tmp_path / "plans.txt", overwrite=False)
    assert export_plans(result, tmp_path / "plans.csv", overwrite=False) == "csv"


def test_tui_command_rejects_a_bad_file_before_opening(invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[workload]\narrival_rate_rps = -1\n', encoding="utf-8")
    result = invoke("tui", bad)
    assert result.exit_code == 2, result.output
    assert "bad.toml" in result.output and len(result.output.strip().splitlines()) == 1


def test_bare_planner_without_a_terminal_prints_help(invoke) -> None:
    result = invoke()
    assert result.exit_code == 0, result.output
    assert "tui" in result.output


def test_the_cli_imports_neither_textual_nor_jax() -> None:
    import subprocess
    import sys

    code = "import sys, planner.cli; print(sorted({'textual', 'jax'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_real_solver_feeds_the_curve_and_the_what_ifs(doc: ScenarioDocument) -> None:
    """`Solver` (what the TUI's workers call) against `search.solve`: the curve's point at the
    scenario's own prompt median is the solve's best plan on that hardware, and each what-if
    takes a technique away, so it never beats that plan."""
    from planner.search import solve
    from planner.tui.solver import Solver

    catalog = load_catalog()
    scenario = doc.scenario.model_copy(update={"search": doc.scenario.search.model_copy(update={
        "hardware": ["h100-sxm", "b200"], "chips": [2, 4, 8], "batch": [8, 32], "dram_fraction": [0.0, 0.5],
        "nvme_fraction": [0.0]})})
    solver = Solver(catalog)
    full = solver.solve(scenario)
    assert not full.frontiers_pending and full.pareto_tpot and full.per_hardware
    best = full.per_hardware[0]
    points = list(solver.prompt_curve(scenario, best["hardware"], cancelled=lambda: False))
    assert [p.input_median for p in points] == curve_medians(scenario, catalog)
    own = next(p for p in points if p.input_median == scenario.workload.input_tokens.median)
    # the point is that hardware's best over every serving mode searched: never above its aggregated plan
    assert solve(with_prompt_median(scenario, own.input_median, best["hardware"]), catalog).best == own.plan
    assert own.monthly_usd == pytest.approx(own.plan["monthly_usd"], rel=1e-6)
    assert own.monthly_usd <= best["monthly_usd"] * (1 + 1e-6)
    if own.plan.get("mode") != "disaggregated":
        assert own.monthly_usd == pytest.approx(best["monthly_usd"], rel=1e-6)
    whatifs = solver.whatif(scenario, best["hardware"])
    assert whatifs and all(w.monthly_usd is None or w.monthly_usd >= own.monthly_usd * (1 - 1e-6)
                           for w in whatifs)


def test_save_keeps_comments_and_layout_and_changes_only_edited_values(doc: ScenarioDocument,
                                                                       tmp_path: Path) -> None:
    original = paths.default_scenario().read_text(encoding="utf-8")
    doc.set("slo.tpot_p95_ms", 40.0)
    doc.set("workload.output_tokens.p90", None)
    doc.validate()
    target = tmp_path / "mine.toml"
    doc.save(target, overwrite=False)
    expected = original.replace("tpot_p95_ms = 50.0", "tpot_p95_ms = 40.0").replace("p90 = 898\n", "")
    assert target.read_text(encoding="utf-8") == expected  # every comment and blank line kept
    doc.set("serving.utilization_max", 0.7)  # a table the file did not have is appended
    doc.validate()
    doc.save(target, overwrite=True)
    text = target.read_text(encoding="utf-8")
    assert text.startswith(expected) and text.endswith("[serving]\nutilization_max = 0.7\n")
    assert io.load(Scenario, target) == doc.scenario


def test_an_unchanged_save_is_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "chat.toml"
    text = (paths.scenarios_dir() / "chat.toml").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    doc = ScenarioDocument.from_file(path, load_catalog())
    doc.save(path, overwrite=True)
    assert path.read_text(encoding="utf-8") == text


def test_save_as_suggests_a_name_from_the_model(doc: ScenarioDocument, tmp_path: Path) -> None:
    assert doc.suggested_name() == "deepseek-v4-flash.toml"  # bundled: no file of its own
    doc.set("model.id", "llama-3.1-8b")
    doc.validate()
    assert doc.suggested_name() == "llama-3.1-8b.toml"
    doc.save(tmp_path / "mine.toml", overwrite=False)
    assert doc.suggested_name() == "mine.toml"  # its own file, same model
    doc.set("model.id", "llama-3.1-70b")
    doc.validate()
    assert doc.suggested_name() == "llama-3.1-70b.toml"


def test_save_as_elsewhere_keeps_relative_references_pointing_at_their_files(tmp_path: Path) -> None:
    """A scenario's relative catalog files, config.json model and trace are relative to its file:
    "save as" into another folder rewrites them (they were written as they stood, and the saved file
    pointed at files that are not there); the copy loads from anywhere with the same scenario."""
    import shutil

    from tests.support import HARDWARE_TOML

    home, other = tmp_path / "home", tmp_path / "other" / "deeper"
    home.mkdir()
    other.mkdir(parents=True)
    (home / "my-gpu.toml").write_text(HARDWARE_TOML.replace('id = "test-gpu"', 'id = "my-gpu"'))
    shutil.copy(Path(__file__).parent / "data" / "hf-configs" / "Qwen--Qwen3-0.6B_config.json", home / "config.json")
    data = io.parse_toml(paths.default_scenario().read_text(), "test")
    data["catalog"] = ["my-gpu.toml"]
    data["model"] = {"id": "config.json"}
    data.pop("speculative", None)
    data.pop("quality", None)
    import tomli_w

    (home / "s.toml").write_text("# a comment that stays\n" + tomli_w.dumps(data))
    doc = ScenarioDocument.from_file(home / "s.toml", load_catalog())
    assert doc.valid, doc.errors
    doc.save(other / "copy.toml", overwrite=False)
    saved = (other / "copy.toml").read_text()
    assert "# a comment that stays" in saved and '"../../home/my-gpu.toml"' in saved and '"../../home/config.json"' in saved
    again = ScenarioDocument.from_file(other / "copy.toml", load_catalog())
    assert again.valid and again.scenario == doc.scenario
