"""Where bundled data lives.

In a source checkout the catalogs are the top-level `hardware/` and `scenarios/` folders; in an
installed wheel they are copied to `planner/_bundled/` (see pyproject's force-include). The model
catalog ships inside the package (`planner/data/`).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _bundled(name: str) -> Path:
    wheel = _PACKAGE / "_bundled" / name
    if wheel.is_dir():
        return wheel
    return _PACKAGE.parent / name


def hardware_dir() -> Path:
    return _bundled("hardware")


def scenarios_dir() -> Path:
    return _bundled("scenarios")


def models_file() -> Path:
    return _PACKAGE / "data" / "models.toml"


def default_scenario() -> Path:
    return scenarios_dir() / "agentic-coding.toml"
