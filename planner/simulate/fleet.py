"""Every replica of a plan under one router: the run that `planner simulate` reports.

The replica with the earliest clock steps next. A request is routed when it is released (at the
start, or when its session's previous turn finishes): round-robin and affinity decide then, into the
replica's own queue of arrivals; `least-loaded` routes it once every replica's clock has passed its
arrival, so it sees each replica's state at its first step boundary after the arrival (a replica with
a free slot stops its decode run at each arrival). Under affinity the replicas never interact, so a
subset of them can run alone (`parallel.py` runs groups in separate processes).
Arrivals stop at `duration_s`; the run continues (at most `drain_s`) until the requests in flight
finish, so long requests near the end are not left out of the percentiles.

A disaggregated plan has two pools in the same loop: requests are routed to prefill replicas as
above; a prompt whose prefill finishes ships its KV to the least-loaded decode replica (running,
waiting and on their way), arriving after the visible part of the transfer (model.disagg's
layer-by-layer overlap) and after the transfers queued before it on the prefill instance's NICs;
its first token is delivered then. A decode replica never runs past the earliest time a prompt
could still reach it (`Replica.next_handoff` of every prefill replica), so a shipped request waits
for a step boundary, as in an engine, not for a whole decode run.
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
from planner.simulate.prefix_cache import PrefixCache
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
    roles: tuple[str, ...] = ()  # per replica ('serve', or 'prefill' / 'decode')
    slots: tuple[int, ...] = ()  # per replica: its batch


def pool_costs(plan: SimPlan) -> dict[str, Costs]:
    """The cost tables of each pool of the plan, by role."""
    ld = plan.load
    max_context = float(ld.in_cap) + float(ld.out_cap)
    reserve = float(ld.in_mean) + float(ld.out_mean)
    return {p.role: Costs(p, max_context, float(ld.hbm_fraction), reserve) for p in plan.pools}


def costs_for(plan: SimPlan) -> Costs:
    """The cost tables of the pool requests arrive at."""
    return pool_costs(plan)[plan.serve.role]


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
    never interact: aggregated plans only) over `reqs`."""
    tables = pool_costs(plan) if costs is None else {plan.serve.role: costs}
    entry_costs = tables[plan.serve.role]
    total = plan.serve.instances  # replicas requests are routed to
    chosen = list(range(total)) if replicas is None else list(replicas)
    if replicas is not None and (opts.router != "affinity" or plan.disaggregated) and len(chosen) != total:
        raise ValueError("only the affinity router's aggregated replicas run as a subset")
    rec = Records(reqs.count)
    hints = prefill_hints(entry_costs, reqs) if reqs.count else None
    shared = None
    if plan.disaggregated and plan.transfer.shared_cache:
        # one pool in the host memory of every prefill instance (model.disagg.prefill_pool, shared = 1)
        bt = reqs.block_tokens
        shared = PrefixCache(bt, int(entry_costs.dram_tokens * total // bt), int(entry_costs.nvme_tokens * total // bt),
                             enabled=bool(plan.serve.cfg.prefix_cache > 0))
    reps: dict[int, Replica] = {}
    for r in chosen:
        rep = Replica(r, entry_costs, reqs, rec, np.random.default_rng([opts.seed, r]), role=plan.serve.role,
                      cache=shared)
        rep.hints = hints
        rep.window = (opts.warmup(), opts.duration_s)
        reps[r] = rep
    entry = list(reps.values())
    decoders: list[Replica] = []
    if plan.disaggregated:
        dec = plan.pool("decode")
        for j in range(dec.instances):
            # a shared host pool also takes the decode pool's KV (model.disagg.prefill_side_reuse)
            rep = Replica(total + j, tables["decode"], reqs, rec, np.random.default_rng([opts.seed, total + j]),
                          role="decode", cache=shared)
            rep.window = (opts.warmup(), opts.duration_s)
            reps[total + j] = rep
            decoders.append(rep)
    home = session_homes(reqs, total)
    router = StaticRouter(opts.router, total, home)
    # replicas whose finished requests release a session's next turn to another replica: the decode
    # pool's, or every replica where turns are not routed to their session's home
    releasers = decoders if plan.disaggregated else ([] if opts.router == "affinity" else entry)
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
            # the next turn comes a think time after this one's reply
            reqs.arrival_s[nxt] = t + float(reqs.think_s[rid])
            release(nxt)

    nic_free = {r: 0.0 for r in chosen}  # when each prefill instance's NICs finish their last transfer

    def prefilled(rid: int, t: float, prefill_s: float, r: int) -> None:
        """Ship the prompt's KV to the least-loaded decode replica; the first token is delivered on arrival."""
        whole, visible = entry_costs.transfer_seconds(float(reqs.input_tokens[rid]), prefill_s, plan.transfer)
        arrive = max(t + float(visible), nic_free[r] + float(whole))
        nic_free[r] = arrive
        rec.first_s[rid] = arrive
        rec.transfer_s[rid] = arrive - t
        if rec.generated[rid] >= reqs.output_tokens[rid]:  # a one-token reply ends with its first token
            rec.finish_s[rid] = arrive
            finished(rid, arrive)
            return
        pick = decoders[least_loaded([d.load() + len(d.pending) for d in decoders])]
        heapq.heappush(pick.pending, (arrive, rid))

    for rid in np.flatnonzero(np.isfinite(reqs.arrival_s)):
        release(int(rid))
    for rep in reps.values():
        rep.on_finish = finished
        rep.on_prefilled = prefilled
    if reqs.warm is not None and reqs.warm.size:
        # where each session between turns ran its last turn: its home replica, or anywhere when spreading
        where = home[reqs.session[reqs.warm]] if opts.router == "affinity" else \
            np.random.default_rng([opts.seed, 1 << 20]).integers(0, total, reqs.warm.size)
        for r in chosen:
            reps[r].prewarm(reqs.warm[where == r])
    end = opts.duration_s + opts.drain()
    heap = [(0.0, r) for r in reps]
    ticks = 0
    while heap:
        clock, r = heapq.heappop(heap)
        while glob and glob[0][0] <= clock:
            _, rid = heapq.heappop(glob)
            pick = chosen[least_loaded([reps[i].load() for i in chosen])]
            heapq.heappush(reps[pick].pending, (float(reqs.arrival_s[rid]), rid))
        rep = reps[r]
        while rep.pending and rep.pending[0][0] <= rep.clock:
            rep.enqueue(heapq.heappop(rep.pending)[1])
        stop_at = min(rep.pending[0][0] if rep.pending else np.inf, glob[0][0] if glob else np.inf)
        if rep.role == "decode":  # a prompt may still be shipped here, no earlier than this
            stop_at = min([stop_at, *(x.next_handoff() for x in entry)])
        elif rep.idle() and np.isfinite(stop_at) and reqs.next_turn is not None:
            # an idle replica jumps to its next arrival, but a busy replica may release a session's
            # next turn to it before then: it jumps no further than the earliest of them, or that turn
            # would arrive in its past and wait while it was idle (a disaggregated prompt-cache study
            # read TTFT p95 53 s, 67 % of the waiting spent at idle prefill instances)
            ahead = [x.clock for x in releasers if x is not rep and not x.idle()]
            if ahead:
                stop_at = min(stop_at, max(min(ahead), rep.clock) + 1e-9)
        if rep.clock >= end:
            continue
        if rep.idle() and not np.isfinite(stop_at):
            # busy: stepping, or a decode replica with a shipped prompt on its way
            busy = [x for x in reps.values() if not x.idle() or (x.role == "decode" and x.pending)]
            if not busy:
                continue
            # idle, but a busy replica may still release a session's next turn to it
            rep.clock = min(x.clock for x in busy) + 1e-9
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
    order = list(reps)
    return Outcome(records=rec,
                   busy_s=np.array([reps[r].busy_s for r in order]),
                   prefill_s=np.array([reps[r].prefill_s for r in order]),
                   steps=np.array([reps[r].steps for r in order]),
                   series=[(np.asarray(reps[r].series_t), np.asarray(reps[r].series_waiting),
                            np.asarray(reps[r].series_running)) for r in order],
                   cache_lookups=shared.lookups if shared is not None else sum(reps[r].cache.lookups for r in order),
                   roles=tuple(reps[r].role for r in order), slots=tuple(reps[r].batch for r in order))
