"""Shared building blocks for the schemas: strict base model, sourced numbers, dtypes."""

from __future__ import annotations

import re
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator

Unknown = Literal["unknown"]
"""Written where a public figure was not found. Never replaced by a guess."""

Unsupported = Literal["unsupported"]
"""Written where the hardware has no native support (e.g. FP8 tensor cores on A100)."""

DTYPE_ALIASES: dict[str, str] = {
    # 16-bit: FP16 and BF16 take the same bytes and the same tensor-core rate on every chip here
    "fp16": "bf16", "float16": "bf16", "half": "bf16", "bfloat16": "bf16",
    "fp8_e4m3": "fp8", "e4m3": "fp8", "float8": "fp8",
    "nvfp4": "fp4",  # W4A4 on FP4 tensor cores (MXFP4 is not aliased: on Hopper it runs weight-only)
    "w4a16": "int4", "awq": "int4", "gptq": "int4", "int4_awq": "int4",
    "w8a8": "int8",
}
"""Common names for the dtypes, accepted wherever a dtype is read and stored as the canonical name."""


def canonical_dtype(value: object) -> object:
    """`DTYPE_ALIASES` applied to a string (case-insensitive); anything else is left to validation."""
    if isinstance(value, str):
        name = value.strip().lower()
        return DTYPE_ALIASES.get(name, name)
    return value


WeightDtype = Annotated[Literal["bf16", "fp8", "int8", "int4", "fp4"], BeforeValidator(canonical_dtype)]
KvDtype = Annotated[Literal["bf16", "fp8", "int8", "int4"], BeforeValidator(canonical_dtype)]
ComputeDtype = Literal["bf16", "fp8", "int8", "fp4"]

BYTES_PER_ELEMENT: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}

_KEBAB = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$")


def _kebab(value: str) -> str:
    if not _KEBAB.match(value):
        raise ValueError("IDs are lowercase kebab-case, e.g. 'h100-sxm'")
    return value


KebabId = Annotated[str, AfterValidator(_kebab)]


class Strict(BaseModel):
    """Unknown keys are errors so typos in hand-written TOML are caught, not ignored.

    TOML can spell `nan` and `inf`; no planner number may be either, so they are rejected here.
    Numbers are numbers (strict mode): `true` or `"3"` in a numeric field is an error, not 1 or 3.
    A whole float where an integer is wanted (`median = 96000.0`) is that integer.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_floats_as_ints(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = None
        for key, is_list in _integer_fields(cls):
            value = data.get(key)
            fixed = [_whole(v) for v in value] if is_list and isinstance(value, list) else _whole(value)
            if fixed is not value:
                out = dict(data) if out is None else out
                out[key] = fixed
        return data if out is None else out


def _whole(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() and abs(value) < 2**63 else value


@cache
def _integer_fields(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(key, whether it is a list) of the fields that take an integer (or a list of them), under
    their names and aliases."""
    found = []
    for name, field in model.model_fields.items():
        kind = _integer_kind(field.annotation)
        if kind is not None:
            found += [(key, kind) for key in dict.fromkeys((name, field.alias)) if key]
    return tuple(found)


def _integer_kind(annotation: Any) -> bool | None:
    """False for an int (or optional int) field, True for a list of ints, None otherwise (a field
    that also takes floats needs no help)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _integer_kind(args[0])
    if annotation is int:
        return False
    if origin is list and args and _integer_kind(args[0]) is False:
        return True
    if origin in (Union, UnionType) and int in args and float not in args:
        return False
    return None


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema `planner schema` prints: every field's name, units, allowed values and default,
    the defaults of list and table fields included (pydantic leaves out a default that comes from a
    factory: `search.chips` is `[1, 2, 4, ...]` unless given). A field whose default is a whole
    section keeps none here; its own fields carry theirs. The hook needs pydantic >= 2.11; older
    ones print the schema without those defaults."""
    try:
        from pydantic.json_schema import GenerateJsonSchema, NoDefault
    except ImportError:  # pragma: no cover - pydantic < 2.11
        return model.model_json_schema()

    class FactoryDefaults(GenerateJsonSchema):
        def get_default_value(self, schema: Any) -> Any:
            factory = schema.get("default_factory")
            if "default" in schema or factory is None or schema.get("default_factory_takes_data"):
                return super().get_default_value(schema)
            value = factory()
            return NoDefault if isinstance(value, BaseModel) else value

    return model.model_json_schema(schema_generator=FactoryDefaults)


def check_sources(
    owner: str, values: dict[str, object], sources: dict[str, str], known: dict[str, str]
) -> None:
    """Every number given must cite a source key, and every key must exist in the file's table.

    `values` maps field names to their values; fields whose value is None (not applicable) need
    no source, but "unknown"/"unsupported" markers and numbers do.
    """
    for field, value in values.items():
        if value is None:
            continue
        if field not in sources:
            raise ValueError(f"{owner}: field '{field}' has no entry in sources; cite where it comes from")
    for field, key in sources.items():
        if field not in values:
            raise ValueError(f"{owner}: sources.{field} names a field that does not exist")
        if key not in known:
            raise ValueError(
                f"{owner}: sources.{field} = '{key}' is not defined in the file's [sources] table"
            )


def unique_ids(table: str, ids: list[str]) -> None:
    """One entry per ID in a file: a second one silently replaced the first (the later one won)."""
    for i, ident in enumerate(ids):
        if ident in ids[:i]:
            raise ValueError(f"{table}.{i}: id '{ident}' is already used by {table}.{ids.index(ident)}; "
                             "each entry needs its own id")
