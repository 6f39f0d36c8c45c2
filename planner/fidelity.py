"""Score the cost model against every public measurement: `python -m planner.fidelity [--held-out]`.

The measurement files live in the repository's `tests/data/` (copied from the public validation set,
each case with its source). A case is *scored* when everything the model needs is known; cases the
sources leave unknown (`chips = 0`, `input = 0`, a weight dtype not published, hardware or models
outside the catalog) are *reported* with the reason and never scored. One assumption is applied and
stated: a KV dtype the source does not state is FP8 when the weights are FP8/FP4 (what the NVIDIA
and AMD MLPerf configurations that do state it use) and BF16 otherwise (the engines' default).

Errors are `predicted / measured - 1`. Regimes: prompts under 8k, 8k-32k and over 32k tokens,
crossed with the metric class (TTFT, TPOT, throughput).
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planner.catalog import Catalog, load_catalog
from planner.errors import PlannerError
from planner.evaluation import UNKNOWN_KV, case_from_dict, evaluate_cases
from planner.uncertainty import BAND_CLASSES, METRIC_BANDS

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FILES = ("measurements", "long-context", "chips", "derived")
METRIC_CLASS = {"ttft_s": "TTFT", "tpot_s": "TPOT", "throughput_tok_s": "throughput", "decode_tok_s": "throughput",
                "prefill_tok_s": "throughput"}
CASE_FIELDS = ("hardware", "model", "chips", "batch", "input", "output", "weight_dtype", "kv_dtype",
               "cached_tokens", "cache_tier", "max_batch", "max_num_tokens", "requests", "arrival_rps", "replicas",
               "tp", "pp", "ep", "dp_attention", "cp")


@dataclass(frozen=True)
class Measurement:
    file: str
    index: int
    raw: dict[str, Any]
    family: str | None  # None when the hardware is not in the catalog
    unscored: str | None  # why the case is reported but not scored

    @property
    def metric(self) -> str:
        return self.raw["metric"]

    @property
    def measured(self) -> float:
        return float(self.raw["measured"])

    @property
    def regime(self) -> str:
        length = self.raw.get("input", 0)
        band = "<8k" if length < 8192 else ("8k-32k" if length <= 32768 else ">32k")
        return f"{band} {METRIC_CLASS.get(self.metric, self.metric)}"

    @property
    def group(self) -> str:
        """Held-out unit: one source document and one model (a fit must generalise to both)."""
        source = str(self.raw.get("source", self.file))
        doc = source.split("::")[0].split(",")[0].split("@")[0].strip()
        return f"{doc} | {self.raw['model']}"

    def case(self) -> dict[str, Any]:
        raw = {k: self.raw[k] for k in CASE_FIELDS if k in self.raw}
        if raw.get("kv_dtype") == "unknown":  # as `planner eval` takes it in a cases file
            raw["kv_dtype"] = UNKNOWN_KV.get(raw.get("weight_dtype"), "bf16")
        return raw


def load_measurements(catalog: Catalog, files: tuple[str, ...] = FILES, data: Path = DATA) -> list[Measurement]:
    out = []
    for name in files:
        cases = tomllib.loads((data / f"{name}.toml").read_text())["case"]
        for i, raw in enumerate(cases):
            acc = catalog.hardware.get(raw["hardware"])
            out.append(Measurement(name, i, raw, acc.family if acc else None, _why_unscored(raw, catalog)))
    return out


def _why_unscored(raw: dict[str, Any], catalog: Catalog) -> str | None:
    if raw["hardware"] not in catalog.hardware:
        return f"hardware '{raw['hardware']}' is not in the catalog"
    if raw["model"] not in catalog.models and catalog.model_by_repo(raw["model"]) is None:
        return f"model '{raw['model']}' is not in the catalog"
    for key in ("chips", "input", "output"):
        if raw.get(key) == 0:
            return f"{key} not stated by the source"
    if raw.get("batch") == 0:
        return "batch not stated by the source"
    if raw.get("weight_dtype") == "unknown":
        return "weight dtype not stated by the source"
    return None


def predict(cases: list[Measurement], catalog: Catalog) -> np.ndarray:
    """Predicted value of each scored case's metric (NaN where the model gives none)."""
    parsed = [case_from_dict(m.case(), f"{m.file}[{m.index}]") for m in cases]
    # a measurement that does not state its layout is evaluated with the rule the calibration was fitted with
    rows = evaluate_cases(parsed, catalog)
    return np.array([np.nan if r[m.metric] is None else r[m.metric] for m, r in zip(cases, rows, strict=True)])


def errors(cases: list[Measurement], catalog: Catalog) -> np.ndarray:
    return predict(cases, catalog) / np.array([m.measured for m in cases]) - 1.0


def summary(errs: np.ndarray) -> tuple[int, float, float]:
    a = np.abs(errs[np.isfinite(errs)])
    return len(a), float(np.median(a)) if len(a) else float("nan"), float(np.max(a)) if len(a) else float("nan")


def table(rows: dict[str, np.ndarray], held_out: dict[str, np.ndarray] | None = None, title: str = "") -> str:
    head = f"| {title} | cases | median in-sample | max in-sample |" + (" median held-out | max held-out |" if held_out else "")
    sep = "|---|---|---|---|" + ("---|---|" if held_out else "")
    lines = [head, sep]
    for key in sorted(rows):
        n, med, worst = summary(rows[key])
        line = f"| {key} | {n} | {med:.1%} | {worst:.1%} |"
        if held_out is not None:
            hn, hmed, hworst = summary(held_out.get(key, np.array([])))
            line += f" {hmed:.1%} | {hworst:.1%} |" if hn else " n/a (one group) | n/a |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from planner.calibrate import HELD_OUT_STARTS, held_out_errors  # here: calibrate imports this module

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", action="store_true", help="print every case with its error")
    parser.add_argument("--held-out", action="store_true",
                        help="also refit each calibrated family without each held-out group (slow)")
    parser.add_argument("--start", choices=HELD_OUT_STARTS, default=HELD_OUT_STARTS[0],
                        help="with --held-out: refit from the catalog's values (default) or from the middle of "
                        "every knob's range (planner.calibrate.HELD_OUT_STARTS says why both)")
    parser.add_argument("--write-bands", action="store_true",
                        help="with --held-out: write planner/data/uncertainty.toml from the held-out residuals")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    ms = load_measurements(catalog)
    scored = [m for m in ms if m.unscored is None]
    errs = errors(scored, catalog)
    held = None
    if args.held_out:
        held = held_out_errors(scored, catalog, start=args.start)
    if args.cases:
        for m, e in zip(scored, errs, strict=True):
            h = "" if held is None else f" held-out {held[id(m)]:+7.1%}"
            print(f"{m.file:13} {m.raw['hardware']:13} {m.raw['model']:16} x{m.raw['chips']:<3} "
                  f"{m.raw['input']:>6}/{m.raw['output']:<5} {m.metric:16} {m.measured:<10.4g} {e:+7.1%}{h}")
        for m in ms:
            if m.unscored:
                print(f"unscored {m.file}[{m.index}] {m.raw['hardware']} {m.raw['model']}: {m.unscored}")
    by_file = {f: errs[[m.file == f for m in scored]] for f in FILES}
    by_family: dict[str, list[float]] = {}
    by_regime: dict[str, list[float]] = {}
    hf: dict[str, list[float]] = {}
    hr: dict[str, list[float]] = {}
    for m, e in zip(scored, errs, strict=True):
        by_family.setdefault(m.family, []).append(e)
        by_regime.setdefault(m.regime, []).append(e)
        if held is not None:
            hf.setdefault(m.family, []).append(held[id(m)])
            hr.setdefault(m.regime, []).append(held[id(m)])
    print(table(by_file, title="file"))
    print()
    print(table({k: np.array(v) for k, v in by_family.items()},
                {k: np.array(v) for k, v in hf.items()} if held else None, title="family"))
    print()
    print(table({k: np.array(v) for k, v in by_regime.items()},
                {k: np.array(v) for k, v in hr.items()} if held else None, title="regime"))
    print(f"\nscored {len(scored)}, reported but not scored {len(ms) - len(scored)}")
    if args.write_bands and held is not None:
        from planner.uncertainty import render_file, uncertainty_file

        path = uncertainty_file()
        path.write_text(render_file(*band_table(scored, held, catalog)))
        print(f"wrote {path}")


MIN_BAND_CASES = 8  # fewer held-out cases than this: the band is at least as wide as the pooled one


def time_ratio(m: Measurement, err: float) -> float:
    """measured time / predicted time: 1 / (1 + e) for TTFT/TPOT, 1 + e for throughputs."""
    return 1.0 / (1.0 + err) if METRIC_CLASS.get(m.metric) in ("TTFT", "TPOT") else 1.0 + err


def band_table(scored: list[Measurement], held: dict[int, float], catalog: Catalog):
    """(per fitted family, uncalibrated) bands of measured/predicted time: each a dict of
    "all" (every case: the bill's band) and one entry per metric class ("first_token": TTFT and
    prefill; "decode": TPOT and throughputs), each (p10, p90, cases).

    A fitted family with few held-out cases is at least as wide as the pooled p10-p90; a metric
    class with few of the family's cases takes the family's band for every metric; a family with no
    held-out group at all (all its cases from one source) and every family on priors take the
    envelope of the fitted families' bands, class by class: the widest error seen out of sample."""
    ratios: dict[str, list[tuple[str, float]]] = {}
    for m in scored:
        e = held[id(m)]
        if np.isfinite(e):
            ratios.setdefault(m.family, []).append((METRIC_BANDS[m.metric], time_ratio(m, e)))
    pooled = np.array([r for rs in ratios.values() for _, r in rs])
    pooled_80 = (float(np.quantile(pooled, 0.10)), float(np.quantile(pooled, 0.90)))
    per_family = {}
    for fam, rs in ratios.items():
        if not catalog.calibration[fam].fitted:
            continue
        every = [r for _, r in rs]
        lo, hi = float(np.quantile(every, 0.10)), float(np.quantile(every, 0.90))
        if len(every) < MIN_BAND_CASES:
            lo, hi = min(lo, pooled_80[0]), max(hi, pooled_80[1])
        family = {"all": (min(lo, 1.0), max(hi, 1.0), len(every))}
        for cls in BAND_CLASSES:
            of_class = [r for c, r in rs if c == cls]
            if len(of_class) < MIN_BAND_CASES:
                family[cls] = (family["all"][0], family["all"][1], len(of_class))
            else:
                family[cls] = (min(float(np.quantile(of_class, 0.10)), 1.0),
                               max(float(np.quantile(of_class, 0.90)), 1.0), len(of_class))
        per_family[fam] = family
    counts = {"all": len(pooled), **{cls: sum(c == cls for rs in ratios.values() for c, _ in rs)
                                     for cls in BAND_CLASSES}}
    return with_envelope(per_family, catalog, counts)


def with_envelope(per_family: dict[str, dict[str, tuple[float, float, int]]], catalog: Catalog,
                  counts: dict[str, int]):
    """Fill the fitted families without held-out cases, and the uncalibrated entry, with the envelope
    of the fitted families' bands, per class (`counts`: the held-out cases behind each)."""
    envelope = {key: (min(f[key][0] for f in per_family.values()), max(f[key][1] for f in per_family.values()),
                      counts[key])
                for key in ("all", *BAND_CLASSES)}
    for fam, cal in catalog.calibration.items():
        if cal.fitted and fam not in per_family:
            per_family[fam] = {key: (lo, hi, 0) for key, (lo, hi, _) in envelope.items()}
    return per_family, envelope


if __name__ == "__main__":
    try:
        main()
    except PlannerError as exc:
        raise SystemExit(str(exc)) from None
