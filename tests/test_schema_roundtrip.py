"""Every bundled file survives TOML -> model -> TOML (tomli-w) -> model unchanged."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel
from support import hardware_files, ids, scenario_files, special_hardware_files

from planner import io, paths
from planner.cli.file_cmds import SCHEMAS, detect_kind
from planner.schema import HardwareFile, ModelsFile, Scenario


def _roundtrip(schema: type[BaseModel], path: Path) -> None:
    first = io.load(schema, path)
    text = io.dumps_toml(first)
    second = io.validate(schema, tomllib.loads(text), f"{path} (re-serialised)")
    assert second == first
    assert io.dumps_toml(second) == text, "serialising twice must give the same text"


@pytest.mark.parametrize("path", hardware_files(), ids=ids(hardware_files()))
def test_hardware_file_roundtrips(path: Path) -> None:
    _roundtrip(HardwareFile, path)


@pytest.mark.parametrize("path", special_hardware_files(), ids=ids(special_hardware_files()))
def test_calibration_and_tier_files_roundtrip(path: Path) -> None:
    kind = detect_kind(io.read_toml(path))
    assert kind is not None, f"{path.name}: kind not recognised"
    _roundtrip(SCHEMAS[kind], path)


def test_models_file_roundtrips() -> None:
    _roundtrip(ModelsFile, paths.models_file())


@pytest.mark.parametrize("path", scenario_files(), ids=ids(scenario_files()))
def test_scenario_roundtrips(path: Path) -> None:
    _roundtrip(Scenario, path)


def test_bundled_files_exist() -> None:
    assert hardware_files(), "hardware/ has no accelerator files"
    assert paths.models_file().is_file()
    assert scenario_files(), "scenarios/ is empty"
    assert paths.default_scenario().is_file(), "the default scenario (agentic-coding.toml) is missing"
