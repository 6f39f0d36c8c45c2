"""Loads the hardware and model catalogs; lookups fail with the closest matching IDs."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from planner import io, paths
from planner.errors import InputFileError, UnknownIdError
from planner.schema import (
    Accelerator,
    CalibrationFamily,
    CalibrationFile,
    HardwareFile,
    HostCpu,
    HostTiersFile,
    ModelsFile,
    ModelSpec,
)

CALIBRATION_FILE = "calibration.toml"
HOST_TIERS_FILE = "host-tiers.toml"
SPECIAL_FILES = {CALIBRATION_FILE, HOST_TIERS_FILE}


@dataclass(frozen=True)
class Catalog:
    hardware: dict[str, Accelerator]
    hardware_sources: dict[str, dict[str, str]]  # accelerator id -> its file's [sources]
    hardware_files: dict[str, Path]
    models: dict[str, ModelSpec]
    model_sources: dict[str, str]
    calibration: dict[str, CalibrationFamily]
    host_tiers: HostTiersFile
    host_cpus: dict[str, HostCpu] = field(default_factory=dict)

    def accelerator(self, hw_id: str) -> Accelerator:
        return _lookup(self.hardware, hw_id, "hardware")

    def model(self, model_id: str) -> ModelSpec:
        return _lookup(self.models, model_id, "model")

    def family(self, acc: Accelerator) -> CalibrationFamily:
        return self.calibration[acc.family]

    def citation(self, acc: Accelerator, field: str) -> str | None:
        key = acc.sources.get(field)
        return self.hardware_sources[acc.id].get(key) if key else None


def closest(name: str, choices: list[str], n: int = 3) -> list[str]:
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not found:
        found = [c for c in choices if name.split("-")[0] in c][:n]
    return found


def _lookup(table: dict, key: str, what: str):
    if key in table:
        return table[key]
    near = closest(key, sorted(table))
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    command = {"model": "models", "hardware": "hardware"}[what]
    raise UnknownIdError(f"unknown {what} ID '{key}'{hint} (see `planner {command} list`)")


def load_hardware_file(path: Path) -> HardwareFile:
    return io.load(HardwareFile, path)


@cache
def load_catalog(hardware_dir: Path | None = None, models_file: Path | None = None) -> Catalog:
    """Read every catalog file once per process (the catalogs are immutable at run time)."""
    hw_dir = hardware_dir or paths.hardware_dir()
    hardware: dict[str, Accelerator] = {}
    sources: dict[str, dict[str, str]] = {}
    files: dict[str, Path] = {}
    for path in sorted(hw_dir.glob("*.toml")):
        if path.name in SPECIAL_FILES:
            continue
        parsed = load_hardware_file(path)
        for acc in parsed.accelerator:
            if acc.id in hardware:
                raise InputFileError(f"{path}: accelerator.id: '{acc.id}' is also defined in {files[acc.id]}")
            hardware[acc.id] = acc
            sources[acc.id] = parsed.sources
            files[acc.id] = path
    calibration = io.load(CalibrationFile, hw_dir / CALIBRATION_FILE)
    families = {fam.id: fam for fam in calibration.family}
    for acc in hardware.values():
        if acc.family not in families:
            raise InputFileError(
                f"{files[acc.id]}: accelerator '{acc.id}'.family: '{acc.family}' has no entry in "
                f"{CALIBRATION_FILE} (known: {', '.join(sorted(families))})"
            )
    host_cpus = {cpu.id: cpu for cpu in calibration.host_cpu}
    for acc in hardware.values():
        if acc.host_cpu not in host_cpus:
            raise InputFileError(
                f"{files[acc.id]}: accelerator '{acc.id}'.host_cpu: '{acc.host_cpu}' has no [[host_cpu]] entry in "
                f"{CALIBRATION_FILE} (known: {', '.join(sorted(host_cpus)) or 'none'})"
            )
    tiers = io.load(HostTiersFile, hw_dir / HOST_TIERS_FILE)
    models_path = models_file or paths.models_file()
    models = io.load(ModelsFile, models_path)
    return Catalog(
        hardware=hardware,
        hardware_sources=sources,
        hardware_files=files,
        models={m.id: m for m in models.model},
        model_sources=models.sources,
        calibration=families,
        host_tiers=tiers,
        host_cpus=host_cpus,
    )
