"""`planner validate FILE` and `planner schema`: check input files, print their JSON Schemas.

`load_scenario` is the one way commands read a scenario: TOML, `--set` overrides, schema validation,
then catalog IDs checked with closest-match errors that name the file and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from planner import io, render
from planner.catalog import (
    CALIBRATION_FILE,
    Catalog,
    for_scenario,
    load_catalog,
    resolve_scenario_paths,
)
from planner.errors import InputFileError
from planner.overrides import apply_overrides
from planner.scenario_checks import check_scenario_ids, written_model_id
from planner.schema import CalibrationFile, HardwareFile, HostTiersFile, ModelsFile, Scenario


class FileKind(StrEnum):
    scenario = "scenario"
    hardware = "hardware"
    models = "models"
    calibration = "calibration"
    host_tiers = "host-tiers"


SCHEMAS: dict[FileKind, type[BaseModel]] = {
    FileKind.scenario: Scenario,
    FileKind.hardware: HardwareFile,
    FileKind.models: ModelsFile,
    FileKind.calibration: CalibrationFile,
    FileKind.host_tiers: HostTiersFile,
}

LABELS = {
    FileKind.scenario: "scenario",
    FileKind.hardware: "hardware file",
    FileKind.models: "models catalog",
    FileKind.calibration: "calibration file",
    FileKind.host_tiers: "host-tiers file",
}

EXPECTED_TABLES = (
    "[workload] (scenario), [[accelerator]] (hardware file), [[model]] (models catalog), "
    "[[family]] (calibration) or [dram]/[nvme] (host tiers)"
)


class ValidateFormat(StrEnum):
    table = "table"
    json = "json"


class SchemaFormat(StrEnum):
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("validate", rich_help_panel="Files")(validate)
    app.command("schema", rich_help_panel="Files")(schema)


# ---------------------------------------------------------------- library helpers


def detect_kind(data: dict[str, Any]) -> FileKind | None:
    if "workload" in data or "slo" in data or isinstance(data.get("model"), dict):
        return FileKind.scenario
    if "accelerator" in data:
        return FileKind.hardware
    if isinstance(data.get("model"), list):
        return FileKind.models
    if "family" in data:
        return FileKind.calibration
    if "dram" in data or "nvme" in data:
        return FileKind.host_tiers
    return None


def load_scenario(path: str | Path, sets: Sequence[str] = (), catalog: Catalog | None = None,
                  trace: str | Path | None = None) -> Scenario:
    """Read, override (`--set`), validate and ID-check a scenario file; with a trace (`workload.trace`
    or `trace`, which wins), fill the workload from it and warn that the trace replaced those values."""
    import sys

    data = io.read_toml(path)
    written = written_model_id(data)
    if sets:
        data = apply_overrides(data, list(sets), path)
    model_set = written_model_id(data) != written  # `model.id=...` or `model={...}`, as written (not yet resolved)
    try:
        validated = io.validate(Scenario, data, path)
    except InputFileError as exc:
        raise _from_set(exc, sets, path) from None
    scenario = resolve_scenario_paths(validated, path)
    catalog = catalog or load_catalog()
    if model_set:
        scenario = _speculation_for_the_model_set(scenario, sets, catalog, path)
    check_scenario_ids(scenario, catalog, path)
    if trace is None and scenario.workload.trace is None:
        return scenario
    from planner.cli.trace_cmds import progress_bar
    from planner.traces.scenario import with_trace

    name = Path(trace or scenario.workload.trace or "").name
    scenario, note = with_trace(scenario, path, trace, progress=progress_bar(name))
    if note:
        sys.stderr.write(f"warning: {note}\n")
    return scenario


def _from_set(exc: InputFileError, sets: Sequence[str], path: str | Path) -> InputFileError:
    """The error, saying the bad value came from `--set` when it did (it read as the file's)."""
    from planner.overrides import overridden_keys

    text = str(exc)
    for key in overridden_keys(list(sets)) if sets else ():
        prefix = f"{path}: {key}:"
        if text.startswith(prefix):
            return InputFileError(f"{path}: {key} (from --set): {text[len(prefix):].lstrip()}")
    return exc


def _speculation_for_the_model_set(scenario: Scenario, sets: Sequence[str], catalog: Catalog,
                                   path: str | Path) -> Scenario:
    """`--set` gave the scenario another model than its file names: its drafter is re-picked
    (`scenario_checks.speculation_for_a_new_model`) with a warning, rather than refusing a file the
    user did not get wrong."""
    import sys

    from planner.overrides import overridden_keys
    from planner.scenario_checks import speculation_for_a_new_model

    scenario, message = speculation_for_a_new_model(scenario, overridden_keys(list(sets)), catalog)
    if message:
        sys.stderr.write(f"warning: {path}: --set model.id={message}\n")
    return scenario


def _check_families(parsed: HardwareFile, path: Path) -> None:
    """A hardware file's families and host CPU classes must exist in the calibration file next to it,
    or, for a user catalog file (none beside it), in the bundled one that `--catalog` checks them
    against: a file `validate` passed was refused by `solve --catalog` for an unknown family."""
    from planner import paths

    calibration_path = path.parent / CALIBRATION_FILE
    if not calibration_path.is_file():
        calibration_path = paths.hardware_dir() / CALIBRATION_FILE
    calibration = io.load(CalibrationFile, calibration_path)
    families = {fam.id for fam in calibration.family}
    cpus = {cpu.id for cpu in calibration.host_cpu}
    for i, acc in enumerate(parsed.accelerator):
        if acc.family not in families:
            raise InputFileError(
                f"{path}: accelerator[{i}].family: '{acc.family}' has no entry in {calibration_path} "
                f"(known: {', '.join(sorted(families))})"
            )
        if cpus and acc.host_cpu not in cpus:
            raise InputFileError(
                f"{path}: accelerator[{i}].host_cpu: '{acc.host_cpu}' has no entry in {calibration_path} "
                f"(known: {', '.join(sorted(cpus))})"
            )


def validate_file(path: Path) -> tuple[FileKind, str]:
    """Validate any planner input file; returns its kind and a one-line summary."""
    data = io.read_toml(path)
    kind = detect_kind(data)
    if kind is None:
        found = ", ".join(sorted(data)) or "nothing"
        raise InputFileError(f"{path}: not a planner file: found {found}; expected {EXPECTED_TABLES}")
    if kind is FileKind.scenario:
        sc = load_scenario(path)
        hardware = sc.search.hardware if isinstance(sc.search.hardware, str) else ", ".join(sc.search.hardware)
        summary = (
            f"'{sc.name}': model {sc.model.id}, {sc.workload.arrival_rate_rps:g} req/s, "
            f"SLO TTFT p95 {sc.slo.ttft_p95_s:g} s / TPOT p95 {sc.slo.tpot_p95_ms:g} ms, hardware {hardware}"
        )
    elif kind is FileKind.models or isinstance(data.get("model"), list):  # models, or a catalog of both
        from planner.catalog import read_catalog_file

        accs, specs = read_catalog_file(path)
        parts = [f"{len(specs)} model{'s' * (len(specs) != 1)}: {', '.join(m.id for m in specs)}"]
        if accs:
            parts.insert(0, f"{len(accs)} accelerator{'s' * (len(accs) != 1)}: {', '.join(a.id for a in accs)}")
            kind = FileKind.hardware
        summary = "; ".join(parts)
    elif kind is FileKind.hardware:
        hw = io.validate(HardwareFile, data, path)
        _check_families(hw, path)
        summary = f"{len(hw.accelerator)} accelerators: {', '.join(a.id for a in hw.accelerator)}"
    elif kind is FileKind.calibration:
        cal = io.validate(CalibrationFile, data, path)
        summary = f"{len(cal.family)} families: {', '.join(f.id for f in cal.family)}"
    else:
        io.validate(HostTiersFile, data, path)
        summary = "DRAM and NVMe prices"
    return kind, summary


# ---------------------------------------------------------------- commands


def validate(
    file: Annotated[Path, typer.Argument(help="A scenario, hardware, models or calibration TOML file.")],
    format: Annotated[ValidateFormat, typer.Option("--format", "-f", help="Output format.")] = ValidateFormat.table,
) -> None:
    """Check a file against its schema (kind detected from its tables) and the catalog IDs it names."""
    kind, summary = validate_file(file)
    warnings = scenario_file_warnings(file) if kind is FileKind.scenario else []
    if format is ValidateFormat.json:
        render.print_json({"file": str(file), "kind": kind.value, "valid": True, "summary": summary,
                           "warnings": warnings})
    else:
        typer.echo(f"ok: {file} is a valid {LABELS[kind]} ({summary})")
        for warning in warnings:
            typer.echo(f"warning: {warning}")


def scenario_warnings_for(scenario: Scenario, catalog: Catalog) -> list[str]:
    """What the planner will serve differently than the scenario says (see planner.truncation)."""
    from planner.truncation import scenario_warnings

    return scenario_warnings(scenario, for_scenario(catalog, scenario).model(scenario.model.id))


def scenario_file_warnings(path: Path, sets: Sequence[str] = ()) -> list[str]:
    catalog = load_catalog()
    return scenario_warnings_for(load_scenario(path, sets, catalog), catalog)


def schema(
    kind: Annotated[FileKind, typer.Argument(help="Which file's schema.")] = FileKind.scenario,
    format: Annotated[SchemaFormat, typer.Option("--format", "-f", help="Output format.")] = SchemaFormat.json,
) -> None:
    """Print the JSON Schema of an input file (field names, units, defaults, allowed values)."""
    from planner.schema.common import json_schema

    render.print_json(json_schema(SCHEMAS[kind]))
