"""A scenario with `workload.trace`: resolve the path (relative to the scenario file) and fill the
workload from the trace, so every command (solve, whatif, sweep, bench) plans from the same numbers."""

from __future__ import annotations

from pathlib import Path

from planner.errors import InputFileError
from planner.schema import Scenario
from planner.traces.curve import cached_trace_workload
from planner.traces.readers import Progress, TraceError


def with_trace(scenario: Scenario, path: str | Path, trace: str | Path | None = None,
               progress: Progress | None = None) -> tuple[Scenario, str | None]:
    """The scenario with its workload taken from the trace (`trace` wins over `workload.trace`), and
    a one-line note of what the trace replaced (None without a trace)."""
    if trace is not None:
        resolved = Path(trace).resolve()
    elif scenario.workload.trace is not None:
        resolved = (Path(path).parent / scenario.workload.trace).resolve()
    else:
        return scenario, None
    try:
        tw = cached_trace_workload(resolved, progress=progress)
    except TraceError as exc:
        raise InputFileError(f"{path}: workload.trace: {exc}") from None
    w = scenario.workload
    out_mean = output_mean(tw)
    out_shape = {"p90": None, "mean": out_mean} if out_mean else {"p90": max(tw.output_p90, tw.output_median), "mean": None}
    replaced = {
        "trace": str(resolved),
        "input_tokens": w.input_tokens.model_copy(update={
            "median": tw.input_median, "p90": max(tw.input_p90, tw.input_median), "mean": None, "max": tw.input_max}),
        "output_tokens": w.output_tokens.model_copy(update={"median": tw.output_median, **out_shape, "max": tw.output_max}),
        "sessions": w.sessions.model_copy(update={
            "turns": max(int(round(tw.requests_per_session)), 1), "prefix_reuse": tw.prefix_reuse,
            "think_time_s": tw.gap_mean_s, "uncached_scv": tw.uncached_scv}),
    }
    note = (f"{path}: workload.trace: input/output lengths, sessions and prefix reuse come from "
            f"{resolved.name} (input p50 {tw.input_median:,}, p90 {tw.input_p90:,}; output p50 "
            f"{tw.output_median:,}{f', mean {out_mean:,.0f}' if out_mean else ''}; "
            f"{tw.requests_per_session:.1f} requests/session; unbounded prefix hit "
            f"{tw.prefix_reuse:.1%}), not from the scenario's own values")
    gaps = mean_gaps(tw, ("input",) if out_mean else ("input", "output"))
    if gaps:
        note += ("; the log-normal the screen fits through each p50/p90 averages " + ", ".join(gaps)
                 + ": prefill work, decode work, slot occupancy and $/Mtok follow the mean")
    for warning in tw.summary.get("warnings", ()):
        note += f"; and {warning}"
    return scenario.model_copy(update={"workload": w.model_copy(update=replaced)}), note


MEAN_GAP = 0.05
"""Relative gap between a trace's mean length and the mean of the log-normal through its p50 and p90
above which `with_trace` says so (inputs; outputs are fitted through their mean, `output_mean`)."""


def output_mean(tw) -> float | None:
    """The trace's mean output length, which `with_trace` fits the output log-normal through (with
    the median): decode work, slot occupancy and $/Mtok out follow it, and through the p90 the
    Claude Code trace's outputs averaged 401 tokens against its 440 (-9 %). None (fit through the
    p90) where no log-normal with that median reaches it: a mean below the median."""
    from planner.lengths import LengthFitError, sigma_for_mean

    mean = float(tw.summary["output_tokens"]["mean"])
    try:
        sigma_for_mean(float(tw.output_median), mean, float(max(tw.output_max, tw.output_median)))
    except LengthFitError:
        return None
    return round(mean, 1)


def mean_gaps(tw, kinds: tuple[str, ...] = ("input", "output")) -> list[str]:
    """'N input/output tokens against the trace's M (+x %)' for each length (of `kinds`) whose
    log-normal through p50/p90 misses the trace's own mean by more than MEAN_GAP: the screen sizes
    work by that mean."""
    from planner.lengths import lognormal_mean, lognormal_sigma

    out = []
    for kind, median, p90, cap in (("input", tw.input_median, tw.input_p90, tw.input_max),
                                   ("output", tw.output_median, tw.output_p90, tw.output_max)):
        if kind not in kinds:
            continue
        fitted = lognormal_mean(float(median), lognormal_sigma(median, p90), float(max(cap, median)))
        actual = float(tw.summary[f"{kind}_tokens"]["mean"])
        if actual > 0 and abs(fitted / actual - 1.0) > MEAN_GAP:
            out.append(f"{fitted:,.0f} {kind} tokens against the trace's {actual:,.0f} ({fitted / actual - 1.0:+.0%})")
    return out
