"""Every catalog citation resolves to a public source named in the repository itself.

A citation may name a key of its own file's [sources] table inline ([R:key], [U:key]); that key must
exist, and no catalog text may send the reader to project notes outside the repository.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from support import REPO

CATALOGS = sorted([*REPO.glob("hardware/*.toml"), *REPO.glob("planner/data/*.toml"), *REPO.glob("scenarios/**/*.toml")])
OUTSIDE = re.compile(r"shared/|(?<!\.)\.\./|hardware-data\.md|formulas\.md|serving-evidence\.md|reference notes|"
                     r"\bthe reference\b|\bin the reference\b|claude research", re.IGNORECASE)
INLINE_KEY = re.compile(r"\[(?:R|U|D)(?:/[A-Z])?:([a-z0-9][a-z0-9._-]*)\]")


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_citation_points_outside_the_repository(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert not OUTSIDE.search(line), f"{path.name}:{number}: {line.strip()[:120]}"


@pytest.mark.parametrize("path", [p for p in CATALOGS if "scenarios" not in p.parts],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_inline_source_tags_name_a_key_of_the_same_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    keys = set(tomllib.loads(text).get("sources", {}))
    dangling = sorted(set(INLINE_KEY.findall(text)) - keys)
    assert not dangling, f"{path.name}: [R:key] tags without a [sources] entry: {dangling}"


def test_the_pattern_catches_what_it_is_for() -> None:
    assert OUTSIDE.search("see shared/reference/formulas.md item 2")
    assert OUTSIDE.search("No price was found in the reference.")
    assert not OUTSIDE.search("given here as `cache_write` for reference")
    assert INLINE_KEY.findall("x [R:hugo][U:nv-h100-ds] [D] [R]") == ["hugo", "nv-h100-ds"]
