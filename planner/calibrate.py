"""Fit one hardware family's efficiencies to the public measurements: `python -m planner.calibrate hopper`.

This is how hardware/calibration.toml's fitted values were produced. Every scored case of the family
in tests/data (`planner.fidelity`: short-prompt offline runs, long-context TTFT/TPOT and KV reloads,
MLPerf and vendor figures) is fitted at once, one value set per family, never per case. Coordinate
search over bounded grids (the published ranges quoted in calibration.toml), minimising median +
0.25 x max |log error| (plus the mean). Knobs the family's data cannot identify stay at their priors (`--only`).

`--held-out` reports out-of-sample error: for every group (one source document x one model) the
family is refitted without that group and the group is predicted by that fit (leave-one-group-out).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from planner.catalog import Catalog, load_catalog
from planner.fidelity import Measurement, errors, load_measurements

BOUNDS = {
    "prefill_mfu": np.arange(0.30, 0.8001, 0.025),
    "prefill_mfu_lowp": np.arange(0.30, 0.8001, 0.025),
    "decode_mfu": np.arange(0.20, 0.8001, 0.025),
    "hbm_efficiency": np.arange(0.70, 0.9201, 0.02),
    "attention_efficiency": np.arange(0.50, 0.9201, 0.02),
    "attention_efficiency_lowp": np.arange(0.50, 0.9201, 0.02),
    "prefill_attention_mfu": np.arange(0.30, 0.8001, 0.025),
    "prefill_attention_mfu_fp8": np.arange(0.30, 1.2001, 0.025),
    "moe_efficiency": np.arange(0.30, 1.0001, 0.025),
    "moe_quant_overhead": np.arange(0.0, 2.0001, 0.025),  # BF16-peak FLOP times per expert FLOP (8-bit)
    "moe_quant_overhead_fp4": np.arange(0.0, 2.0001, 0.025),  # the same, W4A4 FP4 experts
    "expert_width_knee": np.arange(0.0, 2048.1, 128.0),
    "activation_passes": np.arange(0.0, 24.01, 1.0),
    "step_overhead_ms": np.arange(0.0, 4.001, 0.25),
    "collective_latency_us": np.arange(2.0, 60.001, 1.0),
    "link_efficiency": np.arange(0.5, 0.9501, 0.025),
    "layer_latency_us": np.arange(0.0, 100.001, 0.5),  # GPUs: launches + minimum kernel times, ~10-40 us
    "quant_layer_latency_us": np.arange(0.0, 20.001, 1.0),
    "moe_layer_latency_us": np.arange(0.0, 200.001, 5.0),
    "host_link_efficiency": np.arange(0.50, 0.9501, 0.025),
    "power_clock_exponent": np.arange(0.0, 1.0001, 0.05),  # 0: no power limit; 1/3 (P ~ f^3) to 1 (P ~ f)
    "admission_interval_steps": np.arange(1.0, 16.001, 0.5),  # 1: every step; multi-step schedulers run more
    "first_token_steps": np.arange(0.0, 2.001, 0.25),  # 0: the prefill emits the first token
}
DATAFLOW_FAMILIES = ("groq", "cerebras", "sambanova")
GPU_LAYER_FLOOR_US = 8.0
"""Lower bound of `layer_latency_us` on kernel-launching chips: a transformer layer runs at least ~8
kernels (two norms, QKV, RoPE, attention, output, gate-up, activation, down), and even inside a CUDA
graph each costs ~1-2 us of launch and tail at decode sizes. Without the floor, dense-model data
cannot tell a per-layer cost from a per-step one, and a fit could move it all to the step overhead,
which would flatter models with many layers (Llama 3.1 405B has 126)."""


def bounds(family: str, knob: str) -> np.ndarray:
    grid = BOUNDS[knob]
    if knob == "layer_latency_us" and family not in DATAFLOW_FAMILIES:
        grid = grid[grid >= GPU_LAYER_FLOOR_US]
    return grid


def with_family(catalog: Catalog, family: str, **values: float) -> Catalog:
    fam = catalog.calibration[family].model_copy(update=values)
    return dataclasses.replace(catalog, calibration={**catalog.calibration, family: fam})


def loss(errs: np.ndarray) -> float:
    """Mean |log error| plus a quarter of the worst: every case counts, and no single case (an MLPerf
    Server TTFT shaped by the submitter's scheduler tuning, say) can drag a whole family's fit."""
    logs = np.abs(np.log1p(np.where(np.isfinite(errs), errs, 100.0)))
    return float(np.mean(logs) + 0.25 * np.max(logs))


def _midpoint(family: str, knob: str) -> float:
    grid = bounds(family, knob)
    return float(grid[len(grid) // 2])


def neutral_start(family: str, knobs: list[str]) -> dict[str, float]:
    """The middle of every knob's range: a starting point that knows nothing of any measurement."""
    return {k: round(_midpoint(family, k), 4) for k in knobs}


def fit(family: str, cases: list[Measurement], catalog: Catalog, knobs: list[str], passes: int = 2,
        start: dict[str, float] | None = None):
    """Coordinate search from `start` (default: the catalog's values); returns (values, loss, errors)."""
    values = {k: getattr(catalog.calibration[family], k) for k in knobs} if start is None else dict(start)
    values = {k: (v if v is not None else _midpoint(family, k)) for k, v in values.items()}
    best = loss(errors(cases, with_family(catalog, family, **values)))
    for _ in range(passes):
        improved = False
        for knob in knobs:
            for v in bounds(family, knob):
                trial = {**values, knob: round(float(v), 4)}
                trial_loss = loss(errors(cases, with_family(catalog, family, **trial)))
                if trial_loss < best - 1e-9:
                    best, values, improved = trial_loss, trial, True
        if not improved:
            break
    return values, best, errors(cases, with_family(catalog, family, **values))


def family_cases(catalog: Catalog, family: str) -> list[Measurement]:
    return [m for m in load_measurements(catalog) if m.unscored is None and m.family == family]


def knobs_for(catalog: Catalog, family: str) -> list[str]:
    """The knobs a family fits, as recorded in calibration.toml's `fitted` list."""
    return list(catalog.calibration[family].fitted)


HELD_OUT_STARTS = ("fitted", "neutral")
"""Where a held-out refit starts. `fitted`: the catalog's values, fitted with the held-out group
included, so a knob the other groups cannot pin keeps its in-sample value (optimistic). `neutral`:
the middle of every knob's range (`neutral_start`), which knows nothing of any case, but the
coordinate search can stall in a worse optimum of the training groups (pessimistic). The truth for
this procedure lies between; the README reports both."""


def held_out_errors(scored: list[Measurement], catalog: Catalog, start: str = "fitted") -> dict[int, float]:
    """Leave-one-group-out error of every scored case (keyed by id(case)), each group predicted by a
    refit without it from `start` (see HELD_OUT_STARTS). Families with no fitted knobs run on priors,
    so their in-sample error is already out-of-sample."""
    if start not in HELD_OUT_STARTS:
        raise ValueError(f"start must be one of {HELD_OUT_STARTS}, not {start!r}")
    out: dict[int, float] = {}
    for family in sorted({m.family for m in scored}):
        cases = [m for m in scored if m.family == family]
        knobs = knobs_for(catalog, family)
        groups = sorted({m.group for m in cases})
        if not knobs or len(groups) < 2:
            for m, e in zip(cases, errors(cases, catalog), strict=True):
                out[id(m)] = float(e) if knobs == [] else float("nan")
            continue
        for g in groups:
            train = [m for m in cases if m.group != g]
            test = [m for m in cases if m.group == g]
            if start == "neutral":
                values, _, _ = fit(family, train, catalog, knobs, passes=4, start=neutral_start(family, knobs))
            else:
                values, _, _ = fit(family, train, catalog, knobs)
            for m, e in zip(test, errors(test, with_family(catalog, family, **values)), strict=True):
                out[id(m)] = float(e)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--only", default="", help="comma-separated knobs to fit (default: the family's `fitted` list)")
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args(argv)
    catalog = load_catalog()
    cases = family_cases(catalog, args.family)
    if not cases:
        raise SystemExit(f"no scored measurements for family '{args.family}'")
    only = [k for k in args.only.split(",") if k] or knobs_for(catalog, args.family)
    unknown = sorted(set(only) - set(BOUNDS))
    if unknown:
        raise SystemExit(f"--only: unknown knob {unknown[0]!r}; knobs: {', '.join(BOUNDS)}")
    values, best, errs = fit(args.family, cases, catalog, only, passes=args.passes)
    print(f"{args.family}: {len(cases)} cases, loss {best:.4f}, median |err| {np.median(np.abs(errs)):.1%}, "
          f"max {np.max(np.abs(errs)):.1%}")
    for k, v in values.items():
        print(f"{k} = {v}")
    for m, e in zip(cases, errs, strict=True):
        print(f"  {m.raw['hardware']:10} {m.raw['model']:16} x{m.raw['chips']:<3} {m.raw['input']:>6}/{m.raw['output']:<5}"
              f" {m.metric:16} {e:+7.1%}")


if __name__ == "__main__":
    main()
