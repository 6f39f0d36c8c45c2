"""`planner whatif|sweep|project` on the bundled studies: snapshots of JSON and table, exit codes, errors.

Timing (search seconds, the `timing:` line) is dropped before snapshotting.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from support import REPO

from planner import paths, render

STUDIES = REPO / "scenarios" / "studies"
STUDY_FILES = sorted(p.name for p in STUDIES.glob("*.toml"))

# The commands the README shows, one per study (plus the whatif/project ones the studies name).
COMMANDS: dict[str, list[str]] = {
    "speculative-sweep": ["sweep", "speculative-context.toml", "--param", "workload.input_tokens.median",
                          "--values", "8000,32000,96000,128000", "--variant", "no-speculative-decoding"],
    "prompt-cache-sweep": ["sweep", "prompt-cache-agentic.toml", "--param", "workload.sessions.prefix_reuse",
                           "--values", "0,0.3,0.5,0.7,0.8,0.9,0.95", "--variant", "no-prefix-cache"],
    "prompt-cache-project": ["project", "prompt-cache-agentic.toml", "--years", "5", "--price-decline", "40",
                             "--usage-growth", "2"],
    "kv-tiering-whatif": ["whatif", "kv-tiering.toml", "--variants",
                          "hbm-only,hbm-dram-only,no-kv-offload,no-prefix-cache"],
    "kv-tiering-sweep": ["sweep", "kv-tiering.toml", "--param", "workload.sessions.think_time_s",
                         "--values", "10,30,60,120,300,600,1800", "--variant", "hbm-only,hbm-dram-only,no-kv-offload"],
    "kv-quantization-sweep": ["sweep", "kv-quantization.toml", "--param", "search.kv_dtype",
                              "--values", '["bf16"],["fp8"],["int4"]'],
    "kv-quantization-whatif": ["whatif", "kv-quantization.toml"],
    "gpu-vs-specialist-sweep": ["sweep", "gpu-vs-specialist.toml", "--param", "slo.tpot_p95_ms",
                                "--values", "50,20,10,7,5,3", "--variant", "gpu-only,specialist-only"],
    "prompt-cache-hit-rate-whatif": ["whatif", "prompt-cache-hit-rate.toml", "--variants",
                                     "hbm-only,hbm-dram-only,no-prefix-cache"],
    "prompt-cache-hit-rate-routing": ["sweep", "prompt-cache-hit-rate.toml", "--param", "workload.sessions.routing",
                                      "--values", "sticky,random", "--variant", "no-prefix-cache"],
    "disaggregation-sweep": ["sweep", "disaggregation.toml", "--param", "workload.input_tokens.median",
                             "--values", "8000,32000,64000,128000,256000", "--variant", "no-disaggregation"],
    "speculative-methods-whatif": ["whatif", "speculative-methods.toml", "--variants",
                                   "no-speculative-decoding,spec-draft,spec-eagle3,spec-self,spec-ngram,spec-suffix"],
}

TIMING_KEYS = {"seconds", "timing"}


def _args(name: str, *extra: str) -> list[str]:
    cmd = COMMANDS[name]
    return [cmd[0], str(STUDIES / cmd[1]), *cmd[2:], *extra]


def _strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def _table_without_timing(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("timing:")) + "\n"


def test_every_study_has_a_command() -> None:
    assert {COMMANDS[n][1] for n in COMMANDS} == set(STUDY_FILES)
    assert len(STUDY_FILES) == 8
    for name in STUDY_FILES:
        text = (STUDIES / name).read_text(encoding="utf-8")
        assert text.startswith("# Study:"), f"{name}: starts with a comment saying what it asks"
        assert "planner " in text, f"{name}: the comment shows the command that answers it"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_study_snapshot(invoke, snapshot, name: str) -> None:
    as_json = invoke(*_args(name, "--format", "json"))
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    table = invoke(*_args(name))
    assert table.exit_code == 0, table.output
    assert "\x1b[" not in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 160
    assert _strip_timing(doc) == snapshot(name="json")
    assert _table_without_timing(table.stdout) == snapshot(name="table")


def test_whatif_json_shape_and_no_variant_beats_baseline(invoke) -> None:
    doc = json.loads(invoke(*_args("kv-quantization-whatif", "--format", "json")).stdout)
    assert set(doc) >= {"baseline", "variants"}
    base = doc["baseline"]["monthly_usd"]
    names = [v["name"] for v in doc["variants"]]
    assert names[:4] == ["no-speculative-decoding", "no-kv-quantization", "no-prefix-cache", "no-kv-offload"]
    for v in doc["variants"]:
        assert set(v) >= {"name", "monthly_usd", "delta_pct", "best"}
        if v["best"] is not None:
            assert v["monthly_usd"] >= base and v["delta_pct"] >= 0.0, v["name"]
    kvq = next(v for v in doc["variants"] if v["name"] == "no-kv-quantization")
    assert kvq["best"]["kv_dtype"] == "bf16" and kvq["delta_pct"] > 0


def test_whatif_help_names_every_variant(invoke) -> None:
    """`planner whatif --help` is where a user learns the --variants names: it lists all of them."""
    from planner.analyses import VARIANT_NAMES

    result = invoke("whatif", "--help")
    assert result.exit_code == 0, result.output
    words = set(result.stdout.replace(",", " ").replace(".", " ").replace(":", " ").replace(";", " ").split())
    assert [name for name in VARIANT_NAMES if name not in words] == []


def test_whatif_widens_the_grid_for_a_variant(invoke, write) -> None:
    # The study lists only fp8 KV: no-kv-quantization needs bf16 added to the baseline grid.
    path = write("narrow.toml", (STUDIES / "kv-quantization.toml").read_text(encoding="utf-8")
                 .replace('kv_dtype = ["bf16", "fp8", "int4"]', 'kv_dtype = ["fp8"]'))
    doc = json.loads(invoke("whatif", path, "--variants", "no-kv-quantization", "--format", "json").stdout)
    assert doc["search"]["widened"] == {"kv_dtype": ["bf16"]}
    assert doc["variants"][0]["best"]["kv_dtype"] == "bf16"
    assert doc["baseline"]["kv_dtype"] in ("fp8", "bf16")


def test_analyses_leave_the_next_solves_prefetch_alone(invoke, write, monkeypatch) -> None:
    """A whatif's variant kernels are not noted for the next process's prefetch (the next
    `planner solve` would load them instead of its own); a solve after it, in the same process (a
    resident worker), notes its kernels again."""
    from planner import executables

    noted: list[Path] = []
    monkeypatch.setattr(executables, "_note_use", noted.append)
    path = write("narrow.toml", (STUDIES / "kv-quantization.toml").read_text(encoding="utf-8")
                 .replace('kv_dtype = ["bf16", "fp8", "int4"]', 'kv_dtype = ["fp8"]'))
    executables.forget()  # kernels come from disk (or are built), as in a new process
    assert invoke("whatif", path, "--variants", "no-kv-quantization", "--format", "json").exit_code == 0
    assert noted == []
    executables.forget()
    invoke("solve", path, "--format", "json")
    assert noted


def test_sweep_json_shape(invoke) -> None:
    doc = json.loads(invoke(*_args("speculative-sweep", "--format", "json")).stdout)
    assert doc["param"] == "workload.input_tokens.median"
    assert [p["value"] for p in doc["points"]] == [8000, 32000, 96000, 128000]
    for p in doc["points"]:
        assert set(p) >= {"value", "best", "feasible"} and p["feasible"] is (p["best"] is not None)
    costs = [p["best"]["monthly_usd"] for p in doc["points"]]
    assert costs == sorted(costs), "longer prompts never get cheaper"
    savings = [p["variants"][0]["delta_pct"] for p in doc["points"]]
    assert all(s >= 0 for s in savings)
    assert savings[-1] < savings[0], "speculative decoding saves less at 128k than at 8k"


def test_project_json_shape_and_jevons(invoke) -> None:
    doc = json.loads(invoke(*_args("prompt-cache-project", "--format", "json")).stdout)
    rows = doc["projection"]
    assert [r["year"] for r in rows] == list(range(6))
    assert rows[1]["price_factor"] == pytest.approx(0.6) and rows[1]["usage_factor"] == 2
    assert doc["jevons_year"] == 1, "x2 usage against -40% prices: spend rises from year 1"
    assert doc["workload"]["cached_input_share"] == pytest.approx(0.9 * 29 / 30, abs=1e-4)
    apis = {a["id"]: a for a in doc["apis"]}
    assert {"deepseek-chat", "gpt-5", "claude-sonnet-4"} <= set(apis)
    for a in apis.values():
        assert a["source"] and a["date"] and isinstance(a["verified"], bool)


def test_project_without_jevons_when_prices_fall_faster(invoke) -> None:
    doc = json.loads(invoke(*_args("prompt-cache-project")[:2], "--years", "3", "--price-decline", "50",
                            "--usage-growth", "1.2", "--format", "json").stdout)
    assert doc["jevons_year"] is None
    costs = [r["self_hosted"]["monthly_usd"] for r in doc["projection"]]
    assert costs == sorted(costs, reverse=True)


# ---------------------------------------------------------------- exit codes and errors


@pytest.mark.parametrize("command", [
    ["whatif"],
    ["sweep", "--param", "slo.tpot_p95_ms", "--values", "0.5,0.7"],
    ["project", "--years", "2"],
])
def test_no_feasible_plan_exits_1_and_says_why(invoke, command: list[str]) -> None:
    path = STUDIES / "kv-quantization.toml"
    result = invoke(command[0], path, *command[1:], "--set", "slo.tpot_p95_ms=0.5")
    assert result.exit_code == 1, result.output
    assert "No plan meets" in result.stdout or "infeasible:" in result.stdout
    # every hardware misses a 0.5 ms TPOT at zero load: the miss is named as TPOT, on one of the four
    # searched (whatif and project list them all; sweep names the closest)
    searched = ("b200", "h100-sxm", "h200-sxm", "mi300x")
    assert any(hw in result.stdout for hw in searched), "the closest miss is still printed"
    assert "tpot" in result.stdout.lower() and "utilisation" not in result.stdout


def test_whatif_infeasible_json_lists_reasons(invoke) -> None:
    result = invoke("whatif", STUDIES / "kv-quantization.toml", "--set", "slo.tpot_p95_ms=0.5", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["baseline"] is None and doc["infeasible"]
    assert [x["hardware"] for x in doc["infeasible"]] == ["b200", "h100-sxm", "h200-sxm", "mi300x"]
    assert all(x["constraint"] and x["reason"] for x in doc["infeasible"])


@pytest.mark.parametrize(("args", "expected"), [
    (["--param", "workload.input_tokens.medain", "--values", "1000"],
     "unknown key; closest known keys: workload.input_tokens.median"),
    (["--param", "slo.tpot_p95_ms", "--values", "40,fast"], "slo.tpot_p95_ms=fast"),
    (["--param", "slo.tpot_p95_ms", "--values", "40,,50"], "empty value"),
    (["--param", "search.hardware", "--values", '["h100-sxm"],["h100-smx"]'], "h100-sxm"),
    (["--param", "slo.tpot_p95_ms", "--values", "40", "--variant", "no-spec"], "unknown variant 'no-spec'"),
    (["--param", "slo.tpot_p95_ms", "--values", "40", "--plot", "chart.pdf"], ".png or .svg"),
])
def test_sweep_bad_input_is_one_line_exit_2(invoke, args: list[str], expected: str) -> None:
    result = invoke("sweep", STUDIES / "kv-quantization.toml", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr


def test_project_unknown_api_is_exit_2(invoke) -> None:
    result = invoke("project", STUDIES / "kv-quantization.toml", "--api", "gpt-6")
    assert result.exit_code == 2 and "unknown API ID 'gpt-6'" in result.stderr


@pytest.mark.parametrize("command", [["sweep", "--param", "slo.tpot_p95_ms", "--values", "40"], ["project"]])
def test_plot_without_matplotlib_names_the_extra(invoke, monkeypatch, tmp_path: Path, command: list[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = invoke(command[0], STUDIES / "kv-quantization.toml", *command[1:], "--plot", tmp_path / "x.png")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --plot needs matplotlib: pip install 'planner[plot]'"


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plots_are_written(invoke, tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    sweep_plot, project_plot = tmp_path / f"sweep{suffix}", tmp_path / f"project{suffix}"
    result = invoke(*_args("kv-quantization-sweep", "--plot", sweep_plot))
    assert result.exit_code == 0, result.output
    result = invoke("project", STUDIES / "kv-quantization.toml", "--years", "2", "--plot", project_plot)
    assert result.exit_code == 0, result.output
    for path in (sweep_plot, project_plot):
        head = path.read_bytes()[:200]
        assert (head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in path.read_bytes()[:2000]), path


@pytest.mark.parametrize("command", [["sweep", "--param", "slo.tpot_p95_ms", "--values", "40"], ["project"]])
def test_a_plot_never_replaces_a_file_or_follows_a_link(invoke, tmp_path: Path, command: list[str]) -> None:
    """--plot wrote over whatever was at its path (through a symlink too), silently, exit 0."""
    pytest.importorskip("matplotlib")
    kept, victim, link = tmp_path / "kept.png", tmp_path / "victim.txt", tmp_path / "link.png"
    kept.write_text("KEEP")
    victim.write_text("VICTIM")
    link.symlink_to(victim)
    for path in (kept, link):
        result = invoke(command[0], STUDIES / "kv-quantization.toml", *command[1:], "--plot", path)
        assert result.exit_code == 2 and result.stdout == "", result.output  # refused before solving
        assert "already exists; refusing to overwrite" in result.stderr and str(path) in result.stderr
    assert kept.read_text() == "KEEP" and victim.read_text() == "VICTIM"


def test_project_api_all_wraps_by_column_not_inside_numbers(invoke) -> None:
    result = invoke("project", STUDIES / "prompt-cache-agentic.toml", "--years", "1", "--api", "all")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 160  # the pipe width: nothing folds
    assert "Monthly bill, continued: more APIs" in result.stdout
    from planner.analyses.project import load_api_prices

    assert all(api.id in result.stdout for api in load_api_prices().api)  # every API has its column


def test_column_chunks_by_hand() -> None:
    from planner.analyses.report import column_chunks

    cols = ["year", "plan", "a", "bb", "c"]
    rows = [["0", "x", "$1", "$22", "$333"]]
    # widths + 3: year 7, plan 7, a 5, bb 6, c 7; base (year, plan) = 14
    assert column_chunks(cols, rows, 2, 25) == [(["year", "plan", "a", "bb"], [0, 1, 2, 3]), (["year", "c"], [0, 4])]
    assert column_chunks(cols, rows, 2, 40) == [(cols, [0, 1, 2, 3, 4])]


def _masked_argmin(bills, masks):
    """What `whatif` did before SliceMinima: the first cell of the least bill in the masked array."""
    import numpy as np

    from planner.analyses.whatif import _restricted

    restricted = np.where(_restricted(bills.shape, masks), bills, np.inf).ravel()
    flat = int(np.argmin(restricted))
    return (float(restricted[flat]), flat) if np.isfinite(restricted[flat]) else None


def test_slice_minima_pick_the_masked_argmin_cell_ties_included() -> None:
    """Bills drawn from a few values (ties everywhere) with infeasible cells; restrictions of the
    hardware, of layout slots per hardware, of one configuration axis and of two at once: the bill
    and the cell are the masked `np.argmin`'s (first in grid order), or None when nothing finite is kept."""
    import numpy as np

    from planner.analyses.whatif import SliceMinima
    from planner.grid import AXES

    rng = np.random.default_rng(7)
    shape = (4, 5, 3, 2, 2, 2, 3, 2, 4)
    assert len(shape) == len(AXES)
    for trial in range(40):
        bills = rng.integers(1, 6, size=shape).astype(np.float32) * 100.0
        bills[rng.random(shape) < (0.3 if trial % 4 else 0.99)] = np.inf
        table = SliceMinima(bills.ravel(), shape)
        cases = [{}, {"hardware": rng.random(shape[0]) < 0.5}, {"layout": rng.random(shape[:2]) < 0.4}]
        cases += [{name: rng.random(shape[AXES.index(name)]) < 0.5} for name in AXES[2:]]
        cases += [{"kv_dtype": rng.random(shape[AXES.index("kv_dtype")]) < 0.6, "hardware": rng.random(shape[0]) < 0.7}]
        for masks in cases:
            expected = _masked_argmin(bills, masks)
            least = table.least(masks)
            got = None if least is None else (least, table.first_at(masks, least))
            assert got == expected, (trial, masks)


def test_the_baseline_names_the_host_tiers_of_the_plan_that_won(invoke) -> None:
    """`baseline_host_tiers` is the host-tier set the baseline plan was found in, whichever serving
    mode wins: a set named there is one the variants limited to it also search, so their bill equals
    the baseline's; a variant dearer than the baseline cannot contain its set. On the KV-tiering
    study the baseline is a disaggregated pair from the full hardware while the best aggregated plan
    came from the hardware without NVMe ('dram'), which it named before."""
    for study in ("kv-tiering.toml", "prompt-cache-hit-rate.toml"):
        result = invoke("whatif", str(STUDIES / study), "--variants", "hbm-only,hbm-dram-only", "--format", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        bill = doc["baseline"]["monthly_usd"]
        variants = {v["name"]: v["monthly_usd"] for v in doc["variants"]}
        tiers = doc["search"]["baseline_host_tiers"]
        searched_by = {"hbm-dram-only": ("dram", "none"), "hbm-only": ("none",)}
        for name, sets in searched_by.items():
            if tiers in sets:
                assert variants[name] == bill, (study, name)
            if variants[name] > bill:
                assert tiers not in sets, (study, name, tiers)
        assert doc["baseline"]["mode"] == "disaggregated"
        if study == "kv-tiering.toml":
            assert variants["hbm-dram-only"] > bill and tiers == "all"


PAST_THE_WINDOW = ("--set", "workload.input_tokens={ median = 150000, p90 = 160000 }")  # llama-3.3-70b: 131,072


@pytest.mark.parametrize("command", [
    ["whatif", "--variants", "no-kv-quantization"],
    ["sweep", "--param", "slo.tpot_p95_ms", "--values", "50,60"],
    ["project", "--years", "1"],
])
def test_analyses_say_the_scenario_is_served_differently_than_written(invoke, command: list[str]) -> None:
    """Requests past the model's window are planned capped: whatif, sweep and project warn as solve
    does (stderr, every format) and carry the warning in their JSON (per point for a sweep)."""
    args = [command[0], str(STUDIES / "kv-quantization.toml"), *command[1:], *PAST_THE_WINDOW]
    table = invoke(*args)
    window = [line for line in table.stderr.splitlines()
              if line.startswith("warning:") and "longer than llama-3.3-70b's context window" in line]
    if command[0] == "sweep":
        assert [line.split(":")[1] for line in window] == [" at slo.tpot_p95_ms = 50", " at slo.tpot_p95_ms = 60"]
    else:
        assert len(window) == 1
    doc = json.loads(invoke(*args, "--format", "json").stdout)
    found = [p["warnings"] for p in doc["points"]] if command[0] == "sweep" else [doc["warnings"]]
    assert all(any("context window" in w for w in warnings) for warnings in found)
    solved = json.loads(invoke("solve", str(STUDIES / "kv-quantization.toml"), *PAST_THE_WINDOW, "--format", "json").stdout)
    assert found[0] == solved["warnings"]  # the scenario's, not those of a grid widened for variants


@pytest.mark.parametrize("how", ["set", "param"])
def test_a_sweep_over_another_model_re_picks_its_drafter(invoke, how: str) -> None:
    """The default scenario speculates with DeepSeek-V4-Flash's MTP head; another model's points
    re-pick the drafter (llama-3.1-8b: a draft model sharing its tokenizer) with a warning, as
    `solve --set model.id=...` does. The sweep failed on the MTP head the new model lacks."""
    narrow = ("--set", "search.hardware=['h100-sxm']")
    if how == "set":
        args = ("--set", "model.id=llama-3.1-8b", "--param", "slo.tpot_p95_ms", "--values", "50")
    else:
        args = ("--param", "model.id", "--values", "llama-3.1-8b")
    result = invoke("sweep", paths.default_scenario(), *narrow, *args, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    drafted = [line for line in result.stderr.splitlines() if "speculation now drafts with llama-3.2-1b" in line]
    assert len(drafted) == 1 and f"{'--set' if how == 'set' else '--param'} model.id=llama-3.1-8b" in drafted[0]
    doc = json.loads(result.stdout)
    assert doc["points"][0]["best"] is None or doc["points"][0]["best"].get("spec_method") in ("draft", "none")


def test_whatif_and_sweep_star_bills_on_uncalibrated_hardware(invoke) -> None:
    """solve stars a bill resting on prior efficiencies; whatif's, sweep's and project's tables dropped the mark."""
    chat = paths.scenarios_dir() / "chat.toml"
    only = ("--set", "search.hardware=['mi350x']")
    doc = json.loads(invoke("whatif", chat, *only, "--variants", "no-kv-quantization", "--format", "json").stdout)
    assert doc["baseline"]["calibration"] == "uncalibrated"
    whatif = invoke("whatif", chat, *only, "--variants", "no-kv-quantization").stdout
    sweep = invoke("sweep", chat, *only, "--param", "slo.tpot_p95_ms", "--values", "60").stdout
    project = invoke("project", chat, *only, "--years", "1").stdout
    assert f"{render.money(doc['baseline']['monthly_usd'])}*" in whatif
    assert f"{render.money(doc['baseline']['monthly_usd'])}*/month" in project  # the baseline's line
    for text in (whatif, sweep, project):
        assert re.search(r"\$[\d,]+\*", text) and "* uncalibrated: no public measurement fitted" in text
    calibrated = invoke("whatif", chat, "--set", "search.hardware=['h100-sxm']", "--variants", "no-kv-quantization").stdout
    assert "uncalibrated" not in calibrated


def test_a_sweep_of_a_file_that_set_makes_valid(invoke, tmp_path: Path) -> None:
    """--set applies before validation, for the file and for every point alike."""
    text = (STUDIES / "kv-quantization.toml").read_text(encoding="utf-8")
    assert "tpot_p95_ms = " in text
    path = tmp_path / "s.toml"
    path.write_text("\n".join("tpot_p95_ms = -1" if line.startswith("tpot_p95_ms = ") else line
                              for line in text.splitlines()) + "\n", encoding="utf-8")
    assert invoke("sweep", path, "--param", "slo.ttft_p95_s", "--values", "15").exit_code == 2
    result = invoke("sweep", path, "--set", "slo.tpot_p95_ms=60", "--param", "slo.ttft_p95_s", "--values", "15")
    assert result.exit_code == 0, result.output


def test_a_host_tier_variant_keeps_the_methods_added_for_speculation_variants(invoke) -> None:
    """A speculative method added for a `spec-*` variant joins the baseline's search, so a variant
    that drops a host tier must search it too: `hbm-dram-only` beside `spec-suffix` prices dropping
    NVMe, not dropping NVMe and suffix decoding together. It must equal the same variant on the
    scenario whose own search lists suffix decoding. (On the default scenario the variant read
    +0.65 %: MTP speculation without NVMe against the baseline's suffix decoding.)"""
    scenario = str(REPO / "scenarios" / "agentic-coding.toml")
    narrow = ("--set", 'search.hardware=["gb200", "gh200"]')

    def variants(*args: str) -> dict[str, float]:
        result = invoke("whatif", scenario, *narrow, *args, "--format", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        return {v["name"]: v["monthly_usd"] for v in doc["variants"]} | {"baseline": doc["baseline"]["monthly_usd"]}

    added = variants("--variants", "hbm-dram-only,spec-suffix")
    listed = variants("--set", 'search.spec_method=["suffix"]', "--variants", "hbm-dram-only")
    assert added["baseline"] == pytest.approx(listed["baseline"], rel=1e-6)
    assert added["hbm-dram-only"] == pytest.approx(listed["hbm-dram-only"], rel=1e-6)


def test_a_disaggregated_only_scenario_stays_disaggregated_in_the_analyses(invoke) -> None:
    """whatif, sweep and project answered a `serving_mode = ["disaggregated"]` scenario with an
    aggregated plan (chat: $14,421 aggregated where `solve` says $16,900 disaggregated)."""
    scenario = str(REPO / "scenarios" / "chat.toml")
    only = ("--set", 'search.serving_mode=["disaggregated"]', "--set", 'search.hardware=["gb200", "gh200"]')
    solved = json.loads(invoke("solve", scenario, *only, "--format", "json").stdout)["best"]
    assert solved["mode"] == "disaggregated"
    doc = json.loads(invoke("whatif", scenario, *only, "--variants", "no-disaggregation,gpu-only",
                            "--format", "json").stdout)
    assert doc["baseline"]["mode"] == "disaggregated"
    assert doc["baseline"]["monthly_usd"] == pytest.approx(solved["monthly_usd"], rel=1e-6)
    variants = {v["name"]: v for v in doc["variants"]}
    assert variants["no-disaggregation"]["best"] is None  # aggregated serving is not in this search
    assert variants["no-disaggregation"]["searched"] is False  # nothing to take away: not "infeasible"
    table = invoke("solve", scenario, *only).stdout
    assert "Aggregated plan per hardware, for comparison (search.serving_mode is disaggregated only)" in table
    swept = json.loads(invoke("sweep", scenario, *only, "--param", "slo.tpot_p95_ms", "--values", "40",
                              "--format", "json").stdout)
    assert swept["points"][0]["best"]["mode"] == "disaggregated"
    projected = json.loads(invoke("project", scenario, *only, "--years", "1", "--format", "json").stdout)
    assert projected["baseline"]["mode"] == "disaggregated"


def test_a_sweep_says_when_its_best_plan_drafts_by_an_added_method(invoke) -> None:
    scenario = str(REPO / "scenarios" / "chat.toml")
    args = ("sweep", scenario, "--set", 'search.hardware=["gh200"]', "--param", "slo.tpot_p95_ms", "--values", "40",
            "--variant", "spec-eagle3")
    doc = json.loads(invoke(*args, "--format", "json").stdout)
    assert doc["search"]["spec_methods_added"] == ["eagle3"]
    assert doc["points"][0]["best"]["spec_method"] == "eagle3"  # gh200 at 40 ms: eagle3 beats the draft model
    assert doc["points"][0]["best_spec_method_added"] is True
    assert "drafts by eagle3, a speculative method the scenario does not search" in invoke(*args).stdout


@pytest.mark.parametrize(("command", "flag"), [
    (["sweep", "--param", "slo.tpot_p95_ms", "--values", "40", "--variant"], "--variant"),
    (["project", "--api"], "--api"), (["whatif", "--variants"], "--variants")])
@pytest.mark.parametrize("empty", ["", ","])
def test_a_list_flag_naming_nothing_is_bad_input(invoke, command: list[str], flag: str, empty: str) -> None:
    """`sweep --variant ,` ran all twenty variants, `--variant ""` none, `project --api ,` the default APIs."""
    result = invoke(command[0], STUDIES / "kv-quantization.toml", *command[1:], empty)
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.strip().splitlines() == [f"error: {flag} {empty!r}: names no "
                                                  + ("API price row" if flag == "--api" else "variant")
                                                  + "; give NAME,... or leave it out"]


def test_project_stops_where_the_rate_passes_what_a_scenario_may_state(invoke) -> None:
    result = invoke("project", STUDIES / "kv-quantization.toml", "--years", "5", "--usage-growth", "100",
                    "--format", "json")
    doc = json.loads(result.stdout)
    rates = [r["arrival_rate_rps"] for r in doc["projection"]]
    assert rates and max(rates) <= 1e6 and len(rates) < 6
    assert f"years {len(rates)}-5 not projected" in result.stderr and "exceeds the 1,000,000 req/s" in result.stderr
    low = invoke("project", STUDIES / "kv-quantization.toml", "--years", "5", "--usage-growth", "0.01")
    assert "not projected" in low.stderr and "is below the 1e-06 req/s" in low.stderr
    assert "e-0" not in low.stdout.split("Monthly bill")[1]  # req/s in digits


def test_project_states_no_trend_when_only_today_was_projected(invoke) -> None:
    result = invoke("project", STUDIES / "kv-quantization.toml", "--years", "3", "--usage-growth", "100",
                    "--set", "workload.arrival_rate_rps=20000")
    assert "not projected" in result.stderr
    assert "Jevons" not in result.stdout and "No rise" not in result.stdout


def test_project_per_token_prices_follow_an_owned_fleets_bill(invoke) -> None:
    """Owned: hardware prices fall, energy does not; $/Mtok fell by the full price factor."""
    doc = json.loads(invoke("project", STUDIES / "kv-quantization.toml", "--years", "2", "--usage-growth", "1",
                            "--set", "cost.mode=own", "--format", "json").stdout)
    first = doc["projection"][0]["self_hosted"]
    for row in doc["projection"][1:]:
        plan = row["self_hosted"]
        assert (plan["hardware"], plan["replicas"]) == (first["hardware"], first["replicas"])  # the same load
        ratio = plan["monthly_usd"] / first["monthly_usd"]
        assert ratio > row["price_factor"]  # energy does not fall
        assert plan["usd_per_mtok_output"] == pytest.approx(first["usd_per_mtok_output"] * ratio, rel=2e-3)


@pytest.mark.parametrize(("flag", "value"), [("--price-decline", "nan"), ("--usage-growth", "inf")])
def test_a_non_finite_number_option_says_so(invoke, flag: str, value: str) -> None:
    result = invoke("project", STUDIES / "kv-quantization.toml", flag, value)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"error: {flag}: {value} is not a finite number")
