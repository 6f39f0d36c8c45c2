"""Rewrite a user's TOML file with new values while keeping its comments, order and layout.

A scenario file is documentation as much as input (the bundled ones cite where each number comes
from), so a save applies only the changed values to the parsed original (tomlkit keeps every
comment, blank line and table style) instead of printing the data afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomlkit
from tomlkit.items import Item


def merged_toml(original: str | None, data: Mapping[str, Any]) -> str:
    """`original` with its values replaced by `data`: changed keys are set in place (keeping their
    comments), keys missing from `data` are removed, new keys are appended to their table."""
    doc = tomlkit.parse(original) if original else tomlkit.document()
    _merge(doc, data)
    return tomlkit.dumps(doc)


def _merge(table: Any, data: Mapping[str, Any]) -> None:
    for key in [k for k in table if k not in data]:
        del table[key]
    for key, value in data.items():
        if key not in table:
            table[key] = value
            continue
        current = table[key]
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            _merge(current, value)
        elif not _same(current, value):
            table[key] = value


def _same(current: Any, value: Any) -> bool:
    """Equal in value and kind (so `40` stays `40` but `true` never becomes `1`)."""
    plain = current.unwrap() if isinstance(current, Item) else current
    return plain == value and type(plain) is type(value)
