"""Fuzz the command line with mutated input files: bad input never crashes, hangs or loses a file.

Mutated scenarios (`validate`, `solve` in every format), hardware files (`validate`, and through the
cost model when they still validate), `eval --cases` files, `eval` flags and `solve --set` items.
Mutations: deleted keys, wrong types, extreme values (0, negative, 1e30, 2**64, TOML `nan`/`inf`),
unicode oddities, unknown and misspelt keys, duplicated list entries, then at the text level
truncation, duplicated tables, stray bytes, byte-order marks and other encodings.

Every run must end with exit 0, 1 or 2; exit 2 is exactly one `error: ...` line on stderr and nothing
on stdout; exit 0 or 1 writes nothing to stderr but `warning: ...` lines; no output ever holds a
traceback, and JSON output is strict (no NaN/Infinity); the input
file is byte-for-byte unchanged; each command finishes in bounded time.

CI runs ~150 examples (the `test_fuzz_*` tests). The full run is behind a flag:

    PLANNER_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest -n 2 -q -m slow tests/test_fuzz.py

runs the `slow` tests with that many examples in total, split across the targets like the CI counts.
"""

from __future__ import annotations

import copy
import dataclasses
import faulthandler
import hashlib
import json
import math
import os
import re
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import HARDWARE_TOML, SCENARIO_TOML
from typer.testing import CliRunner

from planner import io, paths
from planner.catalog import load_catalog
from planner.cli import app
from planner.evaluation import EvalCase, evaluate_cases
from planner.schema import HardwareFile

FULL_EXAMPLES = int(os.environ.get("PLANNER_FUZZ_EXAMPLES", "0") or 0)
# Share of the examples per target (CI total 150).
CI_EXAMPLES = {"scenario": 60, "hardware": 35, "cases": 30, "flags": 25}
COMMAND_SECONDS = 60.0  # one command, compile included; a hang is killed by the watchdog below
WATCHDOG_SECONDS = 300.0

# ---------------------------------------------------------------- base documents

SCENARIO_BASE: dict[str, Any] = tomllib.loads(SCENARIO_TOML)
SCENARIO_BASE.update({
    "speculative": {"method": "none", "acceptance_short": 0.8, "acceptance_long": 0.6},
    "serving": {"utilization_max": 0.8, "hbm_fraction": 0.9, "hours_per_month": 730.0},
})
SCENARIO_BASE["workload"]["sessions"] = {"turns": 1, "prefix_reuse": 0.0, "think_time_s": 0.0}
# Small, fixed-length [search] lists: every valid mutation keeps the grid tiny and its shape one of a
# few, so `solve` compiles a handful of times and then answers in milliseconds.
SCENARIO_BASE["search"] = {
    "hardware": ["h100-sxm", "b200"], "chips": [1, 2], "batch": [1, 8, 64], "weight_dtype": ["bf16", "fp8"],
    "kv_dtype": ["bf16", "fp8"], "dram_fraction": [0.0, 0.5], "nvme_fraction": [0.0], "spec_k": [0, 2],
    "prefix_cache": [False, True], "attention": ["flash"],
}

SRAM_HARDWARE_TOML = (
    HARDWARE_TOML.replace('id = "test-gpu"', 'id = "test-lpu"').replace('kind = "gpu"', 'kind = "lpu"')
    .replace('family = "hopper"', 'family = "groq"').replace("hbm_gb = 80\nhbm_gbps = 3350\n",
                                                             "sram_mb = 230\nsram_gbps = 80000\nhbm_gb = 0\nhbm_gbps = 0\n")
    .replace('hbm_gb = "ds"\n', 'hbm_gb = "ds"\nsram_mb = "ds"\nsram_gbps = "ds"\n')
    .replace("host_link_gbps = 64\n", "host_link_gbps = 64\nhost_dram_gb_per_chip = 512\n"
             "host_dram_gbps_per_chip = 100\nnvme_gb_per_chip = 3840\nnvme_gbps_per_chip = 13\n")
    .replace('host_link_gbps = "ds"\n', 'host_link_gbps = "ds"\nhost_dram_gb_per_chip = "ds"\n'
             'host_dram_gbps_per_chip = "ds"\nnvme_gb_per_chip = "ds"\nnvme_gbps_per_chip = "ds"\n')
)
HARDWARE_BASES = [tomllib.loads(HARDWARE_TOML), tomllib.loads(SRAM_HARDWARE_TOML)]

CASES_BASE: dict[str, Any] = {"case": [
    {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "batch": "max", "input": 1024, "output": 256,
     "weight_dtype": "fp8", "kv_dtype": "fp8", "measured": 1234.0, "metric": "throughput_tok_s"},
    {"hardware": "b200", "model": "llama-3.3-70b", "chips": 2, "batch": 32, "input": 4096, "output": 512,
     "spec_k": 2, "spec_alpha": 0.7},
]}

# ---------------------------------------------------------------- value pools

NAN, INF = float("nan"), float("inf")
EXTREME_NUMBERS: list[Any] = [
    0, -1, 1, 2, 3, 7, 64, 4096, 65_536, 10**7, 10**30, -(10**30), 2**63, 2**64, 0.0, -0.0, 1e-300, 1e-30, 1e-6,
    1e-3, 0.5, 0.999, 0.9999999999, 1.0, 1.5, 744.0, 3600.0, 60_000.0, 1e6, 1e30, -1e30, 1e308, NAN, INF, -INF,
]
WEIRD_STRINGS = [
    "", " ", "ü", "h100-sxm\u200b", "\u202eevil", "🚀", "ｈ100-sxm", "H100-SXM", "\x00", "\x1b[31mred", "a" * 300,
    "llama-3.1-8b", "h100-sxm", "all", "nan", "1e30", "max", "bf16", "fp9", "unknown", "unsupported", "none",
    "draft", "mtp", "flash", "Ω≈ç√", "line\nbreak", "tab\there", "2025-01", "\ud7ff", "\U0010ffff",
]
VALID_ALTERNATIVES: dict[str, list[Any]] = {
    "model.id": ["llama-3.1-8b", "llama-3.3-70b", "mixtral-8x7b", "deepseek-v3", "qwen3-30b-a3b", "llama-3.1-405b"],
    "search.hardware": [["h100-sxm", "b200"], ["mi300x", "groq-lpu"], ["tpu-v6e", "cerebras-wse3"],
                        ["a100-sxm-80g", "gaudi3"], ["l4", "sambanova-sn40l"]],
    "search.chips": [[1, 2], [8, 64], [1, 4096]],
    "search.batch": [[1, 8, 64], [2, 32, 512], [4, 16, 65_536]],
    "search.weight_dtype": [["bf16", "fp8"], ["int4", "fp4"], ["fp8", "int8"]],
    "search.kv_dtype": [["bf16", "fp8"], ["int8", "int4"]],
    "search.dram_fraction": [[0.0, 0.5], [0.25, 1.0]],
    "search.nvme_fraction": [[0.0], [0.25]],
    "search.spec_k": [[0, 2], [1, 16]],
    "search.attention": [["flash"], ["naive"]],
    "speculative": [{"method": "draft", "draft_model": "llama-3.2-1b"}, {"method": "mtp"}, {"method": "none"}],
    "workload.sessions": [{"turns": 4, "prefix_reuse": 0.6, "think_time_s": 20.0}, {"turns": 1},
                          {"turns": 10_000, "prefix_reuse": 0.999, "think_time_s": 86_400.0}],
    # (median 1, p90 1e6 is left out: test_hardening's xfail covers its overflow in the cost model)
    "workload.input_tokens": [{"median": 1}, {"median": 10_000_000}, {"median": 100, "p90": 100_000},
                              {"median": 4096, "p90": 4096, "max": 4096}, {"median": 100_000, "mean": 130_000},
                              {"median": 100, "mean": 100, "p90": 200}],
    "workload.output_tokens": [{"median": 1}, {"median": 10_000_000}, {"median": 1, "p90": 10_000_000},
                               {"median": 512, "max": 512}, {"median": 216, "mean": 425, "max": 4096},
                               {"median": 216, "mean": 4000, "max": 4096}, {"median": 1, "mean": 10_000_000}],
    "workload.arrival_rate_rps": [1e-6, 1e6],
    "serving": [{"utilization_max": 0.01, "hbm_fraction": 0.01, "hours_per_month": 1.0},
                {"utilization_max": 0.99, "hbm_fraction": 1.0, "hours_per_month": 744.0}],
    "case.hardware": ["h100-sxm", "b200", "mi300x", "groq-lpu", "cerebras-wse3", "tpu-v6e"],
    "case.model": ["llama-3.1-8b", "llama-3.3-70b", "deepseek-v3", "mixtral-8x7b"],
    "case.weight_dtype": ["bf16", "fp8", "int8", "int4", "fp4"],
    "case.kv_dtype": ["bf16", "fp8", "int8", "int4"],
    "case.batch": ["max", 1, 64, 4096],
    "case.spec_k": [0, 1, 16],
    "case.draft": ["llama-3.2-1b", "llama-3.1-8b"],
    "accelerator.family": ["hopper", "blackwell", "groq", "nosuch"],
    "accelerator.kind": ["gpu", "tpu", "fpga"],
    "accelerator.fp8_tflops": ["unknown", "unsupported", 0.001, 1e7],
    "accelerator.host_dram_gb_per_chip": ["unknown", 0.0, 1e6],
    "accelerator.scale_up_gbps": ["unknown", 0.0, 1e6],
    "accelerator.host_link_gbps": ["unknown", 0.0],
}
EVAL_VALUES = {"hardware": VALID_ALTERNATIVES["case.hardware"], "model": VALID_ALTERNATIVES["case.model"]}


# Values at or near the edges of what the schemas allow: these give valid but extreme inputs.
EDGE_NUMBERS: list[Any] = [1, 2, 10_000, 10_000_000, 1e-6, 1e-3, 0.01, 0.5, 0.6, 0.999, 1.0, 744.0, 3600.0, 60_000.0,
                           1e6, 0.0, 86_400.0]


def _scalar() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(EXTREME_NUMBERS), st.sampled_from(WEIRD_STRINGS), st.booleans(),
        st.integers(-(10**6), 10**6), st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
    )


def _value() -> st.SearchStrategy[Any]:
    return st.one_of(
        _scalar(), _scalar(), _scalar(),
        st.lists(_scalar(), max_size=4),
        st.dictionaries(st.sampled_from(["x", "median", "id", "hardware", "ü"]), _scalar(), max_size=2),
    )


def _typo(key: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["drop", "double", "swap", "case", "suffix", "unicode", "random"]))
    if not key:
        return "x"
    i = data.draw(st.integers(0, len(key) - 1))
    if kind == "drop":
        return key[:i] + key[i + 1:] or "x"
    if kind == "double":
        return key[:i] + key[i] + key[i:]
    if kind == "swap" and len(key) > 1:
        j = min(i + 1, len(key) - 1)
        return key[:i] + key[j] + key[i] + key[j + 1:]
    if kind == "case":
        return key.upper()
    if kind == "suffix":
        return key + data.draw(st.sampled_from(["_ms", "s", "_x", "2"]))
    if kind == "unicode":
        return key[:i] + data.draw(st.sampled_from(["\u200b", "ü", "é", "\u00a0"])) + key[i:]
    return data.draw(st.text(min_size=1, max_size=10))


# ---------------------------------------------------------------- structural mutations


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path (dict keys and list indices) in the document, tables included."""
    found: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path if not isinstance(p, int))


def mutate(doc: dict[str, Any], data: st.DataObject, *, protect_search: bool = False,
           gentle: bool = False) -> dict[str, Any]:
    """1-3 structural mutations of a parsed TOML document; `gentle` ones only swap in valid or edge
    values, so that most of them still validate and reach the cost model."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.sampled_from([1, 1, 1, 2, 3]), label="mutations")):
        all_paths = _paths(doc)
        if not all_paths:
            break
        ops = ["valid", "edge"] if gentle else ["delete", "set", "set", "valid", "edge", "add", "rename", "duplicate"]
        op = data.draw(st.sampled_from(ops), label="op")
        alternatives = [p for p in all_paths if _dotted(p) in VALID_ALTERNATIVES and not isinstance(p[-1], int)]
        numbers = [p for p in all_paths if isinstance(_get(doc, p), int | float) and not isinstance(_get(doc, p), bool)
                   and not (protect_search and p[0] == "search")]
        if op == "valid" and alternatives:
            path = data.draw(st.sampled_from(alternatives), label="path")
        elif op == "edge" and numbers:
            path = data.draw(st.sampled_from(numbers), label="path")
        else:
            path = data.draw(st.sampled_from(all_paths), label="path")
        parent, key = _get(doc, path[:-1]), path[-1]
        in_search = protect_search and path[0] == "search"
        if op == "valid" and _dotted(path) in VALID_ALTERNATIVES:
            parent[key] = copy.deepcopy(data.draw(st.sampled_from(VALID_ALTERNATIVES[_dotted(path)])))
        elif op == "edge" and path in numbers:
            parent[key] = data.draw(st.sampled_from(EDGE_NUMBERS), label="edge")
        elif op == "delete" and not in_search:
            del parent[key]
        elif op in ("set", "valid", "delete", "edge"):
            value = data.draw(_value(), label="value")
            if in_search and _valid_search_value(path, value):
                value = [0]  # stays invalid: valid [search] changes come only from VALID_ALTERNATIVES
            parent[key] = value
        elif op == "add" and isinstance(parent, dict):
            siblings = [k for k in parent if isinstance(k, str)]
            name = _typo(data.draw(st.sampled_from(siblings)), data) if siblings else "extra"
            parent[name] = data.draw(_value(), label="added")
        elif op == "rename" and isinstance(parent, dict):
            new = _typo(str(key), data)
            parent[new] = parent.pop(key)
        elif op == "duplicate" and isinstance(parent, list) and len(parent) < 4:
            parent.append(copy.deepcopy(parent[key]))
    return doc


def _valid_search_value(path: tuple[Any, ...], value: Any) -> bool:
    """Would this value pass validation in [search]? Those could grow the grid; they are excluded."""
    from planner.schema.scenario import Search

    if len(path) < 2 or not isinstance(path[1], str):
        return True  # replacing [search] itself, or a list element: keep it out
    try:
        Search.model_validate({**SCENARIO_BASE["search"], path[1]: value})
    except Exception:
        return False
    return True


def render_text(doc: dict[str, Any], data: st.DataObject, *, gentle: bool = False) -> bytes:
    """The document as TOML, then maybe broken at the text level (never when `gentle`)."""
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # e.g. a key tomli_w cannot write; fall back to a valid base
        text = "x = 1\n"
    if gentle:
        return text.encode("utf-8")
    op = data.draw(st.sampled_from(["none"] * 4 + ["truncate", "dup_table", "insert", "bom", "utf16", "latin1",
                                                   "crlf", "nul"]), label="text_op")
    raw = text.encode("utf-8")
    if op == "truncate":
        raw = raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)), label="cut")]
    elif op == "dup_table":
        tables = re.findall(r"^\[[^\n]*\]\n(?:[^\[\n][^\n]*\n)*", text, flags=re.M)
        if tables:
            raw = (text + data.draw(st.sampled_from(tables))).encode("utf-8")
    elif op == "insert":
        junk = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf", "\u2028".encode(), b"=",
                                          b"[", b'"', b"\n[slo]\n", b"\r"]))
        at = data.draw(st.integers(0, len(raw)), label="at")
        raw = raw[:at] + junk + raw[at:]
    elif op == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif op == "utf16":
        raw = text.encode("utf-16")
    elif op == "latin1":
        raw = (text + 'extra = "café"\n').encode("latin-1", errors="replace")
    elif op == "crlf":
        raw = text.replace("\n", "\r\n").encode("utf-8")
    elif op == "nul":
        raw = raw + b"\x00"
    return raw


# ---------------------------------------------------------------- running and checking


RUNNER = CliRunner()


@dataclasses.dataclass
class Run:
    args: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(*args: str | Path) -> Run:
    argv = [str(a) for a in args]
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)  # a hang fails loudly, not forever
    try:
        start = time.perf_counter()
        result = RUNNER.invoke(app, argv, catch_exceptions=False)
        seconds = time.perf_counter() - start
    finally:
        faulthandler.cancel_dump_traceback_later()
    return Run(argv, result.exit_code, result.stdout, result.stderr, seconds)


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _strict_json(text: str) -> Any:
    def bad(name: str) -> Any:
        raise AssertionError(f"non-finite number {name} in JSON output")

    return json.loads(text, parse_constant=bad)


NON_FINITE = re.compile(r"(?<![\w.])-?(nan|inf|infinity)(?![\w])", re.IGNORECASE)


def check_run(run: Run, *, fmt: str = "table", echoed: tuple[str, ...] = ()) -> None:
    """The contract every command keeps, whatever the input."""
    where = f"planner {' '.join(run.args)!r}\nstdout: {run.stdout[-2000:]!r}\nstderr: {run.stderr[-2000:]!r}"
    assert run.code in (0, 1, 2), f"exit {run.code}: {where}"
    assert "Traceback" not in run.stdout + run.stderr, where
    assert "internal error" not in run.stderr, where
    assert run.seconds < COMMAND_SECONDS, f"took {run.seconds:.1f} s: {where}"
    if run.code == 2:
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"exit 2 needs one error line: {where}"
        assert run.stdout == "", where
        return
    # valid input served differently than written says so on stderr, one warning per line
    assert all(line.startswith("warning: ") for line in run.stderr.splitlines()), where
    if fmt == "json":
        _strict_json(run.stdout)
    shown = run.stdout
    for text in sorted(echoed, key=len, reverse=True):  # the user's own strings ("nan" as a name) are not numbers
        if text:
            shown = shown.replace(text, "").replace(json.dumps(text)[1:-1], "")
    assert not NON_FINITE.search(shown), f"non-finite number in the output: {where}"


def _write(directory: Path, name: str, raw: bytes) -> Path:
    path = directory / name
    path.write_bytes(raw)
    return path


def _strings_in(doc: Any) -> tuple[str, ...]:
    if isinstance(doc, str):
        return (doc, " ".join(doc.split()))
    if isinstance(doc, dict):
        return tuple(s for k, v in doc.items() for s in (*_strings_in(k), *_strings_in(v)))
    if isinstance(doc, list):
        return tuple(s for v in doc for s in _strings_in(v))
    return ()


# ---------------------------------------------------------------- targets


def fuzz_scenario(directory: Path, data: st.DataObject) -> None:
    gentle = data.draw(st.booleans(), label="gentle")
    doc = mutate(SCENARIO_BASE, data, protect_search=True, gentle=gentle)
    path = _write(directory, "scenario.toml", render_text(doc, data, gentle=gentle))
    before = _digest(path)
    command = data.draw(st.sampled_from(["validate", "validate-json", "solve", "solve", "solve-json",
                                         "solve-csv", "solve-toml"]), label="command")
    if command == "validate":
        run, fmt = run_cli("validate", path), "table"
    elif command == "validate-json":
        run, fmt = run_cli("validate", path, "--format", "json"), "json"
    else:
        fmt = command.partition("-")[2] or "table"
        run = run_cli("solve", path, "--format", fmt, "--top", "3")
        if run.code in (0, 1) and fmt == "toml":
            tomllib.loads(run.stdout)
    check_run(run, fmt=fmt, echoed=_strings_in(doc))
    assert _digest(path) == before, "reading a scenario modified it"


def fuzz_hardware(directory: Path, data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(HARDWARE_BASES), label="base")
    gentle = data.draw(st.booleans(), label="gentle")
    doc = mutate(base, data, gentle=gentle)
    calibration = directory / "calibration.toml"
    if not calibration.exists():
        calibration.write_bytes((paths.hardware_dir() / "calibration.toml").read_bytes())
    raw = render_text(doc, data, gentle=gentle)
    path = _write(directory, "chips.toml", raw)
    before = _digest(path)
    fmt = data.draw(st.sampled_from(["table", "json"]), label="format")
    run = run_cli("validate", path, "--format", fmt)
    check_run(run, fmt=fmt, echoed=_strings_in(doc))
    assert _digest(path) == before, "reading a hardware file modified it"
    if run.code == 0 and "accelerator" in doc:
        _through_the_model(path)


def _through_the_model(path: Path) -> None:
    """A hardware file that validates must give finite predictions (or None), never a crash."""
    parsed = io.load(HardwareFile, path)
    catalog = load_catalog()
    for acc in parsed.accelerator:
        if acc.family not in catalog.calibration:
            continue
        sources = {**catalog.hardware_sources, acc.id: parsed.sources}
        cat = dataclasses.replace(catalog, hardware={**catalog.hardware, acc.id: acc}, hardware_sources=sources)
        rows = evaluate_cases([EvalCase(hardware=acc.id, model="llama-3.1-8b", chips=1, batch="max", input=1024,
                                        output=256, weight_dtype="fp8", kv_dtype="fp8")], cat)
        json.dumps(rows, allow_nan=False)  # None for non-finite is fine, NaN is not


def fuzz_cases(directory: Path, data: st.DataObject) -> None:
    gentle = data.draw(st.booleans(), label="gentle")
    doc = mutate(CASES_BASE, data, gentle=gentle)
    path = _write(directory, "cases.toml", render_text(doc, data, gentle=gentle))
    before = _digest(path)
    fmt = data.draw(st.sampled_from(["table", "json"]), label="format")
    run = run_cli("eval", "--cases", path, "--format", fmt)
    check_run(run, fmt=fmt, echoed=_strings_in(doc))
    assert _digest(path) == before, "reading a cases file modified it"


EVAL_FLAGS = {
    "--hardware": st.one_of(st.sampled_from(EVAL_VALUES["hardware"]), st.sampled_from(WEIRD_STRINGS)),
    "--model": st.one_of(st.sampled_from(EVAL_VALUES["model"]), st.sampled_from(WEIRD_STRINGS)),
    "--chips": st.sampled_from(["0", "-1", "1", "8", "100000", "100001", "1e3", "x", "99999999999999999999"]),
    "--batch": st.sampled_from(["max", "0", "1", "64", "1000000", "-3", "MAX", "1.5", "nan"]),
    "--input": st.sampled_from(["0", "1", "1024", "10000000", "10000001", "-5"]),
    "--output": st.sampled_from(["0", "1", "256", "10000000", "x"]),
    "--weight-dtype": st.sampled_from(["bf16", "fp8", "int8", "int4", "fp4", "fp9", "", "BF16"]),
    "--kv-dtype": st.sampled_from(["bf16", "fp8", "int8", "int4", "fp4", "q"]),
    "--spec-k": st.sampled_from(["0", "2", "16", "17", "-1", "x"]),
    "--spec-alpha": st.sampled_from(["0.7", "0", "1", "0.001", "0.999", "nan", "inf", "-0.5", "1e-300", "abc"]),
    "--format": st.sampled_from(["table", "json", "xml"]),
}


def fuzz_flags(directory: Path, data: st.DataObject) -> None:
    """`eval` flags, and `solve --set KEY=VALUE` items, with wrong and extreme values."""
    if data.draw(st.booleans(), label="eval"):
        args: list[str] = ["eval"]
        for flag, values in EVAL_FLAGS.items():
            if flag in ("--hardware", "--model") or data.draw(st.booleans()):
                args += [flag, data.draw(values, label=flag)]
        fmt = args[args.index("--format") + 1] if "--format" in args else "table"
        check_run(run_cli(*args), fmt=fmt, echoed=tuple(args))
        return
    from planner.overrides import known_paths

    path = directory / "set-base.toml"
    if not path.exists():
        path.write_text(tomli_w.dumps(SCENARIO_BASE), encoding="utf-8")
    before = _digest(path)
    args = ["validate" if data.draw(st.booleans()) else "solve", str(path)]
    keys = [k for k in known_paths() if not k.startswith("search")]
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.one_of(st.sampled_from(keys), st.sampled_from(keys).map(lambda k: k + "x"),
                                  st.sampled_from(["", "=", "search", "slo.", ".slo", "search.batch"])))
        value = data.draw(st.one_of(st.sampled_from([str(v) for v in EXTREME_NUMBERS]),
                                    st.sampled_from(WEIRD_STRINGS), st.sampled_from(["[]", "{}", "[1,", "{x=1}"])))
        if key == "search.batch":
            value = "[0]"  # only invalid [search] values: the grid stays small
        args += ["--set", f"{key}={value}" if key != "=" else value]
    if args[0] == "solve":
        args[2:2] = ["--format", "json"]
    run = run_cli(*args)
    check_run(run, fmt="json" if args[0] == "solve" else "table", echoed=tuple(args))
    assert _digest(path) == before


TARGETS: dict[str, Callable[[Path, st.DataObject], None]] = {
    "scenario": fuzz_scenario, "hardware": fuzz_hardware, "cases": fuzz_cases, "flags": fuzz_flags,
}


def _examples(target: str, full: bool) -> int:
    if not full:
        return CI_EXAMPLES[target]
    total = sum(CI_EXAMPLES.values())
    return max(1, math.ceil(FULL_EXAMPLES * CI_EXAMPLES[target] / total))


def _make_test(target: str, full: bool):
    @settings(max_examples=_examples(target, full), deadline=None, derandomize=not full, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=st.data())
    def test(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
        directory = tmp_path_factory.getbasetemp() / f"fuzz-{target}"
        directory.mkdir(exist_ok=True)
        with np.errstate(all="ignore"):
            TARGETS[target](directory, data)

    return test


test_fuzz_scenario = _make_test("scenario", full=False)
test_fuzz_hardware = _make_test("hardware", full=False)
test_fuzz_cases = _make_test("cases", full=False)
test_fuzz_flags = _make_test("flags", full=False)

_full = pytest.mark.skipif(not FULL_EXAMPLES, reason="set PLANNER_FUZZ_EXAMPLES=1000 to run the full fuzz")
test_full_fuzz_scenario = pytest.mark.slow(_full(_make_test("scenario", full=True)))
test_full_fuzz_hardware = pytest.mark.slow(_full(_make_test("hardware", full=True)))
test_full_fuzz_cases = pytest.mark.slow(_full(_make_test("cases", full=True)))
test_full_fuzz_flags = pytest.mark.slow(_full(_make_test("flags", full=True)))
