"""`planner solve`: exhaustive search of the grid in one jitted call, then the answer explained.

Pass 1 (jitted, whole grid) returns the monthly bill, TTFT/TPOT p95 and the worst SLO ratio of
every configuration, reduced per hardware on device. Pass 2 re-evaluates only the configurations
worth reporting (best per hardware, Pareto points, closest misses) to get their full detail.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np

from planner import executables, timing
from planner.catalog import Catalog
from planner.grid import AXES, Grid, build_grid, with_load_of
from planner.pareto import pareto_indices, side_by_side
from planner.schema import Scenario

SLOT_FIELDS = ("chips", "tp", "pp", "ep", "dp_attn", "cp", "replicas")
"""Config fields that vary along the (per-hardware) layout axis: passed row by row to the row kernel."""
DECODE_POOL_KEYS = ("decode_monthly", "decode_tpot95")
"""Outputs of the row kernel with `decode_pools`: every configuration as a disaggregated decode pool
(no prefix-cache axis; within each hardware row and layout slot, in `disagg_search.DECODE_AXES` order)."""
ROW_SPLIT = (1, 2, 3)  # `_row_kernel`'s arguments split by hardware rows: hw_rows, slot_rows, valid_rows
SLOT_COUNT = "_slots"  # real layout slots per hardware row (the row kernel evaluates only those)
SLOT_ONLY = "_only"  # [rows, slots]: 1 where the row kernel may evaluate a slot, 0 where it leaves it at inf
PER_CONFIGURATION = ("monthly", "tpot95", "ttft95", *DECODE_POOL_KEYS)  # row-kernel outputs of one value per configuration
FLOOR_MARGIN = 1e-5
"""A layout is skipped only when its bill floor exceeds the row's best by more than float32 rounding
(`serving.monthly_floor` and the bill are computed in different orders)."""


def _reduce(monthly, tpot, ttft, worst):
    """[H, R] per-hardware rows -> the flat arrays and per-hardware reductions pass 1 returns."""
    import jax.numpy as jnp

    return {
        "monthly": monthly.ravel(),
        "tpot95": tpot.ravel(),
        "ttft95": ttft.ravel(),
        "best_per_hw": jnp.argmin(monthly, axis=1),
        "best_monthly_per_hw": jnp.min(monthly, axis=1),
        "closest_per_hw": jnp.argmin(worst, axis=1),
    }


def _row_outputs(m, valid, shape):
    import jax.numpy as jnp

    def full(x):
        return jnp.broadcast_to(x, shape).reshape(shape[0], -1)

    worst = jnp.where(jnp.broadcast_to(valid, shape), jnp.broadcast_to(m["worst_ratio"], shape), jnp.inf)
    return full(m["monthly_usd"]), full(m["tpot_p95_s"]), full(m["ttft_p95_s"]), worst.reshape(shape[0], -1)


def row_of(x, i):
    """Row `i` (a loop index, never negative) of a per-row array: `x[i]` also wraps negative
    indices, ~7 traced operations where this is 2, once per field (~40 hardware fields)."""
    import jax

    return jax.lax.dynamic_index_in_dim(x, i, keepdims=False)


def row_spans(valid_rows, n_slots):
    """(rows a device's loop visits, real slots it visits in each): up to the last row with a valid
    configuration, skipping rows without one. (Counting the valid rows instead stopped early when a
    hardware in the middle had none, e.g. every GPU without FP4 in an FP4-only search, and left
    the last real row unevaluated: reported infeasible.)"""
    import jax.numpy as jnp

    has = jnp.any(valid_rows.reshape(valid_rows.shape[0], -1), axis=1)
    last = jnp.max(jnp.where(has, jnp.arange(has.shape[0], dtype=jnp.int32) + 1, 0))
    return last, jnp.where(has, n_slots, 0)


@cache
def _grid_kernel(dense: bool, absent: tuple[str, ...] = ()):
    """Whole grid as one broadcast expression: best where the device is wide (GPU)."""
    import jax
    import jax.numpy as jnp

    from planner.model.attention import without_absent
    from planner.model.compute import without_experts
    from planner.model.serving import evaluate_serving

    def kernel(arch, hw, cfg, spec, load, draft_bytes, valid):
        arch = without_absent(without_experts(arch) if dense else arch, absent)
        m = evaluate_serving(arch, hw, cfg, spec, load, draft_bytes, valid)
        shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in (*hw, *cfg)), jnp.shape(valid))
        return _reduce(*_row_outputs(m, valid, shape))

    return jax.jit(kernel)


@cache
def _row_kernel(devices: int, dense: bool, absent: tuple[str, ...] = (), decode_pools: bool = False):
    """The grid one hardware row and layout slot at a time (loops over the real ones), split across
    `devices` host devices.

    With the runtime flag `prune` > 0 (the last argument; same executable either way) the kernel
    finds only what a plans table needs, each hardware's cheapest configuration (or, with none
    feasible, its closest miss): it skips every layout slot whose bill floor (`serving.monthly_floor`:
    one whole system) is not below the cheapest bill already found on its row. Slots come in
    ascending chip counts, so on the default scenario 431 of 1,057 are skipped; a skipped slot's
    per-configuration outputs are left at inf, and `evaluated` ([rows, slots]) says which ran.
    Frontiers need every slot: a second run with SLOT_ONLY set to the skipped ones evaluates just
    those (`solve_in_stages`), so the two runs together do the unpruned run's work. The best
    disaggregated pair needs only the skipped slots that may still pair below the best pair found
    without them (`disagg_solve.outcome`; none on the default scenario).

    On CPUs the whole-grid expression streams ~10 MB intermediates through memory; a row's are
    ~300 KB and stay in cache, which makes the search ~2.5x faster on 2 cores (`planner bench`).

    With `decode_pools`, every configuration is also scored as a disaggregated decode pool (its bill
    and TPOT p95; the prefix-cache axis dropped, a decode pool has none): both read the same memory
    and decode steps (`serving.memory_and_decode`, the model's dearest stage), computed once here
    instead of again in a kernel of the disaggregated search."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    from planner.disagg_search import DECODE_PERM
    from planner.model.attention import without_absent
    from planner.model.compute import without_experts
    from planner.model.disagg import decode_pool
    from planner.model.serving import (
        evaluate_serving,
        length_quantile_tables,
        memory_and_decode,
        monthly_floor,
    )
    from planner.model.staging import computed_once

    prefix_axis = AXES.index("prefix_cache")
    n_out = 5 if decode_pools else 3  # per-configuration grids: bill, TPOT, TTFT (+ decode pool bill, TPOT)

    def rows(arch, hw_rows, slot_rows, valid_rows, cfg, spec, load, draft_bytes, prune):
        arch = without_absent(without_experts(arch) if dense else arch, absent)
        slot_rows = dict(slot_rows)
        n_slots = slot_rows.pop(SLOT_COUNT)
        only = slot_rows.pop(SLOT_ONLY)
        n_rows, width = valid_rows.shape[:2]  # hardware rows on this device, layout slots per row
        full = jnp.broadcast_shapes(*(jnp.shape(x) for x in cfg), valid_rows.shape[1:])
        block, prefixes = math.prod(full[2:]), full[prefix_axis]

        def one(i, hw1, k, run):
            """Hardware row i (its fields `hw1`), layout slot k: one block of batch x dtypes x tiers x ... configurations,
            its four outputs stored once (read by the output buffers and the row's running minima);
            computed only where `run` (a runtime predicate) holds, zeros otherwise."""
            valid1 = jax.lax.dynamic_index_in_dim(row_of(valid_rows, i), k, keepdims=True)[None]
            cfg1 = cfg._replace(**{name: jax.lax.dynamic_index_in_dim(row_of(x, i), k, keepdims=True)[None]
                                   for name, x in slot_rows.items()})

            def outputs():
                md = computed_once(lambda: memory_and_decode(arch, hw1, cfg1, spec, load, draft_bytes), hw1.mem_bw)
                m = evaluate_serving(arch, hw1, cfg1, spec, load, draft_bytes, valid1, md=md, lengths=lengths)
                shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in cfg1), jnp.shape(valid1))
                out = tuple(x.reshape(-1) for x in _row_outputs(m, valid1, shape))
                if not decode_pools:
                    return out
                d = decode_pool(arch, hw1, cfg1, spec, load, draft_bytes, valid1, md=md)
                d_shape = shape[:prefix_axis] + (1,) + shape[prefix_axis + 1:]
                # stored in DECODE_AXES order (the disaggregated search's), not reordered on the host
                return out + tuple(jnp.broadcast_to(d[key], d_shape).squeeze(prefix_axis).transpose(DECODE_PERM).reshape(-1)
                                   for key in ("monthly_usd", "tpot_p95_s"))

            return computed_once(outputs, hw1.mem_bw, when=run)

        def worth_evaluating(i, hw1, k, cheapest):
            """Whether slot k of row i (hardware `hw1`) may hold a bill below `cheapest` (always, unless pruning)."""
            system = cfg._replace(**{name: jax.lax.dynamic_index_in_dim(row_of(slot_rows[name], i), k, keepdims=False).ravel()[0]
                                     for name in ("chips", "replicas")})
            allowed = jax.lax.dynamic_index_in_dim(row_of(only, i), k, keepdims=False) > 0.0
            return allowed & ((prune <= 0.0) | (monthly_floor(hw1, system, load) * (1.0 - FLOOR_MARGIN) < cheapest))

        # Padding rows come last on each device (see _launch) and padding slots last in each row:
        # neither is evaluated (the loops stop at the last real row and slot); their outputs stay inf.
        real, n_slots = row_spans(valid_rows, n_slots)
        lengths = length_quantile_tables(load)  # scenario-only: once here, not once per slot

        def varying(x):
            return x if devices == 1 else jax.lax.pcast(x, "hw", to="varying")

        sizes = (block,) * 3 + (block // prefixes,) * (n_out - 3)  # a decode pool has no prefix-cache axis
        grids = (*(varying(jnp.full((n_rows, width * b), jnp.inf)) for b in sizes),
                 varying(jnp.zeros((n_rows, width), jnp.float32)))  # last: which slots were evaluated
        minima = (varying(jnp.full((n_rows,), jnp.inf)), varying(jnp.zeros((n_rows,), jnp.int32)),
                  varying(jnp.zeros((n_rows,), jnp.int32)))

        def row(i, state):
            # the row's hardware, sliced once for all its slots (inside the slot loop, ~40 slices per
            # slot: the kernel ran ~10 % slower, docs/speed-log.md, thirty-seventh session)
            hw1 = type(hw_rows)(*(row_of(x, i) for x in hw_rows))

            def slot(k, state):
                (*grids, evaluated), (cheapest, cheapest_at, closest, closest_at) = state
                run = worth_evaluating(i, hw1, k, cheapest)
                monthly, tpot, ttft, worst, *pools = (jnp.where(run, x, jnp.inf) for x in one(i, hw1, k, run))
                grids = (*(jax.lax.dynamic_update_slice(g, r[None], (i, k * r.shape[0]))
                           for g, r in zip(grids, (monthly, tpot, ttft, *pools), strict=True)),
                         jax.lax.dynamic_update_slice(evaluated, run.astype(jnp.float32).reshape(1, 1), (i, k)))
                # running minima over the row's slots: strict < keeps the first minimum, as argmin does
                j, w = jnp.argmin(monthly), jnp.argmin(worst)
                cheaper, closer = monthly[j] < cheapest, worst[w] < closest
                return grids, (jnp.where(cheaper, monthly[j], cheapest), jnp.where(cheaper, k * block + j.astype(jnp.int32), cheapest_at),
                               jnp.where(closer, worst[w], closest), jnp.where(closer, k * block + w.astype(jnp.int32), closest_at))

            start = (varying(jnp.float32(jnp.inf)), varying(jnp.int32(0)), varying(jnp.float32(jnp.inf)),
                     varying(jnp.int32(0)))
            grids, row_min = jax.lax.fori_loop(0, row_of(n_slots, i), slot, (state[0], start))
            cheapest, cheapest_at, _, closest_at = row_min
            # dynamic_update_slice, not .at[i].set: a scatter, which XLA expands into a loop of its own
            mins = tuple(jax.lax.dynamic_update_index_in_dim(m, v, i, 0)
                         for m, v in zip(state[1], (cheapest, cheapest_at, closest_at), strict=True))
            return grids, mins

        grids, (cheapest, cheapest_at, closest_at) = jax.lax.fori_loop(0, real, row, (grids, minima))
        *grids, evaluated = grids
        pools = dict(zip(DECODE_POOL_KEYS, grids[3:], strict=False))
        return {"monthly": grids[0], "tpot95": grids[1], "ttft95": grids[2], **pools, "best_per_hw": cheapest_at,
                "best_monthly_per_hw": cheapest, "closest_per_hw": closest_at, "evaluated": evaluated}

    if devices == 1:  # the replicas' program (or a one-core host): no shard_map, whose varying-axis
        # bookkeeping traced ~1,100 `pvary` operations (a fifth of the kernel's) that lower to nothing
        sharded = rows
    else:
        mesh = Mesh(np.asarray(jax.devices()[:devices]), ("hw",))
        split, whole = P("hw"), P()
        sharded = jax.shard_map(rows, mesh=mesh, out_specs=split,
                                in_specs=tuple(split if i in ROW_SPLIT else whole for i in range(9)))

    def kernel(arch, hw_rows, slot_rows, valid_rows, cfg, spec, load, draft_bytes, prune):
        out = sharded(arch, hw_rows, slot_rows, valid_rows, cfg, spec, load, draft_bytes, prune)
        return {key: value.ravel() if key in PER_CONFIGURATION else value for key, value in out.items()}

    return jax.jit(kernel)


def row_kernel_maker(devices: int, dense: bool, absent: tuple[str, ...] = (), decode_pools: bool = False):
    """What `executables.compiled` builds the row kernel from: on several host devices, the
    one-device kernel run as replicas, each device on its share of the rows (`replicated`: the same
    answer as `_row_kernel(devices, ...)`, whose SPMD program cost ~1.3 s more CPU to compile); on
    one, or with a JAX older than the replicas know, the `shard_map` kernel itself."""
    from planner import replicated

    if devices == 1 or not replicated.available():
        return _row_kernel(devices, dense, absent, decode_pools)
    return replicated.Spec(_row_kernel(1, dense, absent, decode_pools), devices, ROW_SPLIT)


def _detail_kernel():
    """`evaluate_serving` for the few configurations a solve reports (pass 2: best per hardware,
    closest misses, Pareto points), run by the model's numpy twin (numpy_reference: the same source
    with `jnp` bound to numpy): ~20 ms for a solve's ~100 rows with nothing to compile or load, where a jitted
    detail kernel cost ~6 s to compile cold and 0.2-0.5 s to load warm. Its float32 results can
    differ from pass 1's in the last digit (as a separately compiled kernel's could)."""
    from planner.model.numpy_reference import twin

    evaluate = twin()["serving"].evaluate_serving

    def detail(*args: Any) -> dict[str, Any]:
        with np.errstate(all="ignore"):  # inf x 0 and the like give NaN silently, as under jit
            return evaluate(*args)

    return detail


def _in_thread(work: Callable[..., None], *args: Any) -> threading.Thread:
    """`work(*args)` started in a daemon thread; an error there is left for the real call to raise."""
    def run() -> None:
        with contextlib.suppress(Exception):  # only getting a kernel ready early
            work(*args)

    thread = threading.Thread(target=run, name=f"planner-{getattr(work, '__name__', 'work')}", daemon=True)
    thread.start()
    return thread


def _still_feasible(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plans pass 2 confirms: a configuration pass 1 found feasible at an SLO ratio within float32
    rounding of 1 may read as a miss when re-evaluated; it is then not listed as a plan with no bill
    (a hardware's best becomes its closest miss)."""
    return [p for p in plans if p.get("monthly_usd") is not None]


def _sharded(args, rows: int):
    """Place arrays whose leading axis is the (padded) hardware axis across the host devices."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    devices = jax.devices()
    if len(devices) < 2 or rows % len(devices):
        return args
    mesh = jax.sharding.Mesh(np.asarray(devices), ("hw",))
    split, whole = NamedSharding(mesh, P("hw")), NamedSharding(mesh, P())

    def put(x):
        x = np.asarray(x)
        return jax.device_put(x, split if x.ndim and x.shape[0] == rows else whole)

    return jax.tree_util.tree_map(put, args)


def deal_rows(grid: Grid, devices: int, work: np.ndarray | None = None) -> np.ndarray:
    """The order in which the hardware rows go to the host devices (device d takes the d-th block of
    rows / devices): each device's share of the slots it evaluates as even as possible, since a
    device's time is its slots x the block, and the kernel waits for the slowest (round-robin over
    the default grid gave one device 600 real slots and the other 421: 30 % idle). `work`: the slots
    each row evaluates where a run is limited to some (`only`; the run after a pruned one was dealt
    by real slots 187 / 244 per device and took 6 % longer); else its real slots. Greedy, largest
    first, onto the device with the least work that still has room; rows without a valid
    configuration go last on each device (the loop stops before them). Any order gives the same answer."""
    rows = grid.shape[0]
    per_device = rows // devices
    valid = np.broadcast_to(grid.valid, (rows,) + np.shape(grid.valid)[1:]).reshape(rows, -1).any(axis=1)
    work = np.where(valid, grid.slot_valid.sum(axis=1) if work is None else np.asarray(work), 0)
    shares: list[list[int]] = [[] for _ in range(devices)]
    load = [0] * devices
    for r in sorted(range(rows), key=lambda r: (-work[r], r)):
        d = min((d for d in range(devices) if len(shares[d]) < per_device), key=lambda d: (load[d], d))
        shares[d].append(r)
        load[d] += int(work[r])
    return np.asarray([r for share in shares for r in share], dtype=np.int64)


def model_flags(grid: Grid) -> tuple[bool, tuple[str, ...], str]:
    """The static arguments every search kernel is traced with: whether the model is dense, the
    attention kinds it lacks, and the kernel-cache name part they make."""
    from planner.model.attention import absent_kinds

    dense = not np.any(np.asarray(grid.arch.experts_routed))
    absent = absent_kinds(grid.arch)
    return dense, absent, f"{'dense' if dense else 'moe'}-{'-'.join(absent) or 'all'}"


def dealt_rows(grid: Grid, valid, work: np.ndarray | None = None,
               ) -> tuple[int, np.ndarray, Any, dict[str, np.ndarray], np.ndarray]:
    """A row kernel's inputs: (host devices, `deal_rows` order, hardware rows, layout-slot fields with
    each row's real slot count under SLOT_COUNT, `valid` rows), all in dealt order."""
    import jax

    rows = grid.shape[0]
    devices = max(d for d in range(1, len(jax.devices()) + 1) if rows % d == 0)
    deal = deal_rows(grid, devices, work)
    hw_rows = type(grid.hw)(*(np.asarray(x).reshape(rows)[deal] for x in grid.hw))
    slot_rows = {name: np.asarray(getattr(grid.cfg, name))[deal] for name in SLOT_FIELDS}
    slot_rows[SLOT_COUNT] = grid.slot_valid.sum(axis=1).astype(np.int32)[deal]
    valid_rows = np.broadcast_to(valid, (rows,) + np.shape(valid)[1:])[deal]
    return devices, deal, hw_rows, slot_rows, valid_rows


def row_kernel_inputs(grid: Grid, prune: bool = False, only: np.ndarray | None = None,
                      ) -> tuple[int, np.ndarray, tuple[Any, ...]]:
    """(host devices, `deal_rows` order, arguments) of `_row_kernel` for `grid` (see `_launch`);
    a run limited to `only` some slots is dealt by how many of them each row has."""
    work = None if only is None else ((np.asarray(only) > 0) & grid.slot_valid).sum(axis=1)
    devices, deal, hw_rows, slot_rows, valid_rows = dealt_rows(grid, grid.valid, work)
    slot_rows[SLOT_ONLY] = (np.ones(grid.slot_valid.shape, np.float32) if only is None
                            else np.asarray(only, np.float32))[deal]
    return devices, deal, (grid.arch, hw_rows, slot_rows, valid_rows, grid.cfg, grid.spec, grid.load,
                           np.float32(grid.draft_weight_bytes), np.float32(1.0 if prune else 0.0))


def slot_floors(grid: Grid) -> np.ndarray:
    """[H_pad, K] the bill floor of every layout slot (`serving.monthly_floor`, by the model's numpy
    twin), by which the pruned searches leave layouts out."""
    from planner.model import numpy_reference

    floor = numpy_reference.monthly_floor(grid.hw, grid.cfg, grid.load)
    return np.broadcast_to(floor, grid.shape[:2] + np.shape(floor)[2:]).reshape(grid.shape[:2])


def in_grid_order(x, deal: np.ndarray) -> np.ndarray:
    """A row-kernel output back in hardware order: device d holds rows deal[d-th block]; each shard
    is copied once, straight to its rows (no assembled intermediate)."""
    rows = len(deal)
    out = np.empty((rows, x.size // rows), dtype=x.dtype)
    shards = sorted(x.addressable_shards, key=lambda shard: shard.index[0].start or 0)
    per_device = rows // len(shards)
    for d, shard in enumerate(shards):
        out[deal[d * per_device:(d + 1) * per_device]] = np.asarray(shard.data).reshape(per_device, -1)
    return out.reshape(x.shape)


def decode_pools_in(outputs, get: Callable[[str], np.ndarray]) -> Callable[[], tuple[np.ndarray, np.ndarray]] | None:
    """The decode pools pass 1 carried (DECODE_POOL_KEYS, each read with `get`), as
    `disagg_search.launch` takes them; None where it did not (the whole-grid kernel)."""
    return (lambda: tuple(get(key) for key in DECODE_POOL_KEYS)) if DECODE_POOL_KEYS[0] in outputs else None


def run_grid(grid: Grid, decode_pools: bool = False, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Pass 1 on the whole grid: the per-configuration bill, TPOT and TTFT p95 (flat, grid order)
    and the per-hardware reductions (`_reduce`); with `decode_pools`, on CPUs, DECODE_POOL_KEYS too.
    `keys`: copy only these outputs to the host (each per-configuration one is ~30 MB on a widened
    grid: `whatif`, which runs the kernel up to seven times, reads only the bills)."""
    out, to_host = _launch(grid, decode_pools=decode_pools)
    return {k: to_host(k) for k in out if keys is None or k in keys}


def _launch(grid: Grid, meanwhile: Callable[[], None] | None = None, decode_pools: bool = False,
            prune: bool = False, only: np.ndarray | None = None,
            ) -> tuple[dict[str, Any], Callable[[str], np.ndarray]]:
    """Start pass 1; returns its device outputs and a function that copies one of them to the
    host in grid order (the per-configuration arrays are ~10 MB each: copy only what is used).
    `meanwhile` is started while the kernel loads or compiles (`executables.compiled`).
    `decode_pools` adds DECODE_POOL_KEYS on CPUs (the row kernel), where sharing the memory and
    decode stage with the disaggregated search saves its dearest kernel. `prune`: only the per-hardware
    reductions are wanted (the row kernel skips layouts that cannot beat their row's best; CPUs).
    `only` ([rows, slots], grid order): evaluate just the slots marked 1 (the others stay inf)."""
    import jax

    rows = grid.shape[0]
    draft = np.float32(grid.draft_weight_bytes)
    dense, absent, flags = model_flags(grid)
    if jax.default_backend() == "cpu":
        devices, deal, args = row_kernel_inputs(grid, prune, only)
        name = f"rows-{devices}-{flags}{'-pools' if decode_pools else ''}"
        kernel = executables.compiled(name, lambda: row_kernel_maker(devices, dense, absent, decode_pools), args, meanwhile)
        with timing.phase("kernel"):
            out = kernel(*args)  # returns at once, or when done if it is the first call of a loaded kernel
        return out, lambda key: in_grid_order(out[key], deal)
    args = _sharded((grid.arch, grid.hw, grid.cfg, grid.spec, grid.load, draft, grid.valid), rows)
    kernel = executables.compiled(f"grid-{flags}", lambda: _grid_kernel(dense, absent), args, meanwhile)
    with timing.phase("kernel"):
        out = kernel(*args)
    return out, lambda key: np.asarray(out[key])


@dataclass
class SolveResult:
    grid: Grid
    best: dict[str, Any] | None
    per_hardware: list[dict[str, Any]]
    pareto_tpot: list[dict[str, Any]]
    pareto_ttft: list[dict[str, Any]]
    infeasible: list[dict[str, Any]]
    configs: int
    seconds: float
    frontiers_pending: bool = False  # the table stage of `solve_in_stages`: Pareto lists still empty
    disagg_pending: bool = False  # that stage without the disaggregated search (disaggregated_in_table=False)
    disagg: Any = None  # disagg_solve.Outcome: the disaggregated serving mode, when searched

    def ranked_plans(self, mode: str = "any") -> list[dict[str, Any]]:
        """The plans `--plan N` counts, cheapest first: each hardware's aggregated plan and the best
        disaggregated one (`mode`: "any", or only "aggregated" / "disaggregated" ones)."""
        plans = list(self.per_hardware)
        if self.disagg is not None and self.disagg.best is not None:
            plans.append(self.disagg.best)
        plans = [p for p in plans if p.get("monthly_usd") is not None and mode in ("any", p.get("mode", "aggregated"))]
        return sorted(plans, key=lambda p: p["monthly_usd"])


def solve(scenario: Scenario, catalog: Catalog) -> SolveResult:
    _, with_frontiers = solve_in_stages(scenario, catalog)
    return with_frontiers()


def solve_in_stages(scenario: Scenario, catalog: Catalog, disaggregated_in_table: bool = True,
                    previous: Grid | None = None, prune: bool = False,
                    ) -> tuple[SolveResult, Callable[[], SolveResult]]:
    """The table first (best plan per hardware, closest misses), then a function that adds the
    Pareto frontiers: an interactive caller can draw the table before they are ready.

    With `disaggregated_in_table=False` the disaggregated search (whose prefill kernel otherwise
    runs beside pass 1 and finishes ~0.15 s after it on 2 cores) runs in the second stage instead:
    the table stage's `best` is then the aggregated one and `disagg_pending` is set. The TUI draws
    the plans table (aggregated plans only) that much sooner; the answer after both stages is the same.
    `previous`: the grid of the caller's last solve with the same catalog, reused when only the SLOs
    or the arrival rate changed (`grid.with_load_of`). `prune`: the caller shows the table before it
    asks for the frontiers, so pass 1 may skip the layouts that cannot beat their hardware's best
    (`_row_kernel`). A disaggregated search in the table then pairs the decode pools pass 1 evaluated
    and adds just the skipped layouts that may still pair below the cheapest pair found
    (`disagg_solve.outcome`); the second stage evaluates every skipped layout first. The answers are the same."""
    from planner import disagg_search, disagg_solve
    from planner.plans import explain_infeasible, plans_from_indices

    start = time.perf_counter()
    with timing.phase("grid"):
        grid = (previous is not None and with_load_of(previous, scenario, catalog)) or build_grid(scenario, catalog)
    disaggregated = disagg_solve.searched(grid)
    # the disaggregated prefill pools' kernel gets ready in a thread while pass 1's loads or compiles
    # (after its tracing, which holds the GIL): a cold start compiles both at once on two cores
    out, to_host = _launch(grid, decode_pools=disaggregated, prune=prune,
                           meanwhile=(lambda: _in_thread(disagg_search.prepare, grid)) if disaggregated else None)
    pruned = prune and "evaluated" in out  # the whole-grid kernel (GPUs) evaluates every slot

    def every_configuration() -> Callable[[str], np.ndarray]:
        """Pass 1's per-configuration outputs, all of them: after a pruned pass 1 the same kernel
        evaluates the layouts it skipped, and the two runs' outputs are merged."""
        nonlocal out, to_host, pruned
        if pruned:
            first, done = to_host, to_host("evaluated") > 0  # [rows, slots] in grid order
            with timing.phase("kernel, skipped layouts"):
                out, rest = _launch(grid, decode_pools=disaggregated, only=(~done).astype(np.float32))

            def merged(key: str) -> np.ndarray:
                """Each run left the slots it did not evaluate at inf, so the merge is their minimum
                (one pass, in place: no slot-sized mask blown up to the grid's size)."""
                if key not in PER_CONFIGURATION:
                    return first(key)
                a = first(key)
                return np.minimum(a, rest(key), out=a)

            to_host, pruned = merged, False
        return to_host

    # the disaggregated mode: its decode pools came with pass 1 (on CPUs); its prefill pools' kernel
    # runs beside the aggregated one, or (not in the table) starts with the second stage, leaving
    # both cores to pass 1 and then to the caller's drawing
    def launch_disaggregated() -> Callable[[], Any] | None:
        """The decode pools pass 1 evaluated (every configuration's, unless it was pruned)."""
        skipped = (lambda: grid.real_slots() & ~(to_host("evaluated") > 0)) if pruned else None
        return disagg_solve.start(grid, decode_pools_in(out, to_host), skipped)

    def decode_layouts(layouts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The decode pools of just these layouts ([H_pad, K]; the same kernel, `only` them)."""
        extra, host = _launch(grid, decode_pools=True, only=layouts.astype(np.float32))
        return decode_pools_in(extra, host)()

    pending = launch_disaggregated() if disaggregated_in_table else None
    with timing.phase("kernel"):
        raw = {k: to_host(k) for k in ("best_per_hw", "best_monthly_per_hw", "closest_per_hw")}
    h_real = len(grid.hardware)
    per_hw_flat = np.asarray(raw["best_per_hw"][:h_real], dtype=np.int64)
    per_hw_cost = raw["best_monthly_per_hw"][:h_real]
    block = int(np.prod(grid.shape[1:]))
    feasible_hw = [h for h in range(h_real) if np.isfinite(per_hw_cost[h])]
    best_flat = [h * block + int(per_hw_flat[h]) for h in feasible_hw]
    closest_flat = [h * block + int(raw["closest_per_hw"][h]) for h in range(h_real) if h not in feasible_hw]
    wanted = np.asarray(best_flat + closest_flat, dtype=np.int64)
    with timing.phase("plans"):
        plans = plans_from_indices(grid, wanted, _detail_kernel()) if wanted.size else []
    per_hardware = sorted(_still_feasible(plans[:len(best_flat)]), key=lambda p: p["monthly_usd"])
    # pass 1's best of a hardware that pass 2 reads as a miss (see _still_feasible) is its closest one
    misses = plans[len(best_flat):] + [p for p in plans[:len(best_flat)] if p.get("monthly_usd") is None]
    by_id = {acc.id: acc for acc in grid.hardware}
    aggregated = "aggregated" in scenario.search.serving_mode  # else the table is for comparison only
    table = SolveResult(
        grid=grid,
        best=per_hardware[0] if per_hardware and aggregated else None,
        per_hardware=per_hardware,
        pareto_tpot=[],
        pareto_ttft=[],
        infeasible=[explain_infeasible(p, scenario, by_id[p["hardware"]]) for p in misses],
        configs=grid.size,
        seconds=time.perf_counter() - start,
        frontiers_pending=True,
    )

    def with_disaggregated(table: SolveResult, started: Callable[[], Any] | None) -> SolveResult:
        found = disagg_solve.outcome(started, table.best, grid, decode_layouts, slot_floors(grid))
        return replace(disagg_solve.attach(table, found), disagg_pending=False)

    if disaggregated_in_table:
        table = with_disaggregated(table, pending)
    else:
        table = replace(table, disagg_pending=disaggregated)
    table = replace(table, seconds=time.perf_counter() - start)

    def with_frontiers(on_disaggregated: Callable[[SolveResult], None] | None = None) -> SolveResult:
        """The second stage: the disaggregated plan where the table stage left it pending (handed to
        `on_disaggregated` as soon as it is known: after a pruned pass 1 it needs only that pass's
        decode pools and the prefill kernel), then the Pareto frontiers, which need every
        configuration (the layouts pass 1 skipped are evaluated first)."""
        nonlocal table
        if table.disagg_pending:
            table = with_disaggregated(table, launch_disaggregated())
            if on_disaggregated is not None:
                on_disaggregated(replace(table, seconds=time.perf_counter() - start))
        if table.disagg is not None and table.disagg.ev.skipped is not None:  # the frontiers need every decode pool
            host = every_configuration()
            ev = table.disagg.ev
            full = disagg_search.with_decode_layouts(ev, *decode_pools_in(out, host)(), ev.skipped)
            table = replace(table, disagg=replace(table.disagg, ev=full))  # its best pair is already exact
        host = every_configuration()
        with timing.phase("frontiers"):
            monthly = host("monthly")
            par_tpot, par_ttft = side_by_side(lambda: pareto_indices(monthly, host("tpot95")),
                                              lambda: pareto_indices(monthly, host("ttft95")))
            wanted = np.asarray(list(par_tpot) + list(par_ttft), dtype=np.int64)
            plans = plans_from_indices(grid, wanted, _detail_kernel()) if wanted.size else []
            both = disagg_solve.frontiers(replace(table, pareto_tpot=_still_feasible(plans[:len(par_tpot)]),
                                                  pareto_ttft=_still_feasible(plans[len(par_tpot):])))
        return replace(both, seconds=time.perf_counter() - start, frontiers_pending=False)

    return table, with_frontiers
