"""Quality floors: the [quality] section masks precisions, warns about it, and 4-bit plans are flagged."""

from __future__ import annotations

import json

import pytest
from support import with_dotted

from planner import io, paths, quality
from planner.catalog import load_catalog
from planner.schema import Scenario
from planner.search import solve

SEARCH = {"hardware": ["h100-sxm"], "chips": [4, 8], "batch": [8, 32], "weight_dtype": ["fp8", "int4"],
          "kv_dtype": ["fp8", "int4"], "dram_fraction": [0.0], "nvme_fraction": [0.0], "spec_k": [0],
          "prefix_cache": [True], "attention": ["flash"]}


def scenario(**updates) -> Scenario:
    data = io.read_toml(paths.scenarios_dir() / "studies" / "prompt-cache-agentic.toml")
    data["search"] = dict(SEARCH)
    data.pop("quality")
    return io.validate(Scenario, with_dotted(data, updates), "test")


def test_bits_order_the_floors() -> None:
    sc = scenario(**{"quality.weight_dtype_min": "fp8", "quality.kv_dtype_min": "fp8"})
    assert [quality.weight_ok(sc, d) for d in ("bf16", "fp8", "int8", "int4", "fp4")] == [True, True, True, False, False]
    assert [quality.kv_ok(sc, d) for d in ("bf16", "fp8", "int8", "int4")] == [True, True, True, False]


def test_4bit_kv_is_refused_only_at_long_context() -> None:
    # prompt median 48,000 >= the default long_context_tokens of 32,768
    assert not quality.kv_ok(scenario(), "int4")
    assert quality.kv_ok(scenario(**{"quality.kv_4bit_long_context": True}), "int4")
    assert quality.kv_ok(scenario(**{"workload.input_tokens": {"median": 8000}}), "int4")
    assert quality.kv_ok(scenario(**{"quality.long_context_tokens": 48001}), "int4")


def test_the_floor_is_applied_and_warned_about() -> None:
    catalog = load_catalog()
    free = solve(scenario(**{"quality.kv_4bit_long_context": True}), catalog)
    floored = solve(scenario(), catalog)
    assert floored.best is not None
    assert floored.best["kv_dtype"] == "fp8"
    assert free.best["monthly_usd"] <= floored.best["monthly_usd"]  # a constraint never lowers the bill
    (note,) = quality.excluded(floored.grid.scenario)
    assert note.startswith("search.kv_dtype int4 not searched: 4-bit KV at long context (prompt median 48,000")


def test_a_floor_that_empties_an_axis_is_bad_input(invoke, tmp_path) -> None:
    path = tmp_path / "s.toml"
    text = (paths.scenarios_dir() / "studies" / "prompt-cache-agentic.toml").read_text()
    path.write_text(text.replace('kv_dtype = ["fp8", "int4"]', 'kv_dtype = ["int4"]')
                    .replace("kv_4bit_long_context = true", "kv_4bit_long_context = false"))
    result = invoke("solve", str(path))
    assert result.exit_code == 2
    assert "search.kv_dtype: every value (int4) is excluded by [quality]" in result.output


@pytest.mark.parametrize(("w", "kv", "expected"), [
    ("fp8", "fp8", None),
    ("int4", "fp8", "4-bit weights: accuracy not modelled; check it on your own evals"),
    ("fp8", "int4", "4-bit KV cache: accuracy not modelled; check it on your own evals"),
    ("fp4", "int4", "4-bit weights and KV cache: accuracy not modelled; check it on your own evals"),
])
def test_four_bit_note(w: str, kv: str, expected: str | None) -> None:
    assert quality.four_bit_note(w, kv) == expected


def test_4bit_plans_say_so_next_to_their_bill(invoke) -> None:
    path = paths.scenarios_dir() / "studies" / "prompt-cache-agentic.toml"  # opts in to int4 KV
    table = invoke("solve", path)
    assert table.exit_code == 0, table.output
    flagged = [line for line in table.stdout.splitlines() if "fp8/int4" in line]
    # a narrow terminal may wrap the mark under its bill: count the marks, not the lines
    assert flagged and table.stdout.count("(4-bit)") >= len(flagged)
    assert "note: 4-bit KV cache: accuracy not modelled" in table.stdout
    doc = json.loads(invoke("solve", path, "--format", "json").stdout)
    for plan in doc["per_hardware"]:
        assert (plan["quality_note"] is not None) == (plan["kv_dtype"] == "int4" or plan["weight_dtype"] == "int4")
    assert doc["quality"]["kv_4bit_long_context"] is True
    assert not any("quality" in w or "4-bit" in w for w in doc["warnings"])  # the floor removed nothing
