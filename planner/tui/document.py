"""The scenario being edited: raw TOML data, validated after every edit, with a saved baseline.

Plain Python (no Textual): the app owns one `ScenarioDocument`, the panel only shows it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planner import io
from planner.catalog import Catalog, for_scenario, is_config_path, resolve_scenario_paths, tokenizer_mismatch
from planner.errors import PlannerError, UnknownIdError
from planner.lengths import other_shape
from planner.scenario_checks import length_mean_problem
from planner.schema import Scenario
from planner.tomledit import merged_toml


@dataclass(frozen=True)
class FieldError:
    loc: str  # dotted path the schema blames ("" for the whole scenario)
    message: str


@dataclass
class ScenarioDocument:
    """`path` is where ctrl+s writes without asking; None for an untitled or bundled scenario."""

    data: dict[str, Any]
    catalog: Catalog
    path: Path | None = None
    origin: str = "untitled"  # shown in the title: the file name or "bundled: <name>"
    scenario: Scenario | None = None  # the last valid state
    errors: list[FieldError] = field(default_factory=list)
    saved: Scenario | None = None
    source_text: str | None = None  # the file as read: saves keep its comments and layout
    base: Path | None = None  # the file whose folder relative paths (catalog, config.json, trace) start from

    @classmethod
    def from_file(cls, path: Path, catalog: Catalog, *, bundled: bool = False) -> ScenarioDocument:
        """Read and validate a scenario file; every problem is one `PlannerError` line naming it."""
        text = io.read_text(path)
        data = io.parse_toml(text, path)
        scenario = resolve_scenario_paths(io.validate(Scenario, data, path), path)
        try:
            _check_ids(scenario, catalog)
        except _IdError as exc:
            raise UnknownIdError(f"{path}: {exc.loc}: {exc.message}") from None
        doc = cls(data=data, catalog=catalog, path=None if bundled else path,
                  origin=f"bundled: {path.name}" if bundled else str(path), source_text=text, base=Path(path))
        doc.validate()
        doc.saved = doc.scenario
        return doc

    # ------------------------------------------------------------------ edits

    def get(self, path: str) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def set(self, path: str, value: Any) -> None:
        """Set (or, for None, remove) the value at a dotted path, creating tables as needed."""
        parts = path.split(".")
        node = self.data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
            replaced = other_shape(path)  # a length's p90 and mean are alternatives: the edit wins
            if replaced is not None:
                node.pop(replaced.rpartition(".")[2], None)

    def repick_drafter(self) -> str | None:
        """After the model changed: keep speculation valid (see catalog.repick_drafter); says what changed."""
        from planner.catalog import repick_drafter

        try:
            target = for_scenario(self.catalog, self.scenario).model(self.get("model.id")) if self.scenario \
                else self.catalog.model(self.get("model.id"))
        except PlannerError:
            return None  # an unknown ID: validation reports it
        method, draft, message = repick_drafter(self.catalog, target, self.get("speculative.method") or "none",
                                                self.get("speculative.draft_model"))
        if message:
            self.set("speculative.method", method)
            self.set("speculative.draft_model", draft)
        return message

    def validate(self) -> Scenario | None:
        """Validate the data; on success `scenario` is replaced, on failure `errors` says why."""
        try:
            scenario = Scenario.model_validate(self.data)
            if self.base is not None:  # as `planner solve` reads them, whatever the working directory
                scenario = resolve_scenario_paths(scenario, self.base)
        except ValidationError as exc:
            self.errors = [FieldError(".".join(str(p) for p in e["loc"]), _message(e))
                           for e in exc.errors(include_url=False)]
            return None
        try:
            _check_ids(scenario, self.catalog)
        except _IdError as exc:
            self.errors = [FieldError(exc.loc, exc.message)]
            return None
        self.errors = []
        self.scenario = scenario
        return scenario

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def dirty(self) -> bool:
        return bool(self.errors) or self.scenario != self.saved

    def toml(self, data: dict[str, Any] | None = None) -> str:
        """The edited data (or `data`) written into the file it came from: comments, order and layout
        stay; only changed values change. An untitled scenario is written plainly."""
        if self.scenario is None or self.errors:
            raise PlannerError("the scenario has errors; fix them before saving")
        if self.source_text is None:
            return io.dumps_toml(self.scenario)
        return merged_toml(self.source_text, self.data if data is None else data)

    def relocated(self, target: Path) -> dict[str, Any]:
        """The data with its relative file references (catalog files, a config.json model, a trace)
        rewritten from this file's folder to `target`'s: "save as" elsewhere kept them as written, and
        the saved file pointed at files that are not there."""
        if self.base is None or self.base.resolve().parent == target.resolve().parent:
            return self.data
        old, new = self.base.resolve().parent, target.resolve().parent

        def moved(ref: Any) -> Any:
            if not isinstance(ref, str) or not ref or Path(ref).is_absolute():
                return ref
            return os.path.relpath(old / ref, new)

        data = copy.deepcopy(self.data)
        if isinstance(data.get("catalog"), list):
            data["catalog"] = [moved(ref) for ref in data["catalog"]]
        model, workload = data.get("model"), data.get("workload")
        if isinstance(model, dict) and isinstance(model.get("id"), str) and is_config_path(model["id"]):
            model["id"] = moved(model["id"])
        if isinstance(workload, dict) and "trace" in workload:
            workload["trace"] = moved(workload["trace"])
        return data

    def suggested_name(self) -> str:
        """A file name for "save as": the opened file's, unless the model changed since; else
        `<model-id>.toml` (a scenario is mostly about its model)."""
        model = self.scenario.model.id if self.scenario else None
        if self.path is not None and (self.saved is None or self.saved.model.id == model):
            return self.path.name
        if model and is_config_path(model):  # a config.json path: its folder names the model
            model = Path(model).parent.name or Path(model).stem
        return f"{model or 'scenario'}.toml"

    def save(self, path: Path, *, overwrite: bool) -> None:
        data = self.relocated(path)
        text = self.toml(data)
        io.atomic_write_text(path, text, overwrite=overwrite)
        self.data = data
        self.source_text = text
        self.path = self.base = path
        self.origin = str(path)
        self.saved = self.scenario

    def copy_data(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


class _IdError(Exception):
    def __init__(self, loc: str, message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


def _check_ids(scenario: Scenario, catalog: Catalog) -> None:
    catalog = for_scenario(catalog, scenario)
    refs = [("model.id", scenario.model.id, catalog.model)]
    if scenario.speculative.draft_model is not None:
        refs.append(("speculative.draft_model", scenario.speculative.draft_model, catalog.model))
    if isinstance(scenario.search.hardware, list):
        if not scenario.search.hardware:
            raise _IdError("search.hardware", "select at least one hardware")
        refs += [("search.hardware", hw, catalog.accelerator) for hw in scenario.search.hardware]
    for loc, ident, lookup in refs:
        try:
            lookup(ident)
        except UnknownIdError as exc:
            raise _IdError(loc, str(exc)) from None
    spec = scenario.speculative
    if spec.method == "draft" and spec.draft_model is not None:
        why = tokenizer_mismatch(catalog.model(spec.draft_model), catalog.model(scenario.model.id))
        if why:
            raise _IdError("speculative.draft_model", why)
    problem = length_mean_problem(scenario, catalog.model(scenario.model.id).max_context)
    if problem:
        raise _IdError(*problem)


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "missing":
        return "required"
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return str(error["msg"]).removeprefix("Value error, ")
