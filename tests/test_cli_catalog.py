"""`planner hardware|models list|show`: snapshots of the listings, every required ID shown with sources."""

from __future__ import annotations

import json

import pytest
from support import REQUIRED_HARDWARE, REQUIRED_MODELS

from planner.catalog import load_catalog
from planner.schema.hardware import SOURCED_FIELDS
from planner.schema.models import SOURCED_MODEL_FIELDS


@pytest.mark.parametrize("what", ["hardware", "models"])
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_list_snapshot(invoke, snapshot, what: str, fmt: str) -> None:
    result = invoke(what, "list", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout == snapshot


def test_hardware_list_json_has_every_accelerator_with_resolved_sources(invoke) -> None:
    cat = load_catalog()
    rows = json.loads(invoke("hardware", "list", "--format", "json").stdout)
    assert [r["id"] for r in rows] == list(cat.hardware)
    for row in rows:
        acc = cat.hardware[row["id"]]
        assert row["usd_per_hour"] == acc.usd_per_hour and row["memory_gb"] == acc.memory_gb
        assert set(row["sources"]) == set(acc.sources)
        for field, citation in row["sources"].items():
            assert citation == cat.hardware_sources[acc.id][acc.sources[field]]


def test_hardware_list_table_has_one_row_per_accelerator(invoke) -> None:
    out = invoke("hardware", "list").stdout
    for hw_id in load_catalog().hardware:
        assert sum(line.split()[0] == hw_id for line in out.splitlines() if line.strip()) == 1, hw_id
    assert "\x1b[" not in out, "no ANSI codes when stdout is not a terminal"
    assert max(len(line) for line in out.splitlines()) <= 160


@pytest.mark.parametrize("kind", ["gpu", "tpu"])
def test_hardware_list_filters_by_kind(invoke, kind: str) -> None:
    rows = json.loads(invoke("hardware", "list", "--kind", kind, "--format", "json").stdout)
    expected = [a.id for a in load_catalog().hardware.values() if a.kind == kind]
    assert expected and [r["id"] for r in rows] == expected


def test_sram_only_chip_is_labelled_in_the_table(invoke) -> None:
    out = invoke("hardware", "list").stdout
    groq = next(line for line in out.splitlines() if line.startswith("groq-lpu"))
    assert "SRAM" in groq


def test_models_list_json_includes_kv_bytes(invoke) -> None:
    rows = {r["id"]: r for r in json.loads(invoke("models", "list", "--format", "json").stdout)}
    assert set(rows) == set(load_catalog().models)
    assert rows["llama-3.1-70b"]["kv_bytes_per_token_bf16"] == 327_680
    assert rows["deepseek-v3"]["kv_bytes_per_token_bf16"] == 70_272


@pytest.mark.parametrize("hw_id", REQUIRED_HARDWARE)
def test_hardware_show_every_required_id(invoke, hw_id: str) -> None:
    cat = load_catalog()
    acc = cat.accelerator(hw_id)
    table = invoke("hardware", "show", hw_id)
    assert table.exit_code == 0, table.output
    assert hw_id in table.stdout and acc.name in table.stdout
    assert "bf16_tflops" in table.stdout and "usd_per_hour" in table.stdout

    record = json.loads(invoke("hardware", "show", hw_id, "--format", "json").stdout)
    assert record["id"] == hw_id and record["bf16_tflops"] == acc.bf16_tflops
    # the family's scheduler admission interval is shown with the chip: it lengthens TTFT under load
    assert record["admission_interval_steps"] == cat.family(acc).admission_interval_steps
    assert "admission_interval_steps" in table.stdout
    assert record["first_token_steps"] == cat.family(acc).first_token_steps
    assert "first_token_steps" in table.stdout
    for field in SOURCED_FIELDS:
        if record[field] is not None:
            assert record["sources"][field], f"{hw_id}.{field} shown without its citation"


@pytest.mark.parametrize("model_id", REQUIRED_MODELS)
def test_models_show_every_required_id(invoke, model_id: str) -> None:
    spec = load_catalog().model(model_id)
    table = invoke("models", "show", model_id)
    assert table.exit_code == 0, table.output
    assert model_id in table.stdout and "kv_heads" in table.stdout

    record = json.loads(invoke("models", "show", model_id, "--format", "json").stdout)
    assert record["id"] == model_id and record["layers"] == spec.layers
    for field in SOURCED_MODEL_FIELDS:
        if record[field] is not None:
            assert record["sources"][field], f"{model_id}.{field} shown without its citation"
