"""Analyses on top of the search: `whatif` (which technique pays), `sweep` (how the answer moves with
one scenario value) and `project` (the bill over years as token prices fall and usage grows).

Pure functions of a validated `Scenario` and the `Catalog`; the CLI renders their results
(`planner.analyses.report`) and `planner.plotting` charts them.
"""

from planner.analyses.project import (
    DEFAULT_APIS,
    Projection,
    load_api_prices,
    pick_apis,
    project,
    project_dict,
)
from planner.analyses.sweep import SweepResult, run_sweep, split_values, sweep_dict, sweep_points
from planner.analyses.whatif import VARIANT_NAMES, VARIANTS, Evaluation, evaluate, pick_variants, whatif_dict

__all__ = [
    "DEFAULT_APIS", "VARIANTS", "VARIANT_NAMES", "Evaluation", "Projection", "SweepResult", "evaluate",
    "load_api_prices", "pick_apis", "pick_variants", "project", "project_dict", "run_sweep", "split_values",
    "sweep_dict", "sweep_points", "whatif_dict",
]
