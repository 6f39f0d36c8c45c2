"""Pydantic schemas (no jax, no textual): hardware, models, scenarios."""

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
]
