"""A plan to simulate: pools of identical replicas with the cost model's arrays.

A plan comes from `planner solve` (a row of its table) or from a plan file: a TOML table with the
same keys as a solve plan (`hardware`, `chips`, `replicas`, `layout`, `batch`, `weight_dtype`,
`kv_dtype`, `tier_split`, `spec_k`, `prefix_cache`, `attention`), or `planner solve --format toml`
output (its `best` table is taken). An aggregated plan is one pool ('serve'); a disaggregated plan
(`mode = "disaggregated"`, issue #15) is a `prefill` and a `decode` table, each with those keys
(the prefill pool has no batch, tiers or speculation: one prompt at a time, as the search models
it), and the KV transfer between them, whose bandwidth is derived here from the two pools'
hardware exactly as the search derives it (`disagg_search.pair_bandwidth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planner.catalog import Catalog, for_scenario
from planner.errors import InputFileError, UnknownIdError
from planner.lowering import (
    KV_BYTES,
    WEIGHT_BYTES,
    config_arrays,
    dense_weight_dtype,
    draft_arrays,
    hardware_arrays,
    head_weight_dtype,
    model_arrays,
)
from planner.model.types import Arch, Config, Hw, Load, Spec
from planner.schema import Scenario
from planner.speculative_methods import incompatibility

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
class Transfer:
    """The KV shipment of a disaggregated plan, prefill instance -> decode instance."""

    bandwidth: float  # bytes/s between one prefill and one decode instance
    link: str  # 'scale-up' (both in one domain) or 'scale-out'
    layerwise: bool  # layer i's KV leaves once layer i is computed (else after the whole prefill)
    shared_cache: bool  # the prefix cache is one pool in the prefill instances' host memory


@dataclass(frozen=True)
class SimPlan:
    mode: str
    pools: tuple[Pool, ...]
    load: Load
    transfer: Transfer | None = None

    @property
    def serve(self) -> Pool:
        """The pool requests arrive at: the only one (aggregated) or the prefill pool."""
        return self.pools[0]

    @property
    def disaggregated(self) -> bool:
        return self.mode == "disaggregated"

    def pool(self, role: str) -> Pool:
        return next(p for p in self.pools if p.role == role)

    @property
    def instances(self) -> int:
        return sum(p.instances for p in self.pools)


def _f64(tup):
    return type(tup)(*(np.asarray(x, dtype=np.float64) for x in tup))


def pool_from_plan(plan: dict[str, Any], scenario: Scenario, catalog: Catalog, load: Load, role: str = "serve",
                   where: str = "plan") -> Pool:
    """The cost model's arrays for one plan row (hardware, layout, batch, dtypes, tiers, k, cache)."""
    from planner import tco

    for key in PLAN_KEYS:
        if plan.get(key) is None:
            raise InputFileError(f"{where}.{key}: required key is missing (a plan needs {', '.join(PLAN_KEYS)})")
    _check_numbers(plan, where)
    try:
        acc = catalog.accelerator(str(plan["hardware"]))
    except UnknownIdError as exc:
        raise UnknownIdError(f"{where}.hardware: {exc}") from None
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
    # the rules a pinned eval case is held to (a plan file is hand-editable: ep = 7 on a dense model
    # had simulated as "ep7 x cp5")
    from planner.evaluation import pinned_layout, refuse_moe_only

    degrees = {"tp": tp, "pp": pp, "ep": ep, "dp_attention": dp, "cp": cp}
    refuse_moe_only(degrees, model, lambda key: f"{where}.layout.{key}")
    pinned_layout(instance_chips, degrees, lambda key: f"{where}.layout.{key}")
    for key, table in (("weight_dtype", WEIGHT_BYTES), ("kv_dtype", KV_BYTES)):
        if plan[key] not in table:
            raise InputFileError(f"{where}.{key}: {plan[key]!r} is not one of {', '.join(table)}")
    tiers = plan.get("tier_split") or {}
    cfg = config_arrays(
        chips=instance_chips, batch=int(plan["batch"]), weight_dtype=plan["weight_dtype"], kv_dtype=plan["kv_dtype"],
        dense_dtype=dense_weight_dtype(model, plan["weight_dtype"]),
        head_dtype=head_weight_dtype(model, plan["weight_dtype"]),
        dram_frac=float(tiers.get("dram", 0.0)), nvme_frac=float(tiers.get("nvme", 0.0)),
        spec_k=int(plan.get("spec_k", 0)), prefix_cache=1.0 if plan.get("prefix_cache") else 0.0,
        flash=0.0 if plan.get("attention") == "naive" else 1.0, tp=tp, pp=pp, ep=ep, dp_attn=dp, cp=cp,
        replicas=per_system, expert_imbalance=scenario.serving.expert_imbalance)
    hw = tco.priced(hardware_arrays([acc], catalog, scenario.search.risk), [acc], scenario)
    hw = Hw(*(np.asarray(x)[0] for x in hw))
    speculation = _speculation(plan, scenario, where)
    if speculation.method != "none":
        why = incompatibility(speculation.method, catalog, model, speculation)
        if why:
            raise InputFileError(f"{where}.spec_method: {why}")
    spec, draft_bytes = draft_arrays(catalog, model, speculation, plan["weight_dtype"])
    replicas = int(plan["replicas"])  # whole and >= 1 (`_check_numbers`)
    pool = Pool(role=role, plan=plan, instances=replicas * per_system, arch=_f64(model_arrays(model)),
                hw=_f64(hw), cfg=_f64(cfg), spec=_f64(spec), draft_weight_bytes=float(draft_bytes))
    _check_fits(pool, load, where)
    return pool


SPEC_K_MAX = 16  # as `planner eval --spec-k` and the scenario's search allow


def _whole(value: Any, at: str, low: int) -> int:
    """An integer >= `low` (a TOML integer, or a float with no fraction), else one line naming the key."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and float(value).is_integer() and value >= low
    if not ok:
        raise InputFileError(f"{at}: {value!r} is not a whole number >= {low}")
    return int(value)


def _check_numbers(plan: dict[str, Any], where: str) -> None:
    """The plan's counts, layout and tier shares are what a plan can hold: a plan file is written by
    hand too, and a bare int() read 'abc' as an internal error, 2.7 replicas as 2 and spec_k = -1 as
    a draft of minus one token."""
    for key in ("chips", "replicas", "batch"):
        _whole(plan[key], f"{where}.{key}", 1)
    spec_k = _whole(plan.get("spec_k", 0), f"{where}.spec_k", 0)
    if spec_k > SPEC_K_MAX:
        raise InputFileError(f"{where}.spec_k: {spec_k} is above {SPEC_K_MAX}, the most the planner searches")
    layout = plan.get("layout") or {}
    if not isinstance(layout, dict):
        raise InputFileError(f"{where}.layout: expected a table of {', '.join(LAYOUT_KEYS)}")
    for key in LAYOUT_KEYS:
        if key in layout:
            _whole(layout[key], f"{where}.layout.{key}", 1)
    split = plan.get("tier_split") or {}
    if not isinstance(split, dict):
        raise InputFileError(f"{where}.tier_split: expected a table of hbm, dram and nvme shares")
    for key in ("hbm", "dram", "nvme"):
        share = split.get(key, 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
            raise InputFileError(f"{where}.tier_split.{key}: {share!r} is not a share between 0 and 1")
    if float(split.get("dram", 0.0)) + float(split.get("nvme", 0.0)) > 1.0 + 1e-6:
        raise InputFileError(f"{where}.tier_split: dram + nvme exceed 1 (the shares of the KV held off HBM)")
    if "prefix_cache" in plan and not isinstance(plan["prefix_cache"], bool):
        raise InputFileError(f"{where}.prefix_cache: {plan['prefix_cache']!r} is not true or false")


def _check_fits(pool: Pool, load: Load, where: str) -> None:
    """A plan whose weights and activations alone exceed the chip's usable memory cannot be loaded:
    simulating it rejected every request and printed a TPOT of ~10^9 ms. (A running batch whose KV
    overflows is left to the simulator, which admits what fits, as engines do.)"""
    from planner.model.numpy_reference import twin

    with np.errstate(all="ignore"):
        md = twin()["serving"].memory_and_decode(pool.arch, pool.hw, pool.cfg, pool.spec, load,
                                                 np.float64(pool.draft_weight_bytes))
    mem = md["mem"]
    fixed = float(mem["weights"] + mem["activations"] + mem["attn_scores"]) / 1e9
    cap = float(md["hbm_cap"]) / 1e9
    if not fixed <= cap:
        p = pool.plan
        raise InputFileError(
            f"{where}: the plan does not fit: its weights ({p['weight_dtype']}) and activations take {fixed:,.1f} GB "
            f"per chip against {cap:,.1f} GB usable on {p['hardware']}; use more chips or a smaller weight dtype "
            "(or `planner solve` for a plan that fits)")
    if not float(md["host_ratio"]) <= 1.0:
        raise InputFileError(f"{where}.tier_split: the KV it puts on host tiers exceeds {pool.plan['hardware']}'s "
                             "host memory or storage; lower tier_split.dram / tier_split.nvme")


def _speculation(plan: dict[str, Any], scenario: Scenario, where: str = "plan"):
    """The plan's own speculative method (a search may try several, `search.spec_method`), its drafter
    held at the plan's weight dtype as the search holds it (grid.speculation_arrays); none at k = 0."""
    from planner.schema.scenario import SPEC_METHODS

    given = plan.get("spec_method")
    if given is not None and given not in (*SPEC_METHODS, "none"):
        raise InputFileError(f"{where}.spec_method: {given!r} is not one of {', '.join(SPEC_METHODS)}")
    method = "none" if int(plan.get("spec_k", 0)) == 0 else given or scenario.speculative.method
    spec = scenario.speculative
    return spec if method == spec.method else spec.model_copy(update={"method": method})


def sim_plan(plan: dict[str, Any], scenario: Scenario, catalog: Catalog, where: str = "plan") -> SimPlan:
    """A solve row or a plan file's table -> SimPlan."""
    from planner.grid import load_arrays

    mode = plan.get("mode", "aggregated")
    if mode not in MODES:
        raise InputFileError(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
    catalog = for_scenario(catalog, scenario)
    load = _f64(load_arrays(scenario, catalog.model(scenario.model.id), catalog))
    if mode == "disaggregated":
        return _disaggregated(plan, scenario, catalog, load, where)
    pool = pool_from_plan(plan, scenario, catalog, load, where=where)
    return SimPlan(mode=mode, pools=(pool,), load=load)


def _disaggregated(plan: dict[str, Any], scenario: Scenario, catalog: Catalog, load: Load, where: str) -> SimPlan:
    """Both pools of a disaggregated plan, and their transfer link (derived, as the search does)."""
    from planner.disagg_search import LOCATIONS, pair_bandwidth

    locations = (*LOCATIONS, "off")  # a plan's prefix_cache_lives, as disagg_plans writes it

    tables = {}
    for role in ("prefill", "decode"):
        table = plan.get(role)
        if not isinstance(table, dict):
            raise InputFileError(f"{where}.{role}: a disaggregated plan needs a [{role}] table with "
                                 f"{', '.join(k for k in PLAN_KEYS if not (role == 'prefill' and k == 'batch'))}")
        tables[role] = dict(table)
    pre, dec = tables["prefill"], tables["decode"]
    lives = pre.get("prefix_cache_lives", "prefill instances" if pre.get("prefix_cache") else "off")
    if lives not in locations:
        raise InputFileError(f"{where}.prefill.prefix_cache_lives: {lives!r} is not one of "
                             f"{', '.join(locations)}")
    # a prefill instance holds one prompt at a time, in HBM, without speculation (model.disagg._as_prefill)
    pre.update(batch=1, spec_k=0, tier_split={}, prefix_cache=bool(pre.get("prefix_cache")) and lives != "off")
    dec.update(prefix_cache=False)  # the decode pool receives every prompt's KV; the cache serves prefill
    pools = (pool_from_plan(pre, scenario, catalog, load, role="prefill", where=f"{where}.prefill"),
             pool_from_plan(dec, scenario, catalog, load, role="decode", where=f"{where}.decode"))
    if pools[0].cfg.kv_bytes != pools[1].cfg.kv_bytes:
        raise InputFileError(f"{where}.prefill.kv_dtype: {pre['kv_dtype']!r} differs from decode.kv_dtype "
                             f"{dec['kv_dtype']!r}; the prefill pool writes the KV in the format decode reads")
    # the search's link rule over the two pools' hardware rows (one row when they share hardware)
    rows = pools[:1] if pre["hardware"] == dec["hardware"] else pools
    links = {"out": np.array([float(p.hw.scale_out_bw) for p in rows]),
             "up": np.array([float(p.hw.link_bw) for p in rows]),
             "domain": np.array([float(p.hw.domain) for p in rows])}
    if len(rows) == 1:
        bw, shared = pair_bandwidth(np.array([[float(pre["chips"]), float(dec["chips"])]]), links)
        at = (0, 0, 0, 1)
    else:
        bw, shared = pair_bandwidth(np.array([[float(pre["chips"])], [float(dec["chips"])]]), links)
        at = (0, 0, 1, 0)
    bandwidth, same_domain = float(bw[at]), bool(shared[at])
    transfer = Transfer(bandwidth=bandwidth, link="scale-up" if same_domain else "scale-out",
                        layerwise=scenario.serving.kv_transfer == "layerwise",
                        shared_cache=lives == "shared host pool")
    return SimPlan(mode="disaggregated", pools=pools, load=load, transfer=transfer)


def read_plan_file(path: Path) -> tuple[dict[str, Any], str, str | None]:
    """A plan TOML file: (the plan, where its keys are named in errors, the model it was solved for
    when the file says). The plan's keys at the top level, `solve --format toml` output (its `best`
    table) or `simulate --format toml` output (its `plan` table)."""
    from planner import io

    data = io.read_toml(path)
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    solved_for = model.get("id") if isinstance(model.get("id"), str) else None
    for table in ("best", "plan"):
        if isinstance(data.get(table), dict) and ("hardware" in data[table] or "mode" in data[table]):
            return data[table], f"{path}: {table}", solved_for
    if "hardware" not in data and "mode" not in data:
        raise InputFileError(f"{path}: not a plan file: expected plan keys ({', '.join(PLAN_KEYS)}), a [best] "
                             "table (planner solve --format toml) or a [plan] table (planner simulate --format toml)")
    return data, str(path), solved_for
