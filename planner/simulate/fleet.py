"""Every replica of a plan under one router: the run that `planner simulate` reports.

The replica with the earliest clock steps next. A request is routed when it is released (at the
start, or when its session's previous turn finishes): round-robin and affinity decide then, into the
replica's own queue of arrivals; `least-loaded` routes it once every replica's clock has passed its
arrival, so it sees each replica's state at its first step boundary after the arrival (a replica with
a free slot stops its decode run at each arrival). Under affinity the replicas never interact, so a
subset of them can run alone (`parallel.py` runs groups in separate processes).
Arrivals stop at `duration_s`; the run continues (at most `drain_s`) until the requests in flight
finish, so long requests near the end are not left out of the percentiles.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from planner.simulate.arrivals import Requests
from planner.simulate.costs import Costs
from planner.simulate.engine import Records, Replica
from planner.simulate.plan import SimPlan
from planner.simulate.router import StaticRouter, least_loaded, session_homes

Progress = Callable[[float, float], None]  # (simulated seconds done, total)


@dataclass
class Options:
    duration_s: float = 3600.0
    seed: int = 0
    router: str = "affinity"
    warmup_s: float | None = None  # default: WARMUP_SHARE of the duration
    drain_s: float | None = None  # default: DRAIN_SHARE of the duration, at least 60 s

    def warmup(self) -> float:
        return self.duration_s * WARMUP_SHARE if self.warmup_s is None else self.warmup_s

    def drain(self) -> float:
        return max(60.0, self.duration_s * DRAIN_SHARE) if self.drain_s is None else self.drain_s


WARMUP_SHARE = 0.2
DRAIN_SHARE = 0.25


def windows_for(load, duration_s: float) -> tuple[float, float]:
    """(warm-up, drain) seconds for a run of `duration_s`: at least the share above, and long enough
    for requests to live out their decode at the TPOT SLO (long reasoning outputs fill the batch
    slowly, and leave late): warm-up >= 2 mean decode lifetimes (at most half the run), drain >= 1.5
    x the longest output's."""
    life = float(load.out_mean) * float(load.tpot_slo_s)
    warmup = min(0.5 * duration_s, max(WARMUP_SHARE * duration_s, 2.0 * life))
    drain = max(60.0, DRAIN_SHARE * duration_s, 1.5 * float(load.out_cap) * float(load.tpot_slo_s))
    return warmup, drain


@dataclass
class Outcome:
    records: Records
    busy_s: np.ndarray  # per replica
    prefill_s: np.ndarray
    steps: np.ndarray
    series: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # per replica (t, waiting, running)
    cache_lookups: int = 0


def costs_for(plan: SimPlan) -> Costs:
    ld = plan.load
    max_context = float(ld.in_cap) + float(ld.out_cap)
    reserve = float(ld.in_mean) + float(ld.out_mean)
    return Costs(plan.serve, max_context, float(ld.hbm_fraction), reserve)


def prefill_hints(costs: Costs, reqs: Requests) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefill seconds of every request on a miss and with its whole reusable prefix in HBM: two
    vectorised calls of the model for the run instead of one per request."""
    bt = reqs.block_tokens
    hit = np.minimum((reqs.reusable_tokens // bt) * bt, np.maximum(reqs.input_tokens - 1, 0))
    zero = np.zeros(reqs.count)
    miss_s = costs.prefill_seconds(reqs.input_tokens, zero, zero, zero)
    hit_s = costs.prefill_seconds(reqs.input_tokens - hit, hit, zero, zero)
    return hit.astype(np.int64), np.asarray(hit_s), np.asarray(miss_s)


def run(plan: SimPlan, reqs: Requests, opts: Options, replicas: list[int] | None = None,
        progress: Progress | None = None, costs: Costs | None = None) -> Outcome:
    """Simulate the plan's replicas (all, or the listed ones with the affinity router, whose replicas
    never interact) over `reqs`."""
    costs = costs or costs_for(plan)
    total = plan.serve.instances
    chosen = list(range(total)) if replicas is None else list(replicas)
    if replicas is not None and opts.router != "affinity" and len(chosen) != total:
        raise ValueError("only the affinity router runs a subset of the replicas")
    rec = Records(reqs.count)
    hints = prefill_hints(costs, reqs) if reqs.count else None
    reps: dict[int, Replica] = {}
    for r in chosen:
        rep = Replica(r, costs, reqs, rec, np.random.default_rng([opts.seed, r]))
        rep.hints = hints
        rep.window = (opts.warmup(), opts.duration_s)
        reps[r] = rep
    home = session_homes(reqs, total)
    router = StaticRouter(opts.router, total, home)
    glob: list[tuple[float, int]] = []  # least-loaded: arrivals not yet routed

    def release(rid: int) -> None:
        t = float(reqs.arrival_s[rid])
        if not t < opts.duration_s:
            return
        if opts.router == "least-loaded":
            heapq.heappush(glob, (t, rid))
            return
        r = router.static(rid, reqs)
        if r in reps:
            heapq.heappush(reps[r].pending, (t, rid))

    def finished(rid: int, t: float) -> None:
        nxt = -1 if reqs.next_turn is None else int(reqs.next_turn[rid])
        if nxt >= 0:
            # the next turn comes a think time after this one arrived, never before its reply
            reqs.arrival_s[nxt] = max(float(reqs.arrival_s[rid]) + float(reqs.think_s[rid]), t)
            release(nxt)

    for rid in np.flatnonzero(np.isfinite(reqs.arrival_s)):
        release(int(rid))
    for rep in reps.values():
        rep.on_finish = finished
    if reqs.warm is not None and reqs.warm.size:
        # where each session between turns ran its last turn: its home replica, or anywhere when spreading
        where = home[reqs.session[reqs.warm]] if opts.router == "affinity" else \
            np.random.default_rng([opts.seed, 1 << 20]).integers(0, total, reqs.warm.size)
        for r in chosen:
            reps[r].prewarm(reqs.warm[where == r])
    end = opts.duration_s + opts.drain()
    heap = [(0.0, r) for r in chosen]
    ticks = 0
    while heap:
        clock, r = heapq.heappop(heap)
        while glob and glob[0][0] <= clock:
            _, rid = heapq.heappop(glob)
            order = sorted(reps)
            pick = order[least_loaded([reps[i].load() for i in order])]
            heapq.heappush(reps[pick].pending, (float(reqs.arrival_s[rid]), rid))
        rep = reps[r]
        while rep.pending and rep.pending[0][0] <= rep.clock:
            rep.enqueue(heapq.heappop(rep.pending)[1])
        stop_at = min(rep.pending[0][0] if rep.pending else np.inf, glob[0][0] if glob else np.inf)
        if rep.clock >= end or (rep.idle() and not np.isfinite(stop_at) and not any(
                not x.idle() for x in reps.values())):
            continue
        if rep.idle() and not np.isfinite(stop_at):
            # idle, but a busy replica may still release a session's next turn to it
            rep.clock = min(x.clock for x in reps.values() if not x.idle()) + 1e-9
            heapq.heappush(heap, (rep.clock, r))
            continue
        rep.step(stop_at)
        heapq.heappush(heap, (rep.clock, r))
        ticks += 1
        if progress is not None and ticks % 2000 == 0:
            progress(min(clock, end), end)
    for rep in reps.values():  # the state each replica ends in (idle, or what the drain left)
        rep.series_t.append(rep.clock)
        rep.series_waiting.append(len(rep.waiting))
        rep.series_running.append(rep.running)
    return Outcome(records=rec,
                   busy_s=np.array([reps[r].busy_s for r in chosen]),
                   prefill_s=np.array([reps[r].prefill_s for r in chosen]),
                   steps=np.array([reps[r].steps for r in chosen]),
                   series=[(np.asarray(reps[r].series_t), np.asarray(reps[r].series_waiting),
                            np.asarray(reps[r].series_running)) for r in chosen],
                   cache_lookups=sum(reps[r].cache.lookups for r in chosen))
