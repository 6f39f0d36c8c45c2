"""Fit one hardware family's efficiencies to the public measurements: `python -m planner.calibrate hopper`.

This is how hardware/calibration.toml's fitted values were produced. Coordinate search over bounded
grids (the literature ranges quoted in calibration.toml), minimising median + 0.5 x max |log error|
over the family's cases, one value set per family. Knobs a family's data cannot identify should be
left at their priors (pass --fix, or name the knobs to fit with --only). `layer_latency_us` is fitted
only when asked: GPU families keep it at 0 (their step overhead covers launches); the dataflow
families fit it alone (`python -m planner.calibrate groq --only layer_latency_us`).
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from pathlib import Path

import numpy as np

from planner.catalog import Catalog, load_catalog
from planner.evaluation import case_from_dict, evaluate_cases

MEASUREMENTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "measurements.toml"
BOUNDS = {
    "prefill_mfu": np.arange(0.30, 0.7001, 0.025),
    "decode_mfu": np.arange(0.30, 0.7001, 0.025),
    "hbm_efficiency": np.arange(0.80, 0.9201, 0.02),
    "attention_efficiency": np.arange(0.50, 0.9201, 0.025),
    "moe_efficiency": np.arange(0.30, 1.0001, 0.025),
    "step_overhead_ms": np.arange(0.0, 6.001, 0.5),
    "collective_latency_us": np.arange(0.0, 50.001, 2.5),
    "layer_latency_us": np.arange(0.0, 100.001, 0.5),
}
FITTED_BY_DEFAULT = tuple(k for k in BOUNDS if k != "layer_latency_us")


def with_family(catalog: Catalog, family: str, **values: float) -> Catalog:
    fam = catalog.calibration[family].model_copy(update=values)
    return dataclasses.replace(catalog, calibration={**catalog.calibration, family: fam})


def errors(catalog: Catalog, cases: list[dict]) -> np.ndarray:
    rows = evaluate_cases([case_from_dict(c, "case") for c in cases], catalog)
    return np.array([row[c["metric"]] / c["measured"] - 1.0 for c, row in zip(cases, rows, strict=True)])


def loss(errs: np.ndarray) -> float:
    logs = np.abs(np.log1p(errs))
    return float(np.median(logs) + 0.5 * np.max(logs))


def fit(family: str, cases: list[dict], catalog: Catalog, knobs: list[str], passes: int = 3):
    """Coordinate search; returns (values, loss, errors)."""
    values = {k: getattr(catalog.calibration[family], k) for k in knobs}
    best = loss(errors(catalog, cases))
    for _ in range(passes):
        for knob in knobs:
            for v in BOUNDS[knob]:
                trial = {**values, knob: round(float(v), 4)}
                trial_loss = loss(errors(with_family(catalog, family, **trial), cases))
                if trial_loss < best - 1e-9:
                    best, values = trial_loss, trial
    return values, best, errors(with_family(catalog, family, **values), cases)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--fix", default="", help="comma-separated knobs to keep at their current values")
    parser.add_argument("--only", default="", help="comma-separated knobs to fit (default: all but layer_latency_us)")
    parser.add_argument("--measurements", type=Path, default=MEASUREMENTS)
    args = parser.parse_args(argv)
    catalog = load_catalog()
    cases = [c for c in tomllib.loads(args.measurements.read_text())["case"]
             if catalog.accelerator(c["hardware"]).family == args.family]
    if not cases:
        raise SystemExit(f"no measurements for family '{args.family}'")
    fixed = {k for k in args.fix.split(",") if k}
    only = [k for k in args.only.split(",") if k] or list(FITTED_BY_DEFAULT)
    unknown = sorted(set(only) - set(BOUNDS))
    if unknown:
        raise SystemExit(f"--only: unknown knob {unknown[0]!r}; knobs: {', '.join(BOUNDS)}")
    values, best, errs = fit(args.family, cases, catalog, [k for k in only if k not in fixed])
    print(f"{args.family}: {len(cases)} cases, loss {best:.4f}, median |err| {np.median(np.abs(errs)):.1%}, "
          f"max {np.max(np.abs(errs)):.1%}")
    for k, v in values.items():
        print(f"{k} = {v}")


if __name__ == "__main__":
    main()
