"""`planner validate` on every kind of bundled file and `planner schema`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from support import SCENARIO_TOML, hardware_files, ids, special_hardware_files

from planner import paths


@pytest.mark.parametrize("path", hardware_files(), ids=ids(hardware_files()))
def test_validate_hardware_file(invoke, path: Path) -> None:
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok: {path} is a valid hardware file (")


@pytest.mark.parametrize("path", special_hardware_files(), ids=ids(special_hardware_files()))
def test_validate_calibration_and_tiers(invoke, path: Path) -> None:
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok: {path} is a valid ")


def test_validate_models_catalog(invoke) -> None:
    result = invoke("validate", paths.models_file())
    assert result.exit_code == 0, result.output
    assert "is a valid models catalog" in result.stdout and "llama-3.1-8b" in result.stdout


def test_validate_json(invoke, write: Callable[[str, str], Path]) -> None:
    path = write("s.toml", SCENARIO_TOML)
    result = invoke("validate", path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "file": str(path), "kind": "scenario", "valid": True,
        "summary": "'test': model llama-3.1-8b, 2 req/s, SLO TTFT p95 2 s / TPOT p95 50 ms, hardware h100-sxm, b200",
        "warnings": [],
    }


@pytest.mark.parametrize(
    ("kind", "title", "required"),
    [(None, "Scenario", {"name", "model", "workload", "slo"}),
     ("scenario", "Scenario", {"name", "model", "workload", "slo"}),
     ("hardware", "HardwareFile", {"sources"}), ("models", "ModelsFile", {"sources", "model"}),
     ("calibration", "CalibrationFile", {"family"}), ("host-tiers", "HostTiersFile", {"sources", "dram", "nvme"})],
)
def test_schema_prints_json_schema(invoke, kind: str | None, title: str, required: set[str]) -> None:
    result = invoke("schema", *([kind] if kind else []), "--format", "json")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["title"] == title and schema["type"] == "object"
    assert set(schema["required"]) == required
    assert schema.get("additionalProperties") is False


def test_schema_states_the_defaults_of_list_fields(invoke) -> None:
    """List and table fields take their defaults from a factory, which pydantic's schema left out:
    `planner schema` said nothing of search.chips' [1, 2, 4, ...]. They are the defaults a scenario
    without the key gets (read from the model itself)."""
    from planner.schema import Scenario
    from planner.schema.scenario import Search

    schema = json.loads(invoke("schema", "--format", "json").stdout)
    search = schema["$defs"]["Search"]["properties"]
    for name in ("chips", "batch", "weight_dtype", "kv_dtype", "dram_fraction", "spec_k", "parallelism", "serving_mode"):
        assert search[name]["default"] == list(getattr(Search(), name)), name
    assert schema["properties"]["prices"]["default"] == {}
    assert "default" not in schema["properties"]["speculative"]  # a whole section: its fields carry theirs
    assert Scenario.model_fields["speculative"].default_factory is not None


def test_help_lists_the_commands(invoke) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("validate", "schema", "solve", "hardware", "models"):
        assert command in result.stdout
    # rich markup once ate the table names ("a TOML file with [] and/or [] tables")
    text = " ".join(result.stdout.split()).replace("│ ", "")
    assert "[[model]]" in text and "[[accelerator]]" in text


def test_group_without_subcommand_prints_its_help(invoke) -> None:
    result = invoke("hardware")
    assert result.exit_code == 0, result.output
    assert "list" in result.stdout and "show" in result.stdout and result.stderr == ""
