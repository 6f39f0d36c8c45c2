"""`--set KEY=VALUE` overrides: dotted paths into a scenario's raw TOML data, applied before validation.

Values are parsed as TOML values (`40` -> int, `0.5` -> float, `true`, `["b200", "h100-sxm"]`,
`{median = 100}`); anything that is not a TOML value is taken as a plain string (`model.id=llama-3.1-8b`).
Paths are checked against the schema, so a typo fails with the closest known keys instead of being
silently ignored. Validation of the values themselves is left to the schema afterwards.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
import types
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planner.errors import InputFileError
from planner.lengths import other_shape
from planner.schema import Scenario


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model behind `annotation` (also inside `X | None`), if there is exactly one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for arg in typing.get_args(annotation) if (m := _nested_model(arg)) is not None]
        if len(models) == 1:
            return models[0]
    return None


def _fields(schema: type[BaseModel]) -> Iterator[tuple[str, Any]]:
    """(dotted path, annotation) of every field of the schema, nested models walked."""
    def walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
        for name, field in model.model_fields.items():
            path = f"{prefix}{field.alias or name}"
            yield path, field.annotation
            nested = _nested_model(field.annotation)
            if nested is not None:
                yield from walk(nested, f"{path}.")

    return walk(schema, "")


@cache
def known_paths(schema: type[BaseModel] = Scenario) -> tuple[str, ...]:
    """Every dotted path the schema accepts, tables included (`workload`, `workload.input_tokens`...)."""
    return tuple(path for path, _ in _fields(schema))


@cache
def open_tables(schema: type[BaseModel] = Scenario) -> dict[str, type[BaseModel] | None]:
    """Tables whose keys are the user's (`dict[str, X]`, e.g. `prices`: hardware IDs), with the
    model X their values may be (None: plain values). `prices.h100-sxm=1.9` and
    `prices.b200.kind=spot` are paths into them."""
    return {path: _nested_model(typing.get_args(annotation)[1])
            for path, annotation in _fields(schema) if typing.get_origin(annotation) is dict}


def _in_open_table(key: str, schema: type[BaseModel]) -> bool:
    """`key` names an entry of an open table, or a field of one (`prices.b200`, `prices.b200.kind`)."""
    for table, value_model in open_tables(schema).items():
        if not key.startswith(table + "."):
            continue
        rest = key[len(table) + 1:].split(".")
        if len(rest) == 1 and rest[0]:
            return True
        return len(rest) == 2 and value_model is not None and rest[1] in value_model.model_fields
    return False


def closest_paths(key: str, choices: tuple[str, ...], n: int = 3) -> list[str]:
    near = difflib.get_close_matches(key, choices, n=n, cutoff=0.6)
    if not near:
        # Same leaf name under another table, or same table: `ttft_p95_s` -> `slo.ttft_p95_s`.
        leaf = key.rsplit(".", 1)[-1]
        near = [c for c in choices if c.rsplit(".", 1)[-1] == leaf][:n]
    if not near:
        head = key.split(".", 1)[0]
        near = difflib.get_close_matches(key, [c for c in choices if c.startswith(head + ".")], n=n, cutoff=0.3)
    return near


def parse_value(text: str) -> Any:
    """A TOML value (number, bool, string, array, inline table), else the text as a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def overridden_keys(sets: list[str]) -> list[str]:
    """The dotted keys of `KEY=VALUE` items, as `apply_overrides` reads them."""
    return [item.partition("=")[0].strip() for item in sets]


def apply_overrides(
    data: dict[str, Any], sets: list[str], source: str | Path, *, schema: type[BaseModel] = Scenario
) -> dict[str, Any]:
    """Return a copy of `data` with every `KEY=VALUE` in `sets` applied in order (later wins).

    Raises `InputFileError` (one line naming `source`, the key and the closest known keys) for a
    malformed item or a path the schema does not have.
    """
    result = copy.deepcopy(data)
    paths = known_paths(schema)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputFileError(f"{source}: --set {item!r}: expected KEY=VALUE, e.g. slo.tpot_p95_ms=40")
        if key not in paths and not _in_open_table(key, schema):
            near = closest_paths(key, paths)
            hint = f"; closest known keys: {', '.join(near)}" if near else ""
            raise InputFileError(f"{source}: --set {key}: unknown key{hint}")
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise InputFileError(
                    f"{source}: --set {key}: '{where}' is not a table in the file (it is {child!r})"
                )
            node = child
        node[parts[-1]] = value = parse_value(raw.strip())
        replaced = other_shape(key)
        if replaced is not None and value is not None:
            node.pop(replaced.rpartition(".")[2], None)
    return result
