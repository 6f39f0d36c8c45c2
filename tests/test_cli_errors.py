"""Bad input: exit 2 with exactly one line on stderr naming the file and the field; never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import HARDWARE_TOML, SCENARIO_TOML, ids, scenario_files
from typer.testing import Result

import planner.cli
import planner.cli.file_cmds
from planner import paths

# (case id, file name, content or None for "do not create", expected fragments of the message)
BAD_SCENARIOS: list[tuple[str, str, str | bytes | None, tuple[str, ...]]] = [
    ("missing-file", "missing.toml", None, ("missing.toml", "file not found")),
    ("not-toml", "broken.toml", 'name = "x"\n[slo\n', ("broken.toml", "not valid TOML")),
    ("not-utf8", "latin1.toml", 'name = "caf\xe9"\n'.encode("latin-1"), ("latin1.toml", "not UTF-8")),
    ("wrong-type", "wrongtype.toml", SCENARIO_TOML.replace("tpot_p95_ms = 50.0", 'tpot_p95_ms = "fast"'),
     ("wrongtype.toml", "slo.tpot_p95_ms", "'fast'")),
    ("out-of-range", "range.toml", SCENARIO_TOML.replace("arrival_rate_rps = 2.0", "arrival_rate_rps = -1"),
     ("range.toml", "workload.arrival_rate_rps", "greater than 0")),
    ("unknown-key", "typo.toml", SCENARIO_TOML.replace("tpot_p95_ms = 50.0", "tpot_p95 = 50.0"),
     ("typo.toml", "slo.tpot_p95", "unknown key")),
    ("missing-key", "nokey.toml", SCENARIO_TOML.replace("ttft_p95_s = 2.0\n", ""),
     ("nokey.toml", "slo.ttft_p95_s", "required key is missing")),
    ("unknown-model", "model.toml", SCENARIO_TOML.replace('id = "llama-3.1-8b"', 'id = "llama-3.1-7b"'),
     ("model.toml", "model.id", "unknown model ID 'llama-3.1-7b'", "'llama-3.1-8b'")),
    ("unknown-hardware", "hw.toml", SCENARIO_TOML.replace('"b200"]', '"h100"]'),
     ("hw.toml", "search.hardware[1]", "unknown hardware ID 'h100'", "'h100-sxm'")),
]


def _assert_one_line_error(result: Result, *fragments: str, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {result.stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert "Traceback" not in result.output
    return lines[0]


def _make(tmp_path: Path, name: str, content: str | bytes | None) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["validate", "solve"])
@pytest.mark.parametrize(("name", "content", "fragments"), [c[1:] for c in BAD_SCENARIOS],
                         ids=[c[0] for c in BAD_SCENARIOS])
def test_bad_scenario_exits_2_with_one_line(invoke, tmp_path: Path, command: str, name: str,
                                            content: str | bytes | None, fragments: tuple[str, ...]) -> None:
    result = invoke(command, _make(tmp_path, name, content))
    line = _assert_one_line_error(result, *fragments)
    assert line.startswith("error: ")
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["validate", "solve"])
def test_directory_is_rejected(invoke, tmp_path: Path, command: str) -> None:
    _assert_one_line_error(invoke(command, tmp_path), str(tmp_path), "is a directory")


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        (["slo.tpot=40"], ("--set slo.tpot", "unknown key", "slo.tpot_p95_ms")),
        (["workload.arrival_rate=3"], ("--set workload.arrival_rate", "workload.arrival_rate_rps")),
        (["slo.tpot_p95_ms"], ("expected KEY=VALUE",)),
        (["slo.tpot_p95_ms=fast"], ("slo.tpot_p95_ms", "'fast'")),
        (["model.id=llama-3.1-7b"], ("model.id", "'llama-3.1-8b'")),
    ],
)
def test_bad_set_exits_2_with_one_line(invoke, write: Callable[[str, str], Path], sets: list[str],
                                       fragments: tuple[str, ...]) -> None:
    path = write("ok.toml", SCENARIO_TOML)
    args = [a for item in sets for a in ("--set", item)]
    _assert_one_line_error(invoke("solve", path, *args), "ok.toml", *fragments)


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("hbm_gb = 80\n", "hbm_gb = 0\n", ("accelerator.0", "hbm_gb and hbm_gbps")),
        ('power_w = "ds"\n', "", ("test-gpu", "'power_w' has no entry in sources")),
        ("hbm_gbps = 3350\n", "hbm_gbps = 3350\nhbm_tbps = 1\n", ("accelerator.0.hbm_tbps", "unknown key")),
        ('family = "hopper"', 'family = "nosuch"', ("accelerator[0].family", "'nosuch'")),
    ],
)
def test_bad_hardware_file_exits_2(invoke, tmp_path: Path, old: str, new: str, fragments: tuple[str, ...]) -> None:
    # Next to a calibration file, as in hardware/, so the family check applies.
    (tmp_path / "calibration.toml").write_text((paths.hardware_dir() / "calibration.toml").read_text())
    path = _make(tmp_path, "chips.toml", HARDWARE_TOML.replace(old, new, 1))
    _assert_one_line_error(invoke("validate", path), "chips.toml", *fragments)


def test_unknown_file_kind_says_what_was_expected(invoke, write: Callable[[str, str], Path]) -> None:
    path = write("other.toml", "[tool]\nx = 1\n")
    _assert_one_line_error(invoke("validate", path), "other.toml", "not a planner file", "found tool",
                           "[workload]", "[[accelerator]]", "[[model]]")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["hardware", "show", "h100"], ("unknown hardware ID 'h100'", "'h100-sxm'")),
        (["models", "show", "llama-3.1-7b"], ("unknown model ID 'llama-3.1-7b'", "'llama-3.1-8b'")),
        (["hardware", "show", "h100", "--format", "json"], ("'h100-sxm'",)),
    ],
)
def test_unknown_catalog_id_exits_2(invoke, args: list[str], fragments: tuple[str, ...]) -> None:
    result = invoke(*args)
    _assert_one_line_error(result, *fragments)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--frob"], ("No such option: --frob", "planner --help")),
        (["solve"], ("Missing argument", "planner solve --help")),
        (["hardware", "list", "--format", "xml"], ("--format", "xml", "planner hardware list --help")),
        (["hardware", "list", "--kind", "fpga"], ("--kind", "fpga")),
        (["nosuchcommand"], ("No such command", "nosuchcommand")),
    ],
)
def test_usage_errors_exit_2_with_one_line(invoke, args: list[str], fragments: tuple[str, ...]) -> None:
    _assert_one_line_error(invoke(*args), "error: ", *fragments)


def test_internal_errors_exit_3_without_traceback(invoke, monkeypatch, write) -> None:
    def boom(path: Path) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(planner.cli.file_cmds, "validate_file", boom)
    path = write("ok.toml", SCENARIO_TOML)
    line = _assert_one_line_error(invoke("validate", path), code=3)
    assert line == "internal error: RuntimeError: boom second line (re-run with --debug for the traceback)"


def test_debug_shows_the_traceback(invoke, monkeypatch, write) -> None:
    def boom(path: Path) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(planner.cli.file_cmds, "validate_file", boom)
    result = invoke("--debug", "validate", write("ok.toml", SCENARIO_TOML))
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("internal error: RuntimeError: boom")
    # and the flag does not leak into the next run
    plain = invoke("validate", write("ok2.toml", SCENARIO_TOML))
    assert "Traceback" not in plain.stderr


def test_debug_traceback_for_bad_input_too(invoke, tmp_path: Path) -> None:
    result = invoke("--debug", "validate", tmp_path / "missing.toml")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1] == f"error: {tmp_path / 'missing.toml'}: file not found (check the path)"


# ---------------------------------------------------------------- the real process boundary


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["validate", "does-not-exist.toml"], 2, "error: does-not-exist.toml: file not found"),
        (["--frob"], 2, "error: No such option: --frob"),
        (["hardware", "show", "h100"], 2, "'h100-sxm'"),
    ],
)
def test_real_process_errors(run_planner, args: list[str], code: int, fragment: str) -> None:
    proc = run_planner(*args)
    assert proc.returncode == code, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and fragment in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_main_is_the_same_entry_in_process(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        planner.cli.main(["validate", str(tmp_path / "nope.toml")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.toml'}: file not found (check the path)\n"


def test_import_stays_light() -> None:
    code = "import sys, planner.cli; bad = [m for m in ('jax', 'textual') if m in sys.modules]; print(bad)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", "planner.cli must not import jax or textual at module level"


# ---------------------------------------------------------------- bundled files are valid


@pytest.mark.parametrize("path", scenario_files(), ids=ids(scenario_files()))
def test_every_bundled_scenario_validates(invoke, path: Path) -> None:
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok: {path} is a valid scenario (")
    assert result.stderr == ""


def test_a_reader_that_goes_away_is_not_reported_as_no_feasible_plan(tmp_path) -> None:
    """`planner solve x | head` must not exit 1 (that code means "no feasible plan"): the read end of
    the pipe is closed before the process starts, so its first write fails deterministically."""
    import os
    import subprocess
    import sys

    from support import REPO

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "from planner.cli import main; main()", "hardware", "list"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_a_global_option_after_the_command_says_where_it_goes(invoke):
    result = invoke("solve", "scenarios/chat.toml", "--price", "gh200=2")
    assert result.exit_code == 2
    assert "--price is an option of planner itself: put it before the command (planner --price ... solve)" in result.stderr
