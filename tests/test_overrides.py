"""`--set KEY=VALUE` overrides: TOML-typed values, schema-checked paths, no mutation of the input."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import SCENARIO_TOML

from planner import io
from planner.errors import InputFileError
from planner.overrides import apply_overrides, known_paths, parse_value
from planner.schema import Scenario

BASE = tomllib.loads(SCENARIO_TOML)


def test_contract_paths_are_known() -> None:
    for key in ("model.id", "workload.arrival_rate_rps", "workload.input_tokens.median",
                "workload.output_tokens.median", "slo.ttft_p95_s", "slo.tpot_p95_ms"):
        assert key in known_paths()


@pytest.mark.parametrize(
    ("text", "value"),
    [("40", 40), ("40.5", 40.5), ("true", True), ('"x y"', "x y"), ("llama-3.1-8b", "llama-3.1-8b"),
     ("all", "all"), ('["b200", "h100-sxm"]', ["b200", "h100-sxm"]), ("{ median = 5 }", {"median": 5}),
     ("two words", "two words")],
)
def test_values_parse_as_toml_then_fall_back_to_strings(text: str, value: object) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_overrides_apply_in_order_and_validate() -> None:
    data = apply_overrides(
        BASE,
        ["slo.tpot_p95_ms=40", "model.id=llama-3.1-70b", "workload.input_tokens.median=4096",
         "search.hardware=all", "speculative.method=mtp", "slo.tpot_p95_ms=35.5"],
        "s.toml",
    )
    scenario = io.validate(Scenario, data, "s.toml")
    assert scenario.slo.tpot_p95_ms == 35.5
    assert scenario.model.id == "llama-3.1-70b"
    assert scenario.workload.input_tokens.median == 4096
    assert scenario.workload.input_tokens.p90 == 8000  # siblings untouched
    assert scenario.search.hardware == "all"
    assert scenario.speculative.method == "mtp"  # table created where the file had none


def test_input_is_not_mutated() -> None:
    before = tomllib.loads(SCENARIO_TOML)
    apply_overrides(before, ["slo.tpot_p95_ms=1", "speculative.method=mtp"], "s.toml")
    assert before == BASE


@pytest.mark.parametrize(
    ("item", "expected"),
    [("slo.tpot=40", "--set slo.tpot: unknown key; closest known keys: slo.tpot_p95_ms"),
     ("tpot_p95_ms=40", "closest known keys: slo.tpot_p95_ms"),
     ("workload.input_tokens.medain=5", "workload.input_tokens.median"),
     ("slo.tpot_p95_ms", "expected KEY=VALUE"),
     ("=5", "expected KEY=VALUE")],
)
def test_bad_paths_fail_with_one_line_naming_key_and_neighbours(item: str, expected: str) -> None:
    with pytest.raises(InputFileError) as err:
        apply_overrides(BASE, [item], "s.toml")
    message = str(err.value)
    assert message.startswith("s.toml: --set") and expected in message and "\n" not in message


def test_setting_below_a_scalar_is_rejected() -> None:
    data = dict(BASE, workload=dict(BASE["workload"], input_tokens=5))
    with pytest.raises(InputFileError, match=r"'workload.input_tokens' is not a table in the file \(it is 5\)"):
        apply_overrides(data, ["workload.input_tokens.median=4"], "s.toml")


@given(st.floats(min_value=0.001, max_value=60_000, allow_nan=False, allow_infinity=False))
def test_any_float_round_trips_through_set(value: float) -> None:
    data = apply_overrides(BASE, [f"slo.tpot_p95_ms={value!r}"], "s.toml")
    assert io.validate(Scenario, data, "s.toml").slo.tpot_p95_ms == value


def test_set_reaches_the_prices_table_by_hardware_id(tmp_path):
    """`[prices]` is keyed by hardware IDs the schema cannot list: `--set prices.ID=USD` (and a field
    of an entry) is a path into it; a field an entry does not have is still an unknown key."""
    from planner.overrides import apply_overrides

    data = {"prices": {"b200": 3.0}}
    out = apply_overrides(data, ["prices.h100-sxm=1.9", "prices.mi300x.usd_per_hour=2.5", "prices.mi300x.kind=spot"],
                          "s.toml")
    assert out["prices"] == {"b200": 3.0, "h100-sxm": 1.9, "mi300x": {"usd_per_hour": 2.5, "kind": "spot"}}
    with pytest.raises(InputFileError, match=r"--set prices.h100-sxm.foo: unknown key"):
        apply_overrides(data, ["prices.h100-sxm.foo=2"], "s.toml")


def test_a_bad_price_kind_names_the_key_not_the_class(invoke):
    from planner import paths

    result = invoke("solve", paths.scenarios_dir() / "chat.toml", "--set", "prices.h100-sxm.kind=weird",
                    "--set", "prices.h100-sxm.usd_per_hour=2")
    assert result.exit_code == 2
    assert "prices.h100-sxm.kind (from --set): Input should be 'reserved', 'spot' or 'user'" in result.stderr
    assert "PriceOverride" not in result.stderr


def test_a_key_named_like_a_schema_class_is_still_reported(tmp_path):
    """Union branches' class names are dropped from an error's location; a key the user wrote that
    looks like one (`Model`, `PriceOverride`) is still named (it was an internal IndexError)."""
    for key in ("Model", "PriceOverride"):
        path = tmp_path / "s.toml"
        path.write_text(f"{key} = 3\n" + SCENARIO_TOML, encoding="utf-8")
        with pytest.raises(InputFileError, match=rf"s.toml: {key}: unknown key"):
            io.load(Scenario, path)
