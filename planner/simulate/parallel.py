"""Many runs at once: a plan's replicas, several seeds or several plans, over processes or Ray.

Runs are independent (a plan's replicas too, under the affinity router: sessions never cross
replicas), so they are mapped, not scheduled: `concurrent.futures` for `--workers N` on one
machine, Ray tasks for `--ray ADDRESS` (the optional `ray` extra; `auto` joins the local cluster).
Each job rebuilds its request stream from (workload, seed), so only small inputs cross processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from planner.simulate import arrivals, fleet
from planner.simulate.engine import Records
from planner.simulate.plan import SimPlan


@dataclass(frozen=True)
class Workload:
    """Where a run's requests come from: the scenario's sessions, or a trace file."""

    trace_path: str | None = None
    max_context: float = 0.0


@dataclass(frozen=True)
class Job:
    plan: SimPlan
    workload: Workload
    options: fleet.Options
    replicas: tuple[int, ...] | None = None  # a subset (affinity router only); None = all


def requests_for(job: Job) -> arrivals.Requests:
    o = job.options
    if job.workload.trace_path:
        from planner.traces.readers import read_trace

        trace = read_trace(job.workload.trace_path)
        return arrivals.from_trace(trace, float(job.plan.load.arrival_rps), o.duration_s, o.seed,
                                   job.workload.max_context)
    return arrivals.synthetic(job.plan.load, o.duration_s, o.seed, reply_s=expected_reply_s(job.plan))


def expected_reply_s(plan: SimPlan) -> float:
    """The screen's time from a request's arrival to its last token (median TTFT + mean output x
    median TPOT): a closed-loop session's turn takes this plus a think time, so this many more
    sessions are in flight at the scenario's request rate."""
    from planner.simulate.analytic import analytic

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = analytic(plan)
        reply = a["ttft_s"][0.5] + max(float(plan.load.out_mean) - 1.0, 0.0) * a["tpot_s"][0.5]
    return float(reply) if np.isfinite(reply) and reply > 0.0 else 0.0


def run_job(job: Job, progress=None) -> tuple[arrivals.Requests, fleet.Outcome]:
    reqs = requests_for(job)
    out = fleet.run(job.plan, reqs, job.options, list(job.replicas) if job.replicas is not None else None,
                    progress=progress)
    return reqs, out


def split(job: Job, parts: int) -> list[Job]:
    """One job per group of replicas (affinity router, aggregated plans only: a disaggregated plan's
    prefill replicas share its decode pool; otherwise the job itself)."""
    n = job.plan.serve.instances
    if job.options.router != "affinity" or job.plan.disaggregated or parts <= 1 or n <= 1:
        return [job]
    groups = [tuple(range(i, n, parts)) for i in range(min(parts, n))]
    return [replace(job, replicas=g) for g in groups]


def merge(parts: list[tuple[arrivals.Requests, fleet.Outcome]]) -> tuple[arrivals.Requests, fleet.Outcome]:
    """Recombine the replica groups of one run: each request is taken from the group that served it."""
    if len(parts) == 1:
        return parts[0]
    reqs = parts[0][0]
    rec = Records(reqs.count)
    arrival = np.array(reqs.arrival_s)
    for r_part, o_part in parts:
        mine = o_part.records.replica >= 0
        for name in ("replica", "first_s", "finish_s", "cached_tokens", "cached_by_tier", "generated",
                     "preemptions", "dropped", "transfer_s"):
            getattr(rec, name)[mine] = getattr(o_part.records, name)[mine]
        # a closed-loop turn's arrival is set by the group that served the turn before it
        arrival = np.where(np.isnan(arrival), r_part.arrival_s, arrival)
    reqs = replace(reqs, arrival_s=arrival)
    outs = [o for _, o in parts]
    return reqs, fleet.Outcome(records=rec, busy_s=np.concatenate([o.busy_s for o in outs]),
                               prefill_s=np.concatenate([o.prefill_s for o in outs]),
                               steps=np.concatenate([o.steps for o in outs]),
                               series=[s for o in outs for s in o.series],
                               cache_lookups=sum(o.cache_lookups for o in outs),
                               roles=tuple(r for o in outs for r in o.roles),
                               slots=tuple(b for o in outs for b in o.slots))


def run_jobs(jobs: list[Job], workers: int = 1, ray_address: str | None = None) -> list[Any]:
    """`run_job` over every job, in order: in this process, local processes, or Ray tasks."""
    if ray_address:
        return _ray_map(jobs, ray_address)
    if workers <= 1 or len(jobs) <= 1:
        return [run_job(j) for j in jobs]
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        return list(pool.map(run_job, jobs))


def _ray_map(jobs: list[Job], address: str) -> list[Any]:
    from planner.errors import PlannerError

    try:
        import ray
    except ImportError:
        raise PlannerError("--ray needs the ray package: pip install 'planner[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True,
                 include_dashboard=False, log_to_driver=False)
    task = ray.remote(run_job)
    return ray.get([task.remote(j) for j in jobs])
