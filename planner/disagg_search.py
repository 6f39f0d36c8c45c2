"""Disaggregated plans: the exhaustive search over (prefill option) x (decode option) pairs.

The two pools are coupled only through the KV transfer: its bandwidth (the slower side's chips x
per-chip link, or the shared scale-up link) and its bytes (the decode pool's KV dtype, which the
prefill pool writes). So:
1. every decode option (hardware x layout x batch x dtypes x tier split x spec k x attention, the
   aggregated grid without the prefix-cache axis) is evaluated once: its bill and TPOT, no
   prefill in it (one jitted call, a row at a time like the aggregated search);
2. every prefill option (hardware x layout x dtypes x prefix cache x attention) is evaluated at
   every transfer bandwidth the catalog can produce (few distinct values; one jitted call);
3. per (hardware, layout, KV dtype) the cheapest member of each pool is taken (exact: inside such a
   group every member sees the same transfer), then every pair of groups is scored with the
   bandwidth of that very pair: the minimum is the exact optimum over all option pairs.
Axis masks (what-if variants) and `search.mix_hardware` are applied in step 3, on the host, so
one evaluation answers every variant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np

from planner import executables, timing
from planner.grid import AXES, Grid
from planner.search import FLOOR_MARGIN, SLOT_COUNT, dealt_rows, in_grid_order, model_flags, row_of, row_spans

AxisMasks = dict[str, np.ndarray]
# The pools' arrays in a fixed order of their own (transposed from the grid's at the boundary, so
# the grid's axis order, a speed decision of the aggregated search, can change freely)
PREFILL_AXES = ("hardware", "layout", "weight_dtype", "kv_dtype", "prefix_cache", "attention", "location", "class")
LOCATIONS = ("prefill instances", "shared host pool")  # where a disaggregated plan's prefix cache lives
LOCATION_SHARED = (0.0, 1.0)  # `shared` argument of model.disagg.prefill_pool per location
DECODE_AXES = ("hardware", "layout", "batch", "weight_dtype", "kv_dtype", "tier", "spec_k", "attention")
_DECODE_ORDER = tuple(a for a in AXES if a != "prefix_cache")  # the grid's axes as a decode pool has them
DECODE_PERM = tuple(_DECODE_ORDER.index(a) for a in DECODE_AXES)
"""Transpose from the grid's order (prefix-cache axis dropped) to DECODE_AXES: the row kernel stores
its decode pools with it, and every reader of the grid's decode options applies it."""
MIN_CLASSES = 32  # transfer classes padded to a power of two at least this (fixed shapes, few compiles)


# --------------------------------------------------------------------------- kernels (jitted)

@cache
def _decode_kernel(devices: int, dense: bool, absent: tuple[str, ...]):
    """Decode pools over the grid without its prefix-cache axis, one hardware row and layout slot
    at a time over the real ones (as the aggregated row kernel: intermediates stay in cache),
    rows split across `devices` host devices."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    from planner.model.attention import without_absent
    from planner.model.compute import without_experts
    from planner.model.disagg import decode_pool

    def rows(arch, hw_rows, slot_rows, n_slots, valid_rows, cfg, spec, load, draft):
        arch = without_absent(without_experts(arch) if dense else arch, absent)
        width = valid_rows.shape[1]
        block = math.prod(jnp.broadcast_shapes(*(jnp.shape(x) for x in cfg), valid_rows.shape[1:])[2:])

        def one(i, k):
            hw1 = type(hw_rows)(*(row_of(x, i) for x in hw_rows))
            valid1 = jax.lax.dynamic_index_in_dim(row_of(valid_rows, i), k, keepdims=True)[None]
            cfg1 = cfg._replace(**{name: jax.lax.dynamic_index_in_dim(row_of(x, i), k, keepdims=True)[None]
                                   for name, x in slot_rows.items()})
            m = decode_pool(arch, hw1, cfg1, spec, load, draft, valid1)
            shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in cfg1), jnp.shape(valid1))
            return (jnp.broadcast_to(m["monthly_usd"], shape).reshape(-1),
                    jnp.broadcast_to(m["tpot_p95_s"], shape).reshape(-1))

        real, n_slots = row_spans(valid_rows, n_slots)
        empty = jax.lax.pcast(jnp.full((valid_rows.shape[0], width * block), jnp.inf), "hw", to="varying")

        def row(i, outs):
            def slot(k, outs):
                return tuple(jax.lax.dynamic_update_slice(o, r[None], (i, k * block))
                             for o, r in zip(outs, one(i, k), strict=True))

            return jax.lax.fori_loop(0, row_of(n_slots, i), slot, outs)

        return jax.lax.fori_loop(0, real, row, (empty,) * 2)

    mesh = Mesh(np.asarray(jax.devices()[:devices]), ("hw",))
    split, whole = P("hw"), P()
    sharded = jax.shard_map(rows, mesh=mesh, out_specs=split,
                            in_specs=(whole, split, split, split, split, whole, whole, whole, whole))
    return jax.jit(sharded)


_PREFILL_DROPPED = ("batch", "tier", "spec_k")  # axes a prefill instance does not have (size 1 in its grid)
_PREFILL_KEEP = tuple(0 if a in _PREFILL_DROPPED else slice(None) for a in AXES) + (slice(None), slice(None))
_PREFILL_ORDER = tuple(a for a in AXES if a not in _PREFILL_DROPPED) + ("location", "class")
_PREFILL_PERM = tuple(_PREFILL_ORDER.index(a) for a in PREFILL_AXES)


@cache
def _prefill_kernel(dense: bool, absent: tuple[str, ...]):
    """Prefill pools: every option at every transfer bandwidth (last axis), in one broadcast."""
    import jax
    import jax.numpy as jnp

    from planner.model.attention import without_absent
    from planner.model.compute import without_experts
    from planner.model.disagg import prefill_fleet, prefill_pool, transfer_seconds
    from planner.model.queueing import lognormal_quantile

    def kernel(arch, hw, cfg, load, bandwidth, layerwise, valid):
        arch = without_absent(without_experts(arch) if dense else arch, absent)
        shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in (*hw, cfg.chips, cfg.weight_bytes, cfg.kv_bytes,
                                                               cfg.prefix_cache, cfg.flash)), jnp.shape(valid))

        def ex(tree):
            return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[..., None], tree)

        hw2, cfg2, valid2 = ex(hw), ex(cfg), ex(valid)  # a trailing axis: where the prefix cache lives
        pre = prefill_pool(arch, hw2, cfg2, load, jnp.asarray(LOCATION_SHARED, jnp.float32))
        in_p95 = lognormal_quantile(load.in_median, load.in_sigma, load.in_cap, 0.95)
        kv = jnp.asarray(cfg.kv_bytes)[..., None, None]
        x50 = transfer_seconds(arch, load.in_median, kv, bandwidth)
        x95 = transfer_seconds(arch, in_p95, kv, bandwidth)
        m = prefill_fleet(arch, ex(hw2), ex(cfg2), load, ex(pre), x50, x95, layerwise, ex(valid2))
        full = shape + (len(LOCATIONS), bandwidth.shape[-1])
        # written straight in PREFILL_AXES order (XLA fuses the transpose into the store): reordering
        # ~10 M values per output on the host cost ~0.05 s of every solve
        return {key: jnp.broadcast_to(m[name], full)[_PREFILL_KEEP].transpose(_PREFILL_PERM)
                for key, name in (("monthly", "monthly_usd"), ("ttft95", "ttft_p95_s"))}

    return jax.jit(kernel)


# --------------------------------------------------------------------------- inputs

def _prefill_cfg(grid: Grid):
    """The grid's config without the axes a prefill instance does not have (batch, tiers, spec k)."""
    one = np.ones((1,) * len(AXES), np.float32)
    return grid.cfg._replace(batch=one, dram_frac=0 * one, nvme_frac=0 * one, spec_k=0 * one)


def transfer_links(grid: Grid) -> dict[str, np.ndarray]:
    """Per real hardware row: scale-out and scale-up bytes/s per chip, scale-up domain size."""
    h = len(grid.hardware)

    def row(x):
        return np.asarray(x, np.float64).reshape(-1)[:h]

    return {"out": row(grid.hw.scale_out_bw), "up": row(grid.hw.link_bw), "domain": row(grid.hw.domain)}


def pair_bandwidth(chips: np.ndarray, links: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[Hp, Kp, Hd, Kd] bytes/s of the transfer between a prefill instance (row hp, slot kp) and a
    decode instance (hd, kd), and whether it stays inside one scale-up domain: the same hardware
    with both instances fitting one domain (e.g. 1P1D on an 8-GPU server, pools in an NVL72 rack)
    uses the scale-up link; otherwise each side's NICs, the slower side binding.

    Only a row's own [K, K] block can share a domain, so the NIC bandwidth is one outer minimum and
    the domain test runs per row: on the default grid (30 x 68 slots, 4.2 M pairs) the whole-array
    form's temporaries took 0.5-0.8 s, on the critical path of a cold solve (docs/speed-log.md)."""
    h = len(links["out"])
    n = chips[:h].astype(np.float64)  # [H, K]
    side_out = _nic_bandwidth(chips, links)
    bw = np.minimum.outer(side_out, side_out)
    shared = np.zeros(bw.shape, dtype=bool)
    for r in range(h):
        domain, up = links["domain"][r], links["up"][r]
        if not (domain > 1 and up > 0):
            continue
        fits = (n[r][:, None] + n[r][None, :]) <= domain
        if fits.any():
            shared[r, :, r, :] = fits
            block = bw[r, :, r, :]
            bw[r, :, r, :] = np.where(fits, np.maximum(np.minimum.outer(n[r], n[r]) * up, block), block)
    return bw, shared


def _nic_bandwidth(chips: np.ndarray, links: dict[str, np.ndarray]) -> np.ndarray:
    """[H, K] bytes/s an instance's NICs carry (its chips x the per-chip scale-out bandwidth): a
    pair outside a shared domain runs at the slower side's (`pair_bandwidth`, `pair_classes`)."""
    return chips[:len(links["out"])].astype(np.float64) * links["out"][:, None]


def bandwidth_classes(bw: np.ndarray) -> np.ndarray:
    """Distinct transfer bandwidths, padded (with the largest) to a fixed power-of-two length."""
    return _padded(np.unique(bw.astype(np.float32)))


def _padded(values: np.ndarray) -> np.ndarray:
    size = max(MIN_CLASSES, 1 << int(len(values) - 1).bit_length())
    return np.concatenate([values, np.full(size - len(values), values[-1], np.float32)])


def pair_classes(chips: np.ndarray, links: dict[str, np.ndarray], bw: np.ndarray,
                 shared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`bandwidth_classes(bw)` and each pair's index into them (`np.searchsorted(classes, bw as
    float32)`), without sorting the pairs (4.2 M on the default grid; ~0.1 s before the prefill
    kernel of a cold solve could start tracing). Outside a shared scale-up domain a pair's bandwidth
    is the slower side's, min(a, b), which is a or b; float32 rounding and the index into sorted
    values are both monotone, so the pair's index is the lesser of its two sides'. The rows' own
    [K, K] blocks (where `pair_bandwidth` may have put the scale-up link) are looked up directly."""
    side = _nic_bandwidth(chips, links)
    rows = [r for r in range(len(side)) if shared[r, :, r, :].any()]
    values = np.unique(np.concatenate([side.ravel(), *(bw[r, :, r, :].ravel() for r in rows)]).astype(np.float32))
    side_index = np.searchsorted(values, side.astype(np.float32)).astype(np.int32)
    index = np.minimum.outer(side_index, side_index)
    for r in rows:
        index[r, :, r, :] = np.searchsorted(values, bw[r, :, r, :].astype(np.float32))
    present = np.bincount(index.ravel(), minlength=len(values)) > 0  # the candidates no pair has drop out
    return _padded(values[present]), (np.cumsum(present) - 1)[index]


# --------------------------------------------------------------------------- evaluation

@dataclass
class DisaggEval:
    """Both pools evaluated once (device work done): what `combine` reduces for any set of masks."""

    grid: Grid
    decode_monthly: np.ndarray  # [H_pad, K, B, W, KV, T, S, A]
    decode_tpot95: np.ndarray
    prefill_monthly: np.ndarray  # [H_pad, K, W, KV, P, A, L, G] (L: where the prefix cache lives)
    prefill_ttft95: np.ndarray
    classes: np.ndarray  # [G] bytes/s
    pair_bw: np.ndarray  # [H, K, H, K] bytes/s (real hardware rows)
    pair_shared: np.ndarray
    pair_class: np.ndarray  # [H, K, H, K] index into classes
    seconds: float
    memo: dict = field(default_factory=dict)  # pair_costs without masks (per mix_hardware) and `_least_members` tables
    skipped: np.ndarray | None = None
    """[H_pad, K] decode layouts whose pools were not evaluated (left at inf) because no pair with them
    can beat `best` (`layouts_that_may_pair_below`); None when every decode option was. `best` is
    exact either way; the frontiers need every option (`with_decode_layouts`)."""


def _launch_decode(grid: Grid) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """Start the decode pools' own kernel (where the aggregated search did not compute them, see
    `launch`); returns a function that waits and gives their bills and TPOT p95 in grid order."""
    dense, absent, flags = model_flags(grid)
    rows = grid.shape[0]
    p_axis = AXES.index("prefix_cache")
    zero = np.zeros((1,) * len(AXES), np.float32)
    cfg = grid.cfg._replace(prefix_cache=zero)
    valid = np.take(np.asarray(grid.valid), [0], axis=p_axis) if np.shape(grid.valid)[p_axis] > 1 else grid.valid
    devices, deal, hw_rows, slot_rows, valid_rows = dealt_rows(grid, valid)
    n_slots = slot_rows.pop(SLOT_COUNT)
    args = (grid.arch, hw_rows, slot_rows, n_slots, valid_rows, cfg, grid.spec, grid.load,
            np.float32(grid.draft_weight_bytes))
    kernel = executables.compiled(f"disagg-decode-{devices}-{flags}", lambda: _decode_kernel(devices, dense, absent), args)
    with timing.phase("disaggregated kernels"):
        out = kernel(*args)
    d_shape = tuple(grid.shape[AXES.index(a)] for a in _DECODE_ORDER)

    def in_decode_order(x):  # as the row kernel stores its decode pools (search.DECODE_POOL_KEYS)
        return in_grid_order(x, deal).reshape(d_shape).transpose(DECODE_PERM).reshape(rows, -1)

    return lambda: (in_decode_order(out[0]), in_decode_order(out[1]))


_last_inputs: list[tuple[Grid, tuple]] = []  # the last grid's `_prefill_inputs` (prepare, then launch)


def _prefill_inputs(grid: Grid):
    """The prefill pools' kernel (cache name, maker, inputs) and the transfer links it is scored at:
    (name, make, args, bandwidth [H, K, H, K], shared-domain flags, classes, each pair's class).
    `prepare` (in a thread, while the kernels load) and `launch` ask for the same grid's; the pair
    bandwidths and classes (~0.2 s) are worked out once."""
    if _last_inputs and _last_inputs[0][0] is grid:
        return _last_inputs[0][1]
    found = _build_prefill_inputs(grid)
    _last_inputs[:] = [(grid, found)]
    return found


def _build_prefill_inputs(grid: Grid):
    dense, absent, flags = model_flags(grid)
    name = f"disagg-prefill-{flags}"
    bw, shared, classes, pair_class = _transfer_pairs(grid)
    layerwise = np.float32(1.0 if grid.scenario.serving.kv_transfer == "layerwise" else 0.0)
    args = (grid.arch, grid.hw, _prefill_cfg(grid), grid.load, classes, layerwise, grid.valid)
    return name, lambda: _prefill_kernel(dense, absent), args, bw, shared, classes, pair_class


class _Recent:
    """The last few values by key, the least recently used dropped first. Their arrays are made
    read-only: every caller that meets the same key shares them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[bytes, Any] = {}

    def get(self, key: bytes) -> Any:
        found = self._items.pop(key, None)
        if found is not None:
            self._items[key] = found  # most recent last
        return found

    def put(self, key: bytes, value: Any, arrays: tuple[np.ndarray, ...]) -> None:
        for array in arrays:
            array.flags.writeable = False
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.size:
            del self._items[next(iter(self._items))]

    def clear(self) -> None:
        self._items.clear()


_recent_transfers = _Recent(4)  # the TUI's own grid, and its what-if and prompt-curve grids (one hardware each)


def _transfer_pairs(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pair bandwidth, shared-domain flags, classes, each pair's class), kept for the last few chips
    and links seen: they depend only on the hardware and its layouts, which an edit of the workload
    or the SLOs (most TUI edits) leaves as they were (~0.05 s on the default grid)."""
    h = len(grid.hardware)
    links = transfer_links(grid)
    key = b"".join(np.ascontiguousarray(x).tobytes() for x in (np.asarray(grid.chips)[:h], *links.values()))
    key += repr(np.shape(grid.chips)).encode()
    found = _recent_transfers.get(key)
    if found is not None:
        return found
    bw, shared = pair_bandwidth(grid.chips, links)
    classes, pair_class = pair_classes(grid.chips, links, bw, shared)
    found = (bw, shared, classes, pair_class)
    _recent_transfers.put(key, found, found)
    return found


_recent_prefill_pools = _Recent(4)
"""Prefill pools by their kernel's inputs: a speculative method is a decode setting, so `whatif`'s
grids of the same host tiers (one per method its variants add) have the same prefill pools, and
each evaluation took ~0.2 s on the default grid (12 of the default whatif's 15)."""


def _digest(name: str, args: Any) -> bytes:
    """A key for the prefill kernel's inputs: equal keys, equal inputs (dtypes and shapes included)."""
    import hashlib

    import jax

    h = hashlib.blake2b(name.encode(), digest_size=20)
    for leaf in jax.tree_util.tree_leaves(args):
        a = np.ascontiguousarray(leaf)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.digest()


def prepare(grid: Grid) -> None:
    """Get the prefill pools' kernel ready (loaded, or traced and compiled) without running it:
    `solve` does this in a thread while the aggregated kernel loads or compiles, so a cold start
    compiles both at once on two cores instead of one after the other."""
    name, make, args, *_ = _prefill_inputs(grid)
    executables.compiled(name, make, args)


def launch(grid: Grid, decode_pools: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
           skipped: Callable[[], np.ndarray] | None = None):
    """Start both pools' kernels (asynchronous); returns a function that waits and gives `DisaggEval`.

    `decode_pools`, when given, returns every decode option's bill and TPOT p95 ([rows, -1], each row
    in DECODE_AXES order) as the aggregated search's row kernel computed them beside its own
    outputs (search._row_kernel): then only the prefill pools' kernel runs here. `skipped` returns the
    decode layouts ([H_pad, K]) that kernel left at inf (a pruned pass, see `DisaggEval.skipped`);
    both are read only once the prefill kernel runs, so it runs beside that one."""
    start = time.perf_counter()
    if decode_pools is None:
        decode_pools = _launch_decode(grid)
    p_name, p_make, p_args, bw, shared, classes, pair_class = _prefill_inputs(grid)
    key = _digest(p_name, p_args)
    p_out = _recent_prefill_pools.get(key)
    if p_out is None:
        p_kernel = executables.compiled(p_name, p_make, p_args)
        with timing.phase("disaggregated kernels"):
            p_out = p_kernel(*p_args)

    def finish() -> DisaggEval:
        with timing.phase("disaggregated kernels"):
            d_shape = tuple(grid.shape[AXES.index(a)] for a in DECODE_AXES)
            monthly_d, tpot_d = (x.reshape(d_shape) for x in decode_pools())  # already in DECODE_AXES order
            monthly_p, ttft_p = np.asarray(p_out["monthly"]), np.asarray(p_out["ttft95"])  # in PREFILL_AXES order
            _recent_prefill_pools.put(key, {"monthly": monthly_p, "ttft95": ttft_p}, (monthly_p, ttft_p))
            left_out = None if skipped is None else np.asarray(skipped(), bool)
        return DisaggEval(grid, monthly_d, tpot_d, monthly_p, ttft_p, classes, bw, shared, pair_class,
                          time.perf_counter() - start, skipped=left_out if left_out is not None and left_out.any() else None)

    return finish


def evaluate(grid: Grid) -> DisaggEval:
    return launch(grid)()


def layouts_that_may_pair_below(ev: DisaggEval, bound: float, floors: np.ndarray) -> np.ndarray:
    """The skipped decode layouts ([H_pad, K]) of which some pair may cost no more than `bound`.

    A pair costs its prefill pool plus its decode pool. No prefill pool costs less than the cheapest
    prefill option evaluated (every class, every mask), and no decode pool of a layout less than
    its bill floor (`serving.monthly_floor`, one whole system: `floors`, [H_pad, K]). A layout whose
    floor plus that minimum exceeds `bound` (the cheapest pair found without it) is left out; ties
    stay in (FLOOR_MARGIN), so `best` picks what the unpruned search picks."""
    if ev.skipped is None:
        return np.zeros(floors.shape, bool)
    h = len(ev.grid.hardware)
    prefill = ev.prefill_monthly[:h]
    cheapest_prefill = float(prefill.min()) if prefill.size else math.inf
    if not math.isfinite(cheapest_prefill):  # no prefill pool is feasible: neither is any pair
        return np.zeros(floors.shape, bool)
    return ev.skipped & ((np.asarray(floors, np.float64) + cheapest_prefill) * (1.0 - FLOOR_MARGIN) <= bound)


def with_decode_layouts(ev: DisaggEval, monthly: np.ndarray, tpot: np.ndarray, layouts: np.ndarray) -> DisaggEval:
    """`ev` with the decode pools of `layouts` ([H_pad, K]) taken from a row-kernel run that evaluated
    them (`monthly`, `tpot`: [rows, -1], each row in DECODE_AXES order); the others as they were."""
    shape = ev.decode_monthly.shape
    take = np.asarray(layouts, bool).reshape(shape[:2] + (1,) * (len(shape) - 2))
    skipped = None if ev.skipped is None else ev.skipped & ~np.asarray(layouts, bool)
    return replace(ev, decode_monthly=np.where(take, np.reshape(monthly, shape), ev.decode_monthly),
                   decode_tpot95=np.where(take, np.reshape(tpot, shape), ev.decode_tpot95), memo={},
                   skipped=skipped if skipped is not None and skipped.any() else None)


# --------------------------------------------------------------------------- reduction (host)

def _mask(shape: tuple[int, ...], axes: tuple[str, ...], masks: AxisMasks | None) -> np.ndarray:
    """Boolean broadcastable over an array with the named axes (the masks of `whatif` variants)."""
    out = np.ones((1,) * len(shape), dtype=bool)
    for name, mask in (masks or {}).items():
        if name not in axes:
            continue
        view = [1] * len(shape)
        axis = axes.index(name)
        view[axis] = shape[axis]
        if name == "layout":
            view[0] = shape[0]
        out = out & np.asarray(mask, dtype=bool).reshape(view)
    return out


@dataclass
class Choice:
    """The cheapest pair found, as indices into the two pools' option arrays."""

    monthly_usd: float
    prefill: tuple[int, ...]  # index into DisaggEval.prefill_monthly (location and class axes included)
    decode: tuple[int, ...]  # index into DisaggEval.decode_monthly


DECODE_MEMBER_AXES = (2, 3, 5, 6, 7)  # batch, weight dtype, tier, speculation, attention: a decode group's members
PREFILL_MEMBER_AXES = (2, 4, 5, 6)  # weight dtype, prefix cache, attention, location: a prefill group's members


def _groups(ev: DisaggEval, masks: AxisMasks | None):
    """Cheapest member per (hardware, layout, KV dtype): decode [H, K, KV] and prefill [H, K, KV, G],
    the bills they come from and the masks' keep arrays (None: all kept), so `_choice` finds the member
    of a chosen group."""
    h = len(ev.grid.hardware)
    d, p = ev.decode_monthly[:h], ev.prefill_monthly[:h]
    d_min = _least_members(ev, "decode", DECODE_AXES, DECODE_MEMBER_AXES, masks)
    p_min = _least_members(ev, "prefill", PREFILL_AXES, PREFILL_MEMBER_AXES, masks)
    d_keep = _mask(ev.decode_monthly.shape, DECODE_AXES, masks) if _names_in(masks, DECODE_AXES) else None
    p_keep = _mask(ev.prefill_monthly.shape, PREFILL_AXES, masks) if _names_in(masks, PREFILL_AXES) else None
    return d_min, d, p_min, p, d_keep, p_keep


def _names_in(masks: AxisMasks | None, axes: tuple[str, ...]) -> list[str]:
    return [name for name in (masks or {}) if name in axes]


def _least_members(ev: DisaggEval, pool: str, axes: tuple[str, ...], members: tuple[int, ...],
                   masks: AxisMasks | None) -> np.ndarray:
    """The cheapest kept member of every group of one pool. A `whatif` run asks this for ~20 variants
    x 3 host-tier sets, each restricting one axis: the least bill of the groups along that axis is
    taken once per axis (kept in `ev.memo`) and a restriction is a minimum over its kept values,
    where masking the whole pool per call took ~2.5 s. Two or more restricted axes are masked."""
    h = len(ev.grid.hardware)
    bills = ev.decode_monthly if pool == "decode" else ev.prefill_monthly
    names = _names_in(masks, axes)
    groups_shape = tuple(n for i, n in enumerate(bills.shape) if i not in members)
    group_axes = tuple(a for i, a in enumerate(axes) if i not in members)
    groups = [i for i in range(len(axes)) if i not in members]
    if len(names) > 1:
        return _least_over(np.where(_mask(bills.shape, axes, masks), bills, np.inf)[:h], groups)
    if not names or axes.index(names[0]) not in members:  # no restriction, or one of whole groups
        least = ev.memo.get((pool, None))
        if least is None:
            least = ev.memo[(pool, None)] = _least_over(bills[:h], groups)
        if not names:
            return least
        return np.where(_mask(groups_shape, group_axes, {names[0]: masks[names[0]]})[:h], least, np.inf)
    axis = axes.index(names[0])
    along = ev.memo.get((pool, names[0]))
    if along is None:  # [groups..., values of the axis]
        along = ev.memo[(pool, names[0])] = _least_over(bills[:h], [*groups, axis])
    return np.where(np.asarray(masks[names[0]], dtype=bool), along, np.inf).min(axis=-1)


def _least_over(bills: np.ndarray, kept: list[int]) -> np.ndarray:
    """The least of `bills` over every axis not in `kept`, indexed by the kept axes in that order.
    numpy reduces well beside a wide kept innermost axis (the prefill pool's 64 transfer classes: a
    copy would cost 10x more), but with the innermost axes 2 or 3 wide it takes up to 8x longer than
    a contiguous copy with the reduced axes last and a reduction over them (the decode pool, ~7 M
    bills: 0.2 against 0.025 s)."""
    rest = [i for i in range(bills.ndim) if i not in kept]
    if bills.ndim - 1 in kept and bills.shape[-1] >= 16:
        ascending = sorted(kept)
        return np.moveaxis(bills.min(axis=tuple(rest)), [ascending.index(i) for i in kept], range(len(kept)))
    moved = np.ascontiguousarray(bills.transpose([*kept, *rest]))
    return moved.reshape(*(bills.shape[i] for i in kept), -1).min(axis=-1)


@dataclass
class Pairs:
    """Every pair of groups that can be feasible, compactly: groups (hardware, layout) with a finite
    cost in some KV dtype; `total[i, j, kv]` pairs prefill group `prefill[i]` with decode group
    `decode[j]` (flat hardware x layout indices), the prefill side taken at that pair's transfer class."""

    total: np.ndarray  # [nP, nD, KV] monthly bill of the cheapest pair of the two groups
    p_at: np.ndarray  # [nP, nD, KV] its prefill share
    prefill: np.ndarray  # [nP] flat (hardware, layout) index of each prefill group
    decode: np.ndarray  # [nD]
    cls: np.ndarray  # [nP, nD] transfer class of each pair
    d_min: np.ndarray  # [H, K, KV] cheapest decode member per group
    d_src: np.ndarray  # the decode bills [H, K, B, W, KV, T, S, A] behind it
    p_min: np.ndarray  # [H, K, KV, G] cheapest prefill member per group and class
    p_src: np.ndarray  # the prefill bills [H, K, W, KV, P, A, L, G]
    d_keep: np.ndarray | None = None  # broadcastable over d_src: the cells the masks keep (None: all)
    p_keep: np.ndarray | None = None


def pool_groups(grid: Grid, rows: int, mix_hardware: bool) -> np.ndarray | None:
    """[rows] (padded hardware rows) the group a disaggregated pair's two pools must share, or None
    where any two may pair. Without `mix_hardware` a group is one accelerator; with it, one vendor,
    unless the scenario sets `search.mix_vendors`: the pools hand KV over through one engine's PD
    connector (NIXL, Mooncake, LMCache), and an engine build runs on one vendor's platform, so a
    pool on Gaudi and one on NVIDIA GPUs could not be served as a pair."""
    if mix_hardware and grid.scenario.search.mix_vendors:
        return None
    real = len(grid.hardware)
    if mix_hardware:
        vendors = {v: i for i, v in enumerate(dict.fromkeys(a.vendor for a in grid.hardware))}
        own = np.array([vendors[a.vendor] for a in grid.hardware], np.int64)
    else:
        own = np.arange(real, dtype=np.int64)
    return np.concatenate([own, real + np.arange(rows - real, dtype=np.int64)])  # padding rows: each its own


def _same_group(groups: np.ndarray | None, prefill: np.ndarray, decode: np.ndarray, k: int) -> np.ndarray | None:
    """[len(prefill), len(decode)] whether each pair of groups (flat hardware x layout indices) may
    pair (`pool_groups`); None where all may."""
    if groups is None:
        return None
    return groups[prefill // k][:, None] == groups[decode // k][None, :]


def _memo_key(ev: DisaggEval, mix_hardware: bool) -> tuple[bool, bool]:
    """Where `pair_costs` keeps an unmasked pair table on `ev`: per pairing rule (`pool_groups`)."""
    return mix_hardware, ev.grid.scenario.search.mix_vendors


def pair_costs(ev: DisaggEval, masks: AxisMasks | None = None, mix_hardware: bool = True) -> Pairs:
    """The pairs of groups, scored; unmasked results are kept on `ev` (a solve asks three times)."""
    key = _memo_key(ev, mix_hardware)
    if masks is None and key in ev.memo:
        return ev.memo[key]
    d_min, d_src, p_min, p_src, d_keep, p_keep = _groups(ev, masks)
    h, k, kv_n, g_n = p_min.shape
    p_flat = p_min.reshape(h * k, kv_n, g_n)
    d_flat = d_min.reshape(h * k, kv_n)
    prefill = np.flatnonzero(np.isfinite(p_flat).any(axis=(1, 2)))
    decode = np.flatnonzero(np.isfinite(d_flat).any(axis=1))
    cls = ev.pair_class.reshape(h * k, h * k)[np.ix_(prefill, decode)]
    p_at = p_flat[prefill[:, None], :, cls]  # [nP, nD, KV]: each prefill group at each pair's class
    same = _same_group(pool_groups(ev.grid, h, mix_hardware), prefill, decode, k)
    if same is not None:
        p_at = np.where(same[..., None], p_at, np.inf)
    pairs = Pairs(p_at + d_flat[decode][None], p_at, prefill, decode, cls, d_min, d_src, p_min, p_src, d_keep, p_keep)
    if masks is None:
        ev.memo[key] = pairs
    return pairs


def best(ev: DisaggEval, masks: AxisMasks | None = None, mix_hardware: bool = True) -> Choice | None:
    """The exact cheapest (prefill option, decode option) pair under the masks: from the pair table
    when the frontiers already built it, else by `_cheapest_pair`, which scores only the pairs that
    can reach the minimum (`whatif` asks ~50 times, once per variant and host-tier set)."""
    k = ev.pair_class.shape[1]
    if masks is None and _memo_key(ev, mix_hardware) in ev.memo:
        pairs = pair_costs(ev, masks, mix_hardware)
        if pairs.total.size == 0:
            return None
        flat = int(np.argmin(pairs.total))
        if not np.isfinite(pairs.total.ravel()[flat]):
            return None
        i, j, kv = np.unravel_index(flat, pairs.total.shape)
        return _choice(ev, float(pairs.total.ravel()[flat]), *divmod(int(pairs.prefill[i]), k),
                       *divmod(int(pairs.decode[j]), k), kv, pairs.d_src, pairs.p_src, pairs.d_keep, pairs.p_keep)
    d_min, d_src, p_min, p_src, d_keep, p_keep = _groups(ev, masks)
    found = _cheapest_pair(ev, d_min, p_min, pool_groups(ev.grid, ev.pair_class.shape[0], mix_hardware))
    if found is None:
        return None
    monthly, p_group, d_group, kv = found
    return _choice(ev, monthly, *divmod(p_group, k), *divmod(d_group, k), kv, d_src, p_src, d_keep, p_keep)


def _pair_totals(ev: DisaggEval, p_flat: np.ndarray, d_flat: np.ndarray, prefill: np.ndarray,
                 decode: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """[len(prefill), len(decode), KV] bills of the pairs of these groups (flat hardware x layout
    indices), each prefill group at the pair's transfer class: `pair_costs`'s `total`, element for
    element (`groups`: `pool_groups`)."""
    k = ev.pair_class.shape[1]
    cls = ev.pair_class.reshape(p_flat.shape[0], d_flat.shape[0])[np.ix_(prefill, decode)]
    p_at = p_flat[prefill[:, None], :, cls]
    same = _same_group(groups, prefill, decode, k)
    if same is not None:
        p_at = np.where(same[..., None], p_at, np.inf)
    return p_at + d_flat[decode][None]


def _cheapest_pair(ev: DisaggEval, d_min: np.ndarray, p_min: np.ndarray,
                   groups: np.ndarray | None) -> tuple[float, int, int, int] | None:
    """(bill, prefill group, decode group, KV dtype) of the pair `np.argmin` finds over `pair_costs`'s
    table, without scoring every pair of groups (~26 ms a call on the default scenario).

    A pair's bill is its prefill group's at the pair's transfer class plus its decode group's, so it
    is at least the prefill group's cheapest class (`p_low`) + the decode group (float addition is
    monotone: the bound holds as computed). The best partners of the prefill group with the least
    bound and of the cheapest decode group give a real pair's bill `bound`; a group whose least
    possible pair exceeds it cannot be in any cheapest pair, so only the others are scored. Every
    pair at the minimum is among them, in the table's order, so ties resolve as `np.argmin` does."""
    h, k, kv_n, g_n = p_min.shape
    p_flat, d_flat = p_min.reshape(h * k, kv_n, g_n), d_min.reshape(h * k, kv_n)
    prefill = np.flatnonzero(np.isfinite(p_flat).any(axis=(1, 2)))
    decode = np.flatnonzero(np.isfinite(d_flat).any(axis=1))
    if not prefill.size or not decode.size:
        return None
    p_low, d = p_flat[prefill].min(axis=2), d_flat[decode]  # [nP, KV], [nD, KV]
    firsts = np.unique(np.argmin(p_low, axis=0))  # per KV dtype: the prefill group bound lowest
    lasts = np.unique(np.argmin(d, axis=0))
    bound = min(float(_pair_totals(ev, p_flat, d_flat, prefill[firsts], decode, groups).min()),
                float(_pair_totals(ev, p_flat, d_flat, prefill, decode[lasts], groups).min()))
    if not math.isfinite(bound):  # e.g. no pool pairs with one on its own hardware: score them all
        rows, cols = np.arange(prefill.size), np.arange(decode.size)
    else:
        rows = np.flatnonzero((p_low + d.min(axis=0)[None]).min(axis=1) <= bound)
        cols = np.flatnonzero((p_low.min(axis=0)[None] + d).min(axis=1) <= bound)
    total = _pair_totals(ev, p_flat, d_flat, prefill[rows], decode[cols], groups)
    flat = int(np.argmin(total))
    if not np.isfinite(total.ravel()[flat]):
        return None
    i, j, kv = np.unravel_index(flat, total.shape)
    return float(total.ravel()[flat]), int(prefill[rows[i]]), int(decode[cols[j]]), int(kv)


def _choice(ev: DisaggEval, monthly: float, hp, kp, hd, kd, kv, d_src, p_src, d_keep=None, p_keep=None) -> Choice:
    """The pair of members behind a pair of groups: the cheapest kept member of each group (at the
    pair's class)."""
    g = int(ev.pair_class[hp, kp, hd, kd])
    d_slice = d_src[hd, kd, :, :, kv]  # [B, W, T, S, A]
    if d_keep is not None:
        d_slice = np.where(np.broadcast_to(d_keep, ev.decode_monthly.shape)[hd, kd, :, :, kv], d_slice, np.inf)
    b, w, t, sk, a = np.unravel_index(int(np.argmin(d_slice)), d_slice.shape)
    p_slice = p_src[hp, kp, :, kv, :, :, :, g]  # [W, P, A, L]
    if p_keep is not None:
        p_slice = np.where(np.broadcast_to(p_keep, ev.prefill_monthly.shape)[hp, kp, :, kv, :, :, :, g], p_slice, np.inf)
    pw, pp, pa, pl = np.unravel_index(int(np.argmin(p_slice)), p_slice.shape)
    return Choice(monthly, (int(hp), int(kp), int(pw), int(kv), int(pp), int(pa), int(pl), g),
                  (int(hd), int(kd), int(b), int(w), int(kv), int(t), int(sk), int(a)))


def pair_count(ev: DisaggEval, masks: AxisMasks | None = None) -> dict[str, int]:
    """Options of each pool searched (real rows and slots, supported dtypes) and the pairs they
    represent: prefill options x decode options with the same KV dtype."""
    h = len(ev.grid.hardware)
    slots = ev.grid.slot_valid[:h]
    d_valid = np.broadcast_to(_valid_decode(ev.grid), ev.decode_monthly.shape)[:h] & slots[:, :, None, None, None, None, None, None]
    p_valid = np.broadcast_to(_valid_prefill(ev.grid), ev.prefill_monthly.shape[:-2])[:h] & slots[:, :, None, None, None, None]
    # the cache's location is a choice only with the cache on
    locations = np.array([len(LOCATIONS) if on else 1 for on in ev.grid.prefix_cache])[None, None, None, None, :, None]
    p_valid = p_valid * locations
    d_kv = d_valid.sum(axis=(0, 1, 2, 3, 5, 6, 7))
    p_kv = p_valid.sum(axis=(0, 1, 2, 4, 5))
    return {"prefill_options": int(p_valid.sum()), "decode_options": int(d_valid.sum()),
            "pairs": int((d_kv.astype(np.int64) * p_kv.astype(np.int64)).sum())}


def _valid_decode(grid: Grid) -> np.ndarray:
    """The grid's validity in DECODE_AXES order (prefix-cache axis dropped)."""
    return np.take(np.asarray(grid.valid), 0, axis=AXES.index("prefix_cache")).transpose(DECODE_PERM)


def _valid_prefill(grid: Grid) -> np.ndarray:
    """The grid's validity in PREFILL_AXES order (without the location and class axes)."""
    return np.asarray(grid.valid)[_PREFILL_KEEP[:-2]].transpose(_PREFILL_PERM[:-2])  # location, class: last in both orders
