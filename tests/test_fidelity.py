"""Every public measurement in tests/data (planner/fidelity.py), run through `planner eval`'s evaluator.

Targets (cost-model issue): on the short-prompt offline runs (measurements.toml) and the long-context
cases (long-context.toml) the median |error| is <= 8 % and no case is off by more than 30 %; on the
other chips (chips.toml) the median is <= 15 % (the issue's 50 % bound on every case is not met: the
README's fidelity section says which cases and why). Cases the sources leave unknown are
reported, not scored. Out-of-sample (held-out) errors: `python -m planner.fidelity --held-out`,
and the slow test below (`PLANNER_SLOW=1`).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from planner import paths
from planner.catalog import load_catalog
from planner.evaluation import case_from_dict, evaluate_cases
from planner.fidelity import errors, load_measurements


@pytest.fixture(scope="module")
def scored():
    catalog = load_catalog()
    cases = [m for m in load_measurements(catalog) if m.unscored is None]
    return cases, errors(cases, catalog)


def _of(scored, *files):
    cases, errs = scored
    keep = np.array([m.file in files for m in cases])
    return [m for m, k in zip(cases, keep, strict=True) if k], errs[keep]


def test_every_scored_measurement_is_predicted(scored):
    cases, errs = scored
    assert len(cases) >= 95
    assert np.all(np.isfinite(errs)), [m.raw for m, e in zip(cases, errs, strict=True) if not np.isfinite(e)]


@pytest.mark.parametrize("files", [("measurements",), ("long-context",)])
def test_median_error_within_8_percent_and_every_case_within_30(scored, files):
    cases, errs = _of(scored, *files)
    worst = int(np.argmax(np.abs(errs)))
    assert np.median(np.abs(errs)) <= 0.08
    assert np.all(np.abs(errs) <= 0.30), (cases[worst].raw, errs[worst])


def test_other_chips_median_error_within_15_percent_and_every_case_within_50(scored):
    cases, errs = _of(scored, "chips")
    worst = int(np.argmax(np.abs(errs)))
    assert np.median(np.abs(errs)) <= 0.15
    assert np.all(np.abs(errs) <= 0.50), (cases[worst].raw, errs[worst])


def test_long_prompt_predictions_are_not_one_sided(scored):
    """v1 was almost always too optimistic at 32k-131k prompts: a calibrated model errs both ways."""
    cases, errs = _of(scored, "long-context")
    assert (errs > 0).sum() >= len(errs) // 4 and (errs < 0).sum() >= len(errs) // 4


def test_errors_are_not_one_sided(scored):
    """A calibrated model over- and under-predicts; a one-sided error is missing physics."""
    _, errs = scored
    assert (errs > 0).sum() >= len(errs) // 5 and (errs < 0).sum() >= len(errs) // 5


def test_unscored_cases_say_why():
    unscored = [m for m in load_measurements(load_catalog()) if m.unscored]
    assert unscored and all(m.unscored for m in unscored)
    assert any("not stated" in m.unscored for m in unscored)


@pytest.mark.skipif(not os.environ.get("PLANNER_SLOW"), reason="refits every family once per held-out group")
def test_held_out_error_is_reported_and_bounded():
    from planner.calibrate import held_out_errors

    catalog = load_catalog()
    cases = [m for m in load_measurements(catalog) if m.unscored is None]
    held = held_out_errors(cases, catalog)
    hopper = np.array([held[id(m)] for m in cases if m.family == "hopper"])
    assert np.median(np.abs(hopper)) <= 0.15


def test_a_neutral_held_out_refit_knows_nothing_of_the_fitted_values():
    """`--start neutral` refits from the middle of each knob's range, so the held-out errors cannot
    depend on values fitted with the held-out group included; from the fitted values they do (the
    optimism the README brackets). Gaudi: three cases, two groups, three knobs."""
    from planner.calibrate import held_out_errors, with_family

    catalog = load_catalog()
    cases = [m for m in load_measurements(catalog) if m.unscored is None and m.family == "gaudi"]
    moved = with_family(catalog, "gaudi", decode_mfu=0.6, hbm_efficiency=0.76, step_overhead_ms=3.0)
    neutral = [held_out_errors(cases, cat, start="neutral") for cat in (catalog, moved)]
    fitted = [held_out_errors(cases, cat, start="fitted") for cat in (catalog, moved)]
    keys = [id(m) for m in cases]
    assert [neutral[0][k] for k in keys] == [neutral[1][k] for k in keys]
    assert [fitted[0][k] for k in keys] != [fitted[1][k] for k in keys]


def test_eval_answers_every_hardware_model_pair():
    """Every catalog pair gets a row: a finite prediction when it fits, a reason when it does not."""
    from planner.grid import chips_for

    catalog = load_catalog()
    cases = [case_from_dict({"hardware": acc.id, "model": model.id, "batch": "max", "input": 4096, "output": 512,
                             "chips": chips_for(acc, model, ["fp8"], 0.9, [8])[0], "weight_dtype": "fp8",
                             "kv_dtype": "fp8"}, "pair")
             for acc in catalog.hardware.values() for model in catalog.models.values()]
    rows = evaluate_cases(cases, catalog)
    assert len(rows) == len(catalog.hardware) * len(catalog.models)
    fitting = [r for r in rows if r["fits"]]
    assert len(fitting) > len(rows) // 2
    for row in rows:
        if row["fits"]:
            assert row["throughput_tok_s"] > 0 and row["ttft_s"] > 0 and row["batch"] >= 1
        else:
            assert row["reason"], row


def test_calibration_fit_never_worsens_the_loss():
    """The fitting tool behind hardware/calibration.toml: a coordinate search can only improve."""
    from planner import calibrate

    catalog = load_catalog()
    cases = calibrate.family_cases(catalog, "hopper")[:4]
    start = calibrate.loss(errors(cases, catalog))
    values, best, errs = calibrate.fit("hopper", cases, catalog, ["step_overhead_ms"], passes=1)
    assert best <= start and set(values) == {"step_overhead_ms"} and len(errs) == len(cases)


def test_a_case_longer_than_the_context_window_does_not_fit_but_is_predicted():
    catalog = load_catalog()
    window = catalog.model("llama-2-7b").max_context
    raw = {"hardware": "h100-sxm", "model": "llama-2-7b", "chips": 1, "batch": 4, "weight_dtype": "bf16",
           "kv_dtype": "bf16", "output": 500}
    inside, over = evaluate_cases([case_from_dict({**raw, "input": window - 500}, "in"),
                                   case_from_dict({**raw, "input": window - 499}, "over")], catalog)
    assert inside["fits"] and "reason" not in inside
    assert not over["fits"] and "context window" in over["reason"] and f"{window:,}" in over["reason"]
    assert over["tpot_s"] > 0 and over["throughput_tok_s"] > 0


def test_common_dtype_names_are_aliases_of_the_canonical_ones():
    """fp16 is bf16 here (same bytes, same tensor-core rate on every catalog chip), nvfp4 is fp4."""
    from planner import io as pio
    from planner.schema import Scenario

    catalog = load_catalog()
    raw = {"hardware": "b200", "model": "llama-3.1-8b", "chips": 1, "batch": 8, "input": 1000, "output": 200}
    aliased, canonical = evaluate_cases([
        case_from_dict({**raw, "weight_dtype": "NVFP4", "kv_dtype": "fp16"}, "aliased"),
        case_from_dict({**raw, "weight_dtype": "fp4", "kv_dtype": "bf16"}, "canonical")], catalog)
    assert (aliased["weight_dtype"], aliased["kv_dtype"]) == ("fp4", "bf16")
    assert aliased == canonical
    data = pio.read_toml(paths.scenarios_dir() / "chat.toml")
    data.setdefault("search", {})["weight_dtype"] = ["fp16", "w4a16"]
    assert pio.validate(Scenario, data, "x").search.weight_dtype == ["bf16", "int4"]
    with pytest.raises(Exception, match="alias"):
        case_from_dict({**raw, "weight_dtype": "fp17"}, "bad")
