"""A plan to simulate: one pool of identical replicas (aggregated serving) with the cost model's arrays.

A plan comes from `planner solve` (a row of its table) or from a plan file: a TOML table with the
same keys as a solve plan (`hardware`, `chips`, `replicas`, `layout`, `batch`, `weight_dtype`,
`kv_dtype`, `tier_split`, `spec_k`, `prefix_cache`, `attention`), or `planner solve --format toml`
output (its `best` table is taken). The plan is a list of pools by role so that a disaggregated plan
(issue #15: a `prefill` and a `decode` pool) slots in: `mode = "disaggregated"` is recognised and
refused with a clear message until the engine learns to ship KV between pools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planner.catalog import Catalog, for_scenario
from planner.errors import InputFileError
from planner.lowering import (
    KV_BYTES,
    WEIGHT_BYTES,
    config_arrays,
    draft_arrays,
    hardware_arrays,
    model_arrays,
)
from planner.model.types import Arch, Config, Hw, Load, Spec
from planner.schema import Scenario

PLAN_KEYS = ("hardware", "chips", "replicas", "batch", "weight_dtype", "kv_dtype")
LAYOUT_KEYS = ("tp", "pp", "ep", "dp_attention", "cp", "replicas_per_system")
MODES = ("aggregated", "disaggregated")


@dataclass(frozen=True)
class Pool:
    """Identical replicas serving one role ('serve' for aggregated plans; 'prefill'/'decode' later).
    Arrays are float64 scalars, ready for the numpy twin of the cost model."""

    role: str
    plan: dict[str, Any]
    instances: int  # replicas (model instances) in the pool
    arch: Arch
    hw: Hw
    cfg: Config
    spec: Spec
    draft_weight_bytes: float


@dataclass(frozen=True)
class SimPlan:
    mode: str
    pools: tuple[Pool, ...]
    load: Load

    @property
    def serve(self) -> Pool:
        return self.pools[0]


def _f64(tup):
    return type(tup)(*(np.asarray(x, dtype=np.float64) for x in tup))


def pool_from_plan(plan: dict[str, Any], scenario: Scenario, catalog: Catalog, role: str = "serve",
                   where: str = "plan") -> Pool:
    """The cost model's arrays for one plan row (hardware, layout, batch, dtypes, tiers, k, cache)."""
    from planner import tco

    for key in PLAN_KEYS:
        if plan.get(key) is None:
            raise InputFileError(f"{where}.{key}: required key is missing (a plan needs {', '.join(PLAN_KEYS)})")
    acc = catalog.accelerator(str(plan["hardware"]))
    model = catalog.model(scenario.model.id)
    lay = dict(plan.get("layout") or {})
    per_system = int(lay.get("replicas_per_system", 1))
    chips = int(plan["chips"])
    if chips % per_system:
        raise InputFileError(f"{where}.layout.replicas_per_system: {per_system} does not divide chips = {chips}")
    instance_chips = chips // per_system
    tp = int(lay.get("tp", instance_chips))
    pp, ep, dp, cp = (int(lay.get(k, 1)) for k in ("pp", "ep", "dp_attention", "cp"))
    if tp * pp * dp != instance_chips:
        raise InputFileError(f"{where}.layout: tp {tp} x pp {pp} x dp_attention {dp} must equal the chips of one "
                             f"replica ({instance_chips}); fix layout or chips")
    for key, table in (("weight_dtype", WEIGHT_BYTES), ("kv_dtype", KV_BYTES)):
        if plan[key] not in table:
            raise InputFileError(f"{where}.{key}: {plan[key]!r} is not one of {', '.join(table)}")
    tiers = plan.get("tier_split") or {}
    cfg = config_arrays(
        chips=instance_chips, batch=int(plan["batch"]), weight_dtype=plan["weight_dtype"], kv_dtype=plan["kv_dtype"],
        dram_frac=float(tiers.get("dram", 0.0)), nvme_frac=float(tiers.get("nvme", 0.0)),
        spec_k=int(plan.get("spec_k", 0)), prefix_cache=1.0 if plan.get("prefix_cache") else 0.0,
        flash=0.0 if plan.get("attention") == "naive" else 1.0, tp=tp, pp=pp, ep=ep, dp_attn=dp, cp=cp,
        replicas=per_system, expert_imbalance=scenario.serving.expert_imbalance)
    hw = tco.priced(hardware_arrays([acc], catalog, scenario.search.risk), [acc], scenario)
    hw = Hw(*(np.asarray(x)[0] for x in hw))
    spec, draft_bytes = draft_arrays(catalog, model, scenario.speculative)
    replicas = int(plan["replicas"])
    if replicas < 1:
        raise InputFileError(f"{where}.replicas: {replicas} must be at least 1")
    return Pool(role=role, plan=plan, instances=replicas * per_system, arch=_f64(model_arrays(model)),
                hw=_f64(hw), cfg=_f64(cfg), spec=_f64(spec), draft_weight_bytes=float(draft_bytes))


def sim_plan(plan: dict[str, Any], scenario: Scenario, catalog: Catalog, where: str = "plan") -> SimPlan:
    """A solve row or a plan file's table -> SimPlan (aggregated only, for now)."""
    from planner.grid import load_arrays

    mode = plan.get("mode", "aggregated")
    if mode not in MODES:
        raise InputFileError(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
    if mode == "disaggregated":
        raise InputFileError(f"{where}.mode: disaggregated plans (prefill and decode pools) are not simulated yet; "
                             "simulate each pool's aggregated twin, or an aggregated plan")
    catalog = for_scenario(catalog, scenario)
    pool = pool_from_plan(plan, scenario, catalog, where=where)
    load = _f64(load_arrays(scenario, catalog.model(scenario.model.id), catalog))
    return SimPlan(mode=mode, pools=(pool,), load=load)


def read_plan_file(path: Path) -> dict[str, Any]:
    """A plan TOML file: the plan's keys at the top level, or `solve --format toml` output (its `best`)."""
    from planner import io

    data = io.read_toml(path)
    if "best" in data and isinstance(data["best"], dict):
        return data["best"]
    if "hardware" not in data and "mode" not in data:
        raise InputFileError(f"{path}: not a plan file: expected plan keys ({', '.join(PLAN_KEYS)}) or a [best] "
                             "table (planner solve --format toml)")
    return data
