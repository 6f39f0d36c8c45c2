"""Replay a trace's block ids through prefix caches: unbounded, LRU at every capacity, TTL at every age.

A request's cache hit is the leading run of its blocks that the cache still holds (ids are
prefix-chained: a block is only reusable behind the same parent). One pass records, per request,
the leading "seen before" blocks grouped by the request that last touched them; every cache size
and every TTL is then read from those groups with array arithmetic:

- LRU (Mattson's stack distance): a block survives in an LRU cache of C blocks iff fewer than C
  distinct blocks were touched since its last use. A request touches its blocks together (the
  engine pins a prompt's blocks while it runs), so the blocks last used by request j are all at
  distance D_j = number of blocks whose last use is after j (a Fenwick tree over request order), and
  within that group the tail goes first (engines free a sequence's blocks tail first), so the group
  contributes `clip(C - D_j, 0, g)` hits. Along a prompt the last-use times never increase (a
  block's parent is touched whenever it is), so the groups form the leading run in order.
- TTL: a block idle longer than T is dropped; a group last used `age` seconds ago hits iff age <= T.

Hit rates are shares of prompt blocks (as the trace README states them); the unbounded rate is
also given token-weighted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.traces.readers import Trace


@dataclass
class Replay:
    """What one pass over a request order records (enough to answer any capacity or TTL)."""

    total_blocks: int
    distinct_blocks: int
    seen_blocks: int  # leading blocks seen before: the unbounded-cache hit
    group_distance: np.ndarray  # per group: distinct blocks touched since its last use (LRU)
    group_size: np.ndarray  # blocks in the group
    group_age_s: np.ndarray  # seconds since the group's last use (TTL)
    hit_blocks_per_request: np.ndarray  # unbounded hit, per request (request order of the trace)
    group_held: np.ndarray  # blocks still last used by the group's request (the group and its tail)

    def lru_hit_rate(self, capacity_blocks) -> np.ndarray:
        """Share of prompt blocks an LRU cache of `capacity_blocks` serves (array in, array out)."""
        c = np.floor(np.atleast_1d(np.asarray(capacity_blocks, dtype=np.float64)))  # whole blocks
        hits = np.zeros(c.size)
        if self.group_size.size:
            order = np.argsort(self.group_distance, kind="stable")
            d = self.group_distance[order].astype(np.float64)
            g = self.group_size[order].astype(np.float64)
            # sum_j clip(C - d_j, 0, g_j) = sum_{d_j < C} min(C - d_j, g_j): split at d_j + g_j <= C
            end = d + g
            end_order = np.argsort(end, kind="stable")
            end_sorted = end[end_order]
            g_by_end = np.concatenate([[0.0], np.cumsum(g[end_order])])
            d_cum = np.concatenate([[0.0], np.cumsum(d)])
            d_by_end = np.concatenate([[0.0], np.cumsum(d[end_order])])
            n_started = np.searchsorted(d, c, side="left")  # groups with d < C
            n_full = np.searchsorted(end_sorted, c, side="right")  # groups with d + g <= C (all started)
            partial_n = n_started - n_full
            partial_d = d_cum[n_started] - d_by_end[n_full]
            hits = g_by_end[n_full] + partial_n * c - partial_d
        return hits / max(self.total_blocks, 1)

    def ttl_hit_rate(self, ttl_s) -> np.ndarray:
        """Share of prompt blocks a cache that drops blocks idle longer than `ttl_s` serves."""
        t = np.atleast_1d(np.asarray(ttl_s, dtype=np.float64))
        order = np.argsort(self.group_age_s, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(self.group_size[order].astype(np.float64))])
        n = np.searchsorted(self.group_age_s[order], t, side="right")
        return cum[n] / max(self.total_blocks, 1)

    @property
    def unbounded_hit_rate(self) -> float:
        return self.seen_blocks / max(self.total_blocks, 1)


class _Fenwick:
    """Prefix sums over request positions with point updates, O(log n) each."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.tree = [0] * (n + 1)

    def add(self, i: int, v: int) -> None:
        i += 1
        tree, n = self.tree, self.n
        while i <= n:
            tree[i] += v
            i += i & -i

    def prefix(self, i: int) -> int:
        """Sum of positions [0, i)."""
        s, tree = 0, self.tree
        while i > 0:
            s += tree[i]
            i -= i & -i
        return s


def dense_block_ids(trace: Trace) -> tuple[np.ndarray, int]:
    """Block ids renumbered 0..D-1 (so 'last use' is an array, not a dict); D = distinct blocks."""
    uniq, inverse = np.unique(trace.blocks, return_inverse=True)
    return inverse.astype(np.int64), int(uniq.size)


def replay(trace: Trace, order: np.ndarray, times_s: np.ndarray, done_s: np.ndarray | None = None,
           dense: tuple[np.ndarray, int] | None = None) -> Replay:
    """Replay requests in `order` (indices into the trace) arriving at `times_s` and done with their
    blocks at `done_s` (arrival + the call's duration where the trace gives it; TTL ages count from it)."""
    done_s = times_s if done_s is None else done_s
    ids, distinct = dense if dense is not None else dense_block_ids(trace)
    offsets = trace.offsets
    last = np.full(distinct, -1, dtype=np.int64)  # replay position of each block's last use
    n = order.size
    fen = _Fenwick(n)
    live = 0  # blocks with a recorded last use = fen total
    g_dist: list[int] = []
    g_size: list[int] = []
    g_age: list[float] = []
    g_held: list[int] = []
    seen_per_req = np.zeros(trace.requests, dtype=np.int64)
    seen_total = 0
    total = 0
    for pos in range(n):
        r = int(order[pos])
        b = ids[offsets[r]:offsets[r + 1]]
        m = b.size
        total += m
        if m == 0:
            continue
        la = last[b]
        miss = la < 0
        k = int(np.argmax(miss)) if miss.any() else m
        if k:
            run = la[:k]
            cuts = np.flatnonzero(run[1:] != run[:-1]) + 1
            starts = np.concatenate(([0], cuts))
            sizes = np.diff(np.concatenate((starts, [k])))
            for j, g in zip(run[starts].tolist(), sizes.tolist(), strict=True):
                upto = fen.prefix(j + 1)
                g_dist.append(live - upto)
                g_held.append(upto - fen.prefix(j))
                g_size.append(g)
                g_age.append(times_s[pos] - done_s[j])
            # blocks of the run move from their old positions to this one
            for j, g in zip(run[starts].tolist(), sizes.tolist(), strict=True):
                fen.add(j, -g)
            live -= k
            seen_per_req[r] = k
            seen_total += k
        # blocks past the run may also have been seen (a prefix-chain break); they move here too
        rest = la[k:]
        old = rest[rest >= 0]
        if old.size:
            js, cnt = np.unique(old, return_counts=True)
            for j, c in zip(js.tolist(), cnt.tolist(), strict=True):
                fen.add(j, -c)
            live -= int(old.size)
        last[b] = pos
        fen.add(pos, m)
        live += m
    return Replay(
        total_blocks=total, distinct_blocks=distinct, seen_blocks=seen_total,
        group_distance=np.asarray(g_dist, dtype=np.int64), group_size=np.asarray(g_size, dtype=np.int64),
        group_age_s=np.asarray(g_age, dtype=np.float64), group_held=np.asarray(g_held, dtype=np.int64), hit_blocks_per_request=seen_per_req,
    )
