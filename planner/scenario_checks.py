"""Checks of a scenario against the catalog that a schema cannot make: every ID it names exists, its
speculative method suits the model, a draft model shares the tokenizer and is smaller. Used by the
CLI when it loads a file and by analyses (sweep) that build scenarios themselves; errors name the
file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner import render
from planner.catalog import Catalog, for_scenario, tokenizer_mismatch
from planner.errors import InputFileError, PlannerError, UnknownIdError
from planner.schema import Scenario


def check_scenario_ids(scenario: Scenario, catalog: Catalog, source: str | Path) -> None:
    """Every catalog ID the scenario names must exist; the error names the file and the field."""
    for i, extra in enumerate(scenario.catalog):
        if not Path(extra).exists():
            raise InputFileError(f"{source}: catalog[{i}]: {extra}: file not found (a path relative to the "
                                 "scenario file)")
    try:
        catalog = for_scenario(catalog, scenario)
    except PlannerError as exc:  # a [prices] ID, or a bad catalog file the scenario names
        raise type(exc)(f"{source}: {exc}") from None
    refs: list[tuple[str, str, str]] = [("model.id", scenario.model.id, "model")]
    if scenario.speculative.draft_model is not None:
        refs.append(("speculative.draft_model", scenario.speculative.draft_model, "model"))
    if isinstance(scenario.search.hardware, list):
        refs += [(f"search.hardware[{i}]", hw, "hardware") for i, hw in enumerate(scenario.search.hardware)]
    for field, ident, what in refs:
        try:
            catalog.model(ident) if what == "model" else catalog.accelerator(ident)
        except UnknownIdError as exc:
            raise UnknownIdError(f"{source}: {field}: {exc}") from None
        except InputFileError as exc:  # a config.json path that is missing or unreadable
            raise InputFileError(f"{source}: {field}: {exc}") from None
    check_length_means(scenario, catalog.model(scenario.model.id).max_context, source)
    spec = scenario.speculative
    from planner.speculative_methods import check_curve, incompatibility

    problem = check_curve(spec)
    if problem:
        raise InputFileError(f"{source}: speculative.curves: {problem}")
    if spec.method not in ("none", "draft"):
        why = incompatibility(spec.method, catalog, catalog.model(scenario.model.id), spec)
        if why:
            raise InputFileError(f"{source}: speculative.method: {why}")
    if spec.method == "draft" and spec.draft_model is not None:
        from planner.model.arch import param_counts

        draft, target = catalog.model(spec.draft_model), catalog.model(scenario.model.id)
        mismatch = tokenizer_mismatch(draft, target)
        if mismatch:
            raise InputFileError(f"{source}: speculative.draft_model: {mismatch}")
        draft_n, target_n = param_counts(draft).total, param_counts(target).total
        if draft_n >= target_n:
            raise InputFileError(
                f"{source}: speculative.draft_model: '{draft.id}' ({render.count(draft_n)} parameters) is not "
                f"smaller than the model '{target.id}' ({render.count(target_n)}); a draft model must be smaller "
                "than the model it drafts for")


def length_mean_problem(scenario: Scenario, window: int) -> tuple[str, str] | None:
    """(field, why) of a length written with a mean that no log-normal with its median can have under
    its cap (its `max`, else the model's window), or None."""
    from planner.lengths import LengthFitError, served_cap, sigma_for_mean

    for name in ("input_tokens", "output_tokens"):
        d = getattr(scenario.workload, name)
        if d.mean is not None:
            try:
                sigma_for_mean(d.median, d.mean, served_cap(d.max, window))
            except LengthFitError as exc:
                return f"workload.{name}.mean", str(exc)
    return None


def check_length_means(scenario: Scenario, window: int, source: str | Path) -> None:
    """`length_mean_problem` as bad input naming the file and the field."""
    from planner.lengths import LengthFitError

    problem = length_mean_problem(scenario, window)
    if problem:
        raise LengthFitError(f"{source}: {problem[0]}: {problem[1]}")


def written_model_id(data: dict[str, Any]) -> object:
    """`model.id` in a scenario's raw TOML data, as written (before validation and path resolution):
    an override that changes it gave the scenario another model (`speculation_for_a_new_model`)."""
    model = data.get("model")
    return model.get("id") if isinstance(model, dict) else None


def speculation_for_a_new_model(scenario: Scenario, overridden: list[str], catalog: Catalog) -> tuple[Scenario, str]:
    """The scenario's model was changed by an override (`--set`, a sweep's `--param`), so its
    speculation was written for the old one: re-pick the drafter as the TUI does on a model switch
    (`catalog.repick_drafter`: a draft sharing the new model's tokenizer, else its MTP head, else
    off), with a message saying so ("" when nothing changed). An override of `speculative` itself
    is taken as written (and checked as written)."""
    from planner.catalog import repick_drafter

    if any(k == "speculative" or k.startswith("speculative.") for k in overridden):
        return scenario, ""
    try:
        target = for_scenario(catalog, scenario).model(scenario.model.id)
    except PlannerError:
        return scenario, ""  # an unknown ID: check_scenario_ids says so
    spec = scenario.speculative
    method, draft, message = repick_drafter(catalog, target, spec.method, spec.draft_model)
    if not message:
        return scenario, ""
    return (scenario.model_copy(update={"speculative": spec.model_copy(update={"method": method, "draft_model": draft})}),
            f"{target.id}: {message}")
