"""Pydantic schemas (no jax, no textual): hardware, models, scenarios."""

from functools import cache

from planner.schema.common import Strict
from planner.schema.hardware import (
    Accelerator,
    CalibrationFamily,
    CalibrationFile,
    HardwareFile,
    HostCpu,
    HostTiersFile,
)
from planner.schema.models import ModelsFile, ModelSpec
from planner.schema.scenario import Scenario


@cache
def model_class_names() -> frozenset[str]:
    """Names of every schema model: pydantic puts them in an error's location for a union branch."""
    found: set[str] = set()
    todo: list[type] = [Strict]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(found)


__all__ = [
    "Accelerator",
    "CalibrationFamily",
    "CalibrationFile",
    "HardwareFile",
    "HostCpu",
    "HostTiersFile",
    "ModelSpec",
    "ModelsFile",
    "Scenario",
    "model_class_names",
]
