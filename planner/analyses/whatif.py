"""What-if: the best plan's bill with one technique taken away, from ONE evaluation of the grid
(plus one run of the same kernel per host-tier set or speculative method a variant adds).

Each variant is a restriction of the search (a sub-slice of the grid axes), so its cheapest plan is
the minimum of the same `monthly` array over fewer cells: it can never beat the baseline. The
baseline grid is the scenario's search widened by every value a variant needs (e.g. `bf16` KV for
`no-kv-quantization` when the scenario lists only `fp8`); the baseline is then the cheapest plan over
that union, and `widened` records what was added.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from planner import disagg_solve
from planner.catalog import Catalog
from planner.errors import InputFileError
from planner.grid import AXES, Grid, build_grid
from planner.schema import Scenario
from planner.schema.hardware import SPECIALIST_KINDS

AxisMasks = dict[str, np.ndarray]
HostTiers = Literal["all", "dram", "none"]


def _hw_mask(grid: Grid, keep: Callable[[Any], bool]) -> np.ndarray:
    """Boolean over the padded hardware axis; padding rows are never selected."""
    mask = np.zeros(grid.shape[0], dtype=bool)
    mask[: len(grid.hardware)] = [keep(acc) for acc in grid.hardware]
    return mask


def _chip_hour(grid: Grid) -> dict[str, float]:
    """What a chip-hour of each searched accelerator costs the scenario (rented, or owned)."""
    from planner import tco

    return {acc.id: tco.chip_hour_usd(acc, grid.scenario) for acc in grid.hardware}


def _cheapest_hardware(grid: Grid) -> AxisMasks:
    rates = _chip_hour(grid)
    cheapest = min(rates.values())
    return {"hardware": _hw_mask(grid, lambda acc: rates[acc.id] == cheapest)}


def _cheapest_label(grid: Grid) -> str:
    rates = _chip_hour(grid)
    cheapest = min(rates.values())
    ids = [i for i, rate in rates.items() if rate == cheapest]
    if grid.scenario.cost.mode == "own":
        return f"only {', '.join(ids)} (${cheapest:.4g}/chip-hour owned: capex and energy at full power, the lowest searched)"
    return f"only {', '.join(ids)} (${cheapest:g}/chip-hour, the lowest searched)"


def _tiers_mask(keep: Callable[[tuple[float, float]], bool]) -> Callable[[Grid], AxisMasks]:
    return lambda g: {"tier": np.array([keep(t) for t in g.tiers])}


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    select: Callable[[Grid], AxisMasks]  # axis name -> boolean mask over that axis
    widen: dict[str, list[Any]] = field(default_factory=dict)  # search values the baseline must contain
    host_tiers: HostTiers = "all"  # host tiers that exist: "dram" drops NVMe, "none" drops DRAM too
    label: Callable[[Grid], str] | None = None  # description that depends on the grid
    disaggregated: bool = True  # False: aggregated plans only (the serving-mode axis restricted)
    mix_hardware: bool = True  # False: a disaggregated plan's two pools share one accelerator type
    spec_method: str | None = None  # a speculative method this variant needs searched (its own grid if new)


def _method_mask(method: str) -> Callable[[Grid], AxisMasks]:
    """Speculation by `method` or none, in any grid: the baseline's (whose plans without speculation
    count even where the method has a grid of its own) and the method's. Whether the model can use
    the method at all is `evaluate`'s question (a variant whose method no grid searches reads 'not
    searched', not 'no speculation')."""
    def select(g: Grid) -> AxisMasks:
        return {"spec_k": np.array([m in (method, "none") for m in g.spec_method])}
    return select


METHOD_WORDS = {"draft": "a draft model", "eagle3": "an EAGLE-3 head", "mtp": "the model's MTP heads",
                "self": "self-speculation (compressed KV)", "ngram": "n-gram matching", "suffix": "suffix decoding"}

VARIANTS: tuple[Variant, ...] = (
    Variant("no-speculative-decoding", "spec k = 0 only",
            lambda g: {"spec_k": np.array([k == 0 for k in g.spec_k])}, {"spec_k": [0]}),
    Variant("no-kv-quantization", "KV cache in bf16 only",
            lambda g: {"kv_dtype": np.array([d == "bf16" for d in g.kv_dtype])}, {"kv_dtype": ["bf16"]}),
    Variant("no-prefix-cache", "prefix cache off",
            lambda g: {"prefix_cache": np.array([not p for p in g.prefix_cache])}, {"prefix_cache": [False]}),
    Variant("no-kv-offload", "active KV in HBM only (prefix cache may still use host DRAM/NVMe)",
            _tiers_mask(lambda t: t == (0.0, 0.0)), {"dram_fraction": [0.0], "nvme_fraction": [0.0]}),
    Variant("hbm-dram-only", "no NVMe tier: active KV and prefix cache in HBM + host DRAM",
            _tiers_mask(lambda t: t[1] == 0.0), {"nvme_fraction": [0.0]}, host_tiers="dram"),
    Variant("hbm-only", "no host tiers: active KV and prefix cache in HBM only",
            _tiers_mask(lambda t: t == (0.0, 0.0)), {"dram_fraction": [0.0], "nvme_fraction": [0.0]},
            host_tiers="none"),
    Variant("naive-attention", "FlashAttention forbidden (naive attention only)",
            lambda g: {"attention": np.array([a == "naive" for a in g.attention])}, {"attention": ["naive"]}),
    Variant("bf16-weights-only", "weights in bf16 only",
            lambda g: {"weight_dtype": np.array([d == "bf16" for d in g.weight_dtype])},
            {"weight_dtype": ["bf16"]}),
    Variant("tp-pp-only", "tensor and pipeline parallelism only (no expert, attention-DP or context parallelism, "
            "no replicas inside a system)", lambda g: {"layout": np.array(
                [[lay.ep == 1 and lay.dp_attention == 1 and lay.cp == 1 and lay.replicas_per_system == 1
                  for lay in row] for row in g.layouts])}),
    Variant("gpu-only", "GPUs only (no TPU, ASIC or specialist chips)",
            lambda g: {"hardware": _hw_mask(g, lambda acc: acc.kind == "gpu")}),
    Variant("specialist-only", "SRAM/dataflow specialist chips only (Groq, Cerebras, SambaNova)",
            lambda g: {"hardware": _hw_mask(g, lambda acc: acc.kind in SPECIALIST_KINDS)}),
    Variant("cheapest-hardware-only", "only the searched hardware with the lowest $/chip-hour",
            _cheapest_hardware, label=_cheapest_label),
    Variant("no-disaggregation", "aggregated serving only (prefill and decode share every replica)",
            lambda g: {}, disaggregated=False),
    Variant("single-hardware", "one accelerator type per plan (a disaggregated plan's pools on the same hardware)",
            lambda g: {}, mix_hardware=False),
    *(Variant(f"spec-{m}", f"speculation by {words} only (or none), its published acceptance curve",
              _method_mask(m), spec_method=m) for m, words in METHOD_WORDS.items()),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


def pick_variants(names: Sequence[str] | None) -> list[Variant]:
    """Variants by name (all when `names` is empty); an unknown name is a one-line input error."""
    if not names:
        return list(VARIANTS)
    by_name = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        import difflib

        near = difflib.get_close_matches(unknown[0], VARIANT_NAMES, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InputFileError(f"unknown variant '{unknown[0]}'{hint} (known: {', '.join(VARIANT_NAMES)})")
    return [by_name[n] for n in dict.fromkeys(names)]


def widen(scenario: Scenario, variants: Sequence[Variant]) -> tuple[Scenario, dict[str, list[Any]]]:
    """The scenario whose search lists hold every value the variants need, and what was added."""
    search = scenario.search
    added: dict[str, list[Any]] = {}
    for v in variants:
        for key, values in v.widen.items():
            current = list(getattr(search, key))
            extra = [x for x in values if x not in current and x not in added.get(key, [])]
            if extra:
                added.setdefault(key, []).extend(extra)
    if not added:
        return scenario, {}
    update = {key: list(getattr(search, key)) + extra for key, extra in added.items()}
    return scenario.model_copy(update={"search": search.model_copy(update=update)}), added


def _restricted(shape: tuple[int, ...], masks: AxisMasks) -> np.ndarray:
    """Broadcastable boolean array: True where every restricted axis is selected."""
    out = np.ones((1,) * len(shape), dtype=bool)
    for name, mask in masks.items():
        axis = AXES.index(name)
        view = [1] * len(shape)
        view[axis] = shape[axis]
        if name == "layout":  # layout slots differ per hardware: the mask is [hardware, layout]
            view[0] = shape[0]
        out = out & np.asarray(mask, dtype=bool).reshape(view)
    return out


class SliceMinima:
    """The cheapest cell of one grid's bills under a variant's restriction, without a masked scan of
    the whole grid per variant and kernel run (~140 of them on the default scenario's widened grid,
    ~5 s): the least bill of every layout slot and of every cell of the configuration block (over
    all slots) is taken once, so the least bill under a restriction of one axis is a minimum over a
    small table. Only the run whose bill wins needs the cell: the first slot, in grid order, that
    holds a kept cell at that bill. Ties resolve as `np.argmin` over the masked array does (the
    lowest flat index among the kept cells of the least bill), so no plan changes. A restriction of
    two or more axes at once is scanned."""

    def __init__(self, monthly: np.ndarray, shape: tuple[int, ...]) -> None:
        self._bills = np.asarray(monthly).reshape(shape)
        self._rows = self._bills.reshape(shape[0] * shape[1], -1)  # one row per (hardware, layout slot)
        self._slot_least = self._rows.min(axis=1).reshape(shape[:2])
        self._block_least = self._rows.min(axis=0).reshape(shape[2:])

    def _least(self, name: str) -> np.ndarray:
        """The least bill of every slice along a named axis (layout: per hardware and layout slot)."""
        if name == "hardware":
            return self._slot_least.min(axis=1)
        if name == "layout":
            return self._slot_least
        axis = AXES.index(name) - 2
        return self._block_least.min(axis=tuple(i for i in range(self._block_least.ndim) if i != axis))

    def least(self, masks: AxisMasks) -> float | None:
        """The least finite bill among the cells the masks keep, or None."""
        if len(masks) > 1:
            kept = np.where(_restricted(self._bills.shape, masks), self._bills, np.inf)
            value = float(kept.min())
        else:
            name, keep = next(iter(masks.items())) if masks else ("hardware", True)
            table = self._least(name)
            keep = np.broadcast_to(np.asarray(keep, dtype=bool), table.shape)
            value = float(table[keep].min()) if keep.any() else math.inf
        return value if math.isfinite(value) else None

    def first_at(self, masks: AxisMasks, value: float) -> int:
        """The flat index of the first kept cell whose bill is `value` (a `least` of these masks)."""
        shape = self._bills.shape
        kept = _restricted(shape, masks)  # broadcastable: [hardware | 1, layout | 1, block axes | 1 ...]
        for slot in np.flatnonzero(self._slot_least.ravel() <= value):  # slots in grid order
            h, k = divmod(int(slot), shape[1])
            kept_here = kept[min(h, kept.shape[0] - 1), min(k, kept.shape[1] - 1)]
            hits = (self._rows[slot].reshape(shape[2:]) == value) & kept_here
            if hits.any():
                return int(slot) * self._rows.shape[1] + int(np.argmax(hits.ravel()))
        raise ValueError("no kept cell at that bill")  # `value` did not come from `least`


@dataclass
class VariantResult:
    name: str
    description: str
    best: dict[str, Any] | None
    monthly_usd: float | None
    delta_pct: float | None
    searched: bool  # False when the restriction leaves no cell (e.g. no GPU in the search)
    same_as_baseline: bool  # True when the restriction removes nothing from the grid


@dataclass
class Evaluation:
    """One scenario evaluated once: the baseline, each variant, and why nothing fits if nothing does."""

    scenario: Scenario
    grid: Grid
    best: dict[str, Any] | None
    variants: list[VariantResult]
    infeasible: list[dict[str, Any]]
    widened: dict[str, list[Any]]
    configs: int
    seconds: float
    host_tiers: list[HostTiers] = field(default_factory=lambda: ["all"])  # host-tier sets searched
    baseline_host_tiers: HostTiers | None = "all"
    spec_methods: list[str] = field(default_factory=list)  # speculative methods searched (own grids included)
    baseline_spec_method: str | None = None
    spec_methods_added: list[str] = field(default_factory=list)  # searched for the spec-* variants only
    warnings: list[str] = field(default_factory=list)  # the scenario served differently than written (`Grid.warnings`)


def _without_host_tiers(grid: Grid, host_tiers: HostTiers) -> Grid:
    """The same grid on hardware whose host NVMe (and for "none" also DRAM) does not exist."""
    if host_tiers == "all":
        return grid
    hw = grid.hw._replace(nvme_bytes=np.zeros_like(grid.hw.nvme_bytes))
    if host_tiers == "none":
        hw = hw._replace(dram_bytes=np.zeros_like(grid.hw.dram_bytes))
    return dataclasses.replace(grid, hw=hw)


def _on_host_tiers(scenario: Scenario, catalog: Catalog, hardware: list[Any], host_tiers: HostTiers) -> Grid:
    """The scenario's grid on hardware with only these host tiers, without the KV tier splits that
    would place active KV on a tier it lacks (they cannot fit: searching them was a run's worth of
    infinite bills, half of the grid without NVMe and seven eighths without DRAM too)."""
    if host_tiers != "all":
        update: dict[str, Any] = {"nvme_fraction": [0.0]} | ({"dram_fraction": [0.0]} if host_tiers == "none" else {})
        scenario = scenario.model_copy(update={"search": scenario.search.model_copy(update=update)})
    return _without_host_tiers(build_grid(scenario, catalog, hardware), host_tiers)


def plans_for(grid: Grid, flats: list[int]) -> list[dict[str, Any]]:
    """Plan rows for flat indices (plans_from_indices pads them so the kernel does not recompile)."""
    from planner.plans import plans_from_indices
    from planner.search import _detail_kernel

    return plans_from_indices(grid, np.asarray(flats, dtype=np.int64), _detail_kernel())


# Host-tier sets, widest first; a variant limited to one of them may also use any narrower one.
HOST_TIER_ORDER: tuple[HostTiers, ...] = ("all", "dram", "none")


def _allowed_tiers(limit: HostTiers, evaluated: Sequence[HostTiers]) -> list[HostTiers]:
    narrower = HOST_TIER_ORDER[HOST_TIER_ORDER.index(limit):]
    return [t for t in evaluated if t in narrower]


def _method_scenarios(scenario: Scenario, grid: Grid, catalog: Catalog,
                      variants: Sequence[Variant]) -> dict[str, Scenario]:
    """The scenario searching just one method, for every method a variant asks for that the
    scenario's search lacks: its grid has the same shape (the same compiled kernel runs it); methods
    the model cannot use get none (their variant reads 'not searched'). An operator may pick any of
    them, so they join the baseline as host tiers do."""
    from planner.speculative_methods import incompatibility, pick_draft

    if not any(k > 0 for k in scenario.search.spec_k):
        return {}
    model = grid.model
    out: dict[str, Scenario] = {}
    for v in variants:
        m = v.spec_method
        if m is None or m in grid.spec_method or m in out or incompatibility(m, catalog, model, scenario.speculative):
            continue
        spec = scenario.speculative
        update: dict[str, Any] = {"method": m, "draft_model": None}
        if m != spec.method:
            update.update(acceptance_short=None, acceptance_long=None, acceptance_context_tokens=None,
                          mtp_cost_fraction=None)
        if m == "draft":
            update["draft_model"] = pick_draft(catalog, model, spec)[0].id
        sc = scenario.model_copy(update={"speculative": spec.model_copy(update=update),
                                         "search": scenario.search.model_copy(update={"spec_method": []})})
        out[m] = sc
    return out


def evaluate(scenario: Scenario, catalog: Catalog, variants: Sequence[Variant] = ()) -> Evaluation:
    """Evaluate the (widened) grid once; take the baseline and each variant as minima over slices.

    Variants that remove host tiers (`hbm-only`, `hbm-dram-only`) change what the hardware has, not
    only which cells count, so each such tier set costs one more run of the same compiled kernel.
    An operator can always leave a host tier unused, so those tier sets join the baseline's search
    (and every wider variant's): the baseline is the cheapest over all of them, and no variant can
    beat it. `baseline_host_tiers` says which set the baseline came from.
    """
    from planner.plans import explain_infeasible
    from planner.search import DECODE_POOL_KEYS, run_grid

    start = time.perf_counter()
    widened_scenario, added = widen(scenario, variants)
    grid = build_grid(widened_scenario, catalog)
    pools = disagg_solve.searched(grid)  # the disaggregated mode's decode pools come with each tier set's run
    read = ("monthly", *(DECODE_POOL_KEYS if pools else ()))  # the kernel's TPOT and TTFT grids are never read here
    raw = run_grid(grid, decode_pools=pools, keys=(*read, "closest_per_hw"))
    grids: dict[str, tuple[Grid, np.ndarray]] = {"all": (grid, raw["monthly"])}
    decode: dict[str, dict[str, np.ndarray]] = {"all": raw}
    for tiers in HOST_TIER_ORDER[1:]:
        if any(v.host_tiers == tiers for v in variants):
            g = _on_host_tiers(widened_scenario, catalog, grid.hardware, tiers)
            decode[tiers] = run_grid(g, decode_pools=pools, keys=read)
            grids[tiers] = (g, decode[tiers]["monthly"])
    evaluated: list[HostTiers] = list(grids)  # type: ignore[arg-type]
    tiers_of: dict[str, HostTiers] = {t: t for t in evaluated}  # the host-tier set of every run
    methods = _method_scenarios(widened_scenario, grid, catalog, variants)
    # each added method at each host-tier set searched: a variant that drops a tier keeps every method
    # the baseline may pick (without them, hbm-dram-only priced dropping NVMe *and* the added methods)
    for m, sc in methods.items():  # their decode pools join the disaggregated mode's as host-tier sets do
        for tiers in evaluated:
            key = f"method:{m}" if tiers == "all" else f"method:{m}@{tiers}"
            g = _on_host_tiers(sc, catalog, grid.hardware, tiers)
            decode[key] = run_grid(g, decode_pools=pools, keys=read)
            grids[key], tiers_of[key] = (g, decode[key]["monthly"]), tiers
    method_keys = [key for key in grids if key.startswith("method:")]

    def keys_within(limit: HostTiers) -> list[str]:
        """The runs a variant limited to the host-tier set `limit` may pick from: its own and narrower
        tier sets, each with the added methods' grids at that set."""
        allowed = _allowed_tiers(limit, evaluated)
        return [*allowed, *(key for key in method_keys if tiers_of[key] in allowed)]

    minima = {t: SliceMinima(monthly, g.shape) for t, (g, monthly) in grids.items()}
    aggregated = "aggregated" in scenario.search.serving_mode  # a disaggregated-only scenario: pairs alone

    def cheapest(v: Variant | None, keys: list[str]) -> tuple[str, int] | None:
        if not aggregated:
            return None
        found: tuple[float, str, AxisMasks] | None = None
        for t in keys:
            masks = v.select(grids[t][0]) if v is not None else {}
            value = minima[t].least(masks)
            if value is not None and (found is None or value < found[0]):
                found = (value, t, masks)
        return None if found is None else (found[1], minima[found[1]].first_at(found[2], found[0]))

    def searched(v: Variant) -> bool:
        if not v.disaggregated and not aggregated:
            return False  # aggregated serving only, in a scenario that searches disaggregated serving only
        if v.spec_method is not None and v.spec_method not in grid.spec_method and v.spec_method not in methods:
            return False  # the model cannot use the method (the grid left it out with a note)
        return any(bool(_restricted(grids[t][0].shape, v.select(grids[t][0])).any()) for t in ["all", *method_keys])

    base = cheapest(None, [*evaluated, *method_keys])
    disagg = _disaggregated({t: grids[t] for t in [*evaluated, *method_keys]}, decode)
    wanted: dict[str, list[int]] = {t: [] for t in grids}
    if base is not None:
        wanted[base[0]].append(base[1])
    picks: list[tuple[Variant, tuple[str, int] | None, bool, bool]] = []
    disagg_picks: list[dict[str, Any] | None] = []
    for v in variants:
        if not searched(v):
            picks.append((v, None, False, False))
            disagg_picks.append(None)
            continue
        keys = keys_within(v.host_tiers)
        pick = cheapest(v, keys)
        if pick is not None:
            wanted[pick[0]].append(pick[1])
        kept = _restricted(grid.shape, v.select(grid))
        same = (v.host_tiers == "all" and not method_keys and bool(kept[:len(grid.hardware)].all())
                and (disagg is None or (v.disaggregated and v.mix_hardware)))
        picks.append((v, pick, True, same))
        disagg_picks.append(disagg.best({t: v.select(grids[t][0]) for t in keys}, keys,
                                        v.mix_hardware and scenario.search.mix_hardware)
                            if disagg is not None and v.disaggregated else None)

    closest: list[int] = []
    if base is None:
        block = int(np.prod(grid.shape[1:]))
        closest = [h * block + int(raw["closest_per_hw"][h]) for h in range(len(grid.hardware))]
    plans: dict[tuple[str, int], dict[str, Any]] = {}
    closest_plans: list[dict[str, Any]] = []
    for tiers, flats in wanted.items():
        todo = list(dict.fromkeys(flats)) + (closest if tiers == "all" else [])
        if not todo:
            continue
        got = plans_for(grids[tiers][0], todo)
        n = len(todo) - (len(closest) if tiers == "all" else 0)
        plans.update({(tiers, f): p for f, p in zip(todo[:n], got[:n], strict=True)})
        if tiers == "all":
            closest_plans = got[n:]
    best = plans[base] if base is not None else None
    base_tiers: HostTiers | None = tiers_of[base[0]] if base is not None else None
    if disagg is not None:
        pair = disagg.best_with_tiers(None, [*evaluated, *method_keys], scenario.search.mix_hardware)
        if pair is not None and _cheaper(best, pair[0]) is pair[0]:
            best = pair[0]  # the baseline is disaggregated: its host-tier set is the pair's
            base_tiers = tiers_of[pair[1]]

    results = []
    for (v, pick, searched, same), other in zip(picks, disagg_picks, strict=True):
        plan = _cheaper(plans[pick] if pick is not None else None, other)
        cost = plan["monthly_usd"] if plan is not None else None
        delta = None
        if cost is not None and best is not None and best["monthly_usd"]:
            delta = round(100.0 * (cost - best["monthly_usd"]) / best["monthly_usd"], 2)
        label = v.label(grid) if v.label is not None else v.description
        results.append(VariantResult(v.name, label, plan, cost, delta, searched, same))
    by_id = {acc.id: acc for acc in grid.hardware}
    infeasible = [explain_infeasible(p, widened_scenario, by_id.get(p["hardware"])) for p in closest_plans]
    if best is not None and best["mode"] == "disaggregated":
        infeasible = []
    return Evaluation(scenario=scenario, grid=grid, best=best, variants=results, infeasible=infeasible,
                      widened=added, configs=grid.size * (1 + len(methods)), seconds=time.perf_counter() - start,
                      host_tiers=evaluated,
                      baseline_host_tiers=base_tiers,
                      spec_methods=[m for m in dict.fromkeys([*grid.spec_method, *methods]) if m != "none"],
                      baseline_spec_method=_spec_method(best), spec_methods_added=list(methods),
                      warnings=grid.warnings if not added else build_grid(scenario, catalog).warnings)


def _spec_method(plan: dict[str, Any] | None) -> str | None:
    """The speculative method of a plan of either mode (a disaggregated plan's decode pool drafts)."""
    if plan is None:
        return None
    return plan.get("spec_method") or (plan.get("decode") or {}).get("spec_method")


def _cheaper(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cheaper of two plans of either serving mode (aggregated first on a tie)."""
    if a is None or b is None:
        return a if b is None else b
    return b if b["monthly_usd"] < a["monthly_usd"] else a


@dataclass
class _Disaggregated:
    """The disaggregated mode evaluated once per host-tier set; variants are masks over it."""

    evals: dict[str, Any]  # per host-tier set, and per speculative method with a grid of its own

    def best(self, masks: dict[str, AxisMasks] | None, tiers: Sequence[str], mix: bool) -> dict[str, Any] | None:
        found = self.best_with_tiers(masks, tiers, mix)
        return None if found is None else found[0]

    def best_with_tiers(self, masks: dict[str, AxisMasks] | None, tiers: Sequence[str],
                        mix: bool) -> tuple[dict[str, Any], str] | None:
        """The cheapest pair over these grids (host-tier sets, method grids), each restricted by its
        own masks (a method grid's speculation axis is not the baseline's), and the grid it came
        from (the first on a tie)."""
        from planner import disagg_search
        from planner.disagg_plans import plan_row

        found = None
        for t in tiers:
            ev = self.evals[t]
            choice = disagg_search.best(ev, None if masks is None else masks[t], mix)
            if choice is not None and (found is None or choice.monthly_usd < found[1].monthly_usd):
                found = (ev, choice, t)
        return None if found is None else (plan_row(found[0], found[1]), found[2])


def _disaggregated(grids: dict[str, tuple[Grid, np.ndarray]],
                   runs: dict[str, dict[str, np.ndarray]]) -> _Disaggregated | None:
    """The disaggregated serving mode on each evaluated grid, when the scenario searches it (its
    decode pools from that grid's `run_grid`, where the row kernel computed them)."""
    from planner import disagg_search
    from planner.search import decode_pools_in

    first = next(iter(grids.values()))[0]
    if not disagg_solve.searched(first):
        return None
    evals = {t: disagg_search.launch(g, decode_pools_in(runs[t], runs[t].__getitem__))() for t, (g, _) in grids.items()}
    return _Disaggregated(evals)


def closest_miss(evaluation: Evaluation) -> dict[str, Any] | None:
    """The infeasible hardware that came closest (smallest margin), for one-line summaries."""
    rows = [x for x in evaluation.infeasible if x["margin"] is not None]
    return min(rows, key=lambda x: x["margin"]) if rows else None


def infeasible_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    return [{k: v for k, v in x.items() if k != "closest"}
            for x in sorted(evaluation.infeasible, key=lambda x: x["hardware"])]


def whatif_dict(ev: Evaluation, *, timing: bool = True) -> dict[str, Any]:
    """The `planner whatif --format json` document."""
    sc = ev.scenario
    out: dict[str, Any] = {
        "scenario": sc.name,
        "model": {"id": sc.model.id},
        "baseline": ev.best,
        "variants": [
            {"name": r.name, "description": r.description, "monthly_usd": r.monthly_usd,
             "delta_pct": r.delta_pct, "searched": r.searched, "same_as_baseline": r.same_as_baseline,
             "best": r.best}
            for r in ev.variants
        ],
        "search": {"configs": ev.configs, "hardware": len(ev.grid.hardware), "widened": ev.widened,
                   "host_tiers": ev.host_tiers, "baseline_host_tiers": ev.baseline_host_tiers,
                   "spec_methods": ev.spec_methods, "spec_methods_added": ev.spec_methods_added},
    }
    if ev.best is None:
        out["infeasible"] = infeasible_rows(ev)
    out["warnings"] = ev.warnings
    if timing:
        out["search"]["seconds"] = round(ev.seconds, 3)
    return out
