"""`--workers` and `--ray`: the same runs, mapped over processes or a Ray cluster, give the same figures.

Under the affinity router a plan's replicas never interact, so a run split into replica groups and
merged must equal the run in one piece, request by request (a check of the merge, and of the claim).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from support import sim_scenario

from planner.catalog import load_catalog
from planner.cli.file_cmds import load_scenario
from planner.simulate import fleet, parallel, stats
from planner.simulate.plan import sim_plan

PLAN = {"hardware": "h100-sxm", "chips": 1, "replicas": 3, "batch": 8, "weight_dtype": "bf16", "kv_dtype": "bf16",
        "spec_k": 0, "prefix_cache": True, "attention": "flash", "layout": {"tp": 1}}
SCENARIO = sim_scenario(rate=6.0, turns=4, reuse=0.8, name="three replicas")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    path = tmp_path_factory.mktemp("sc") / "three.toml"
    path.write_text(SCENARIO)
    catalog = load_catalog()
    sp = sim_plan(PLAN, load_scenario(path, [], catalog), catalog)
    return parallel.Job(plan=sp, workload=parallel.Workload(), options=fleet.Options(duration_s=60.0, seed=5))


def _same(a, b):
    ra, rb = a[1].records, b[1].records
    for name in ("replica", "first_s", "finish_s", "cached_tokens", "generated", "preemptions"):
        assert np.array_equal(getattr(ra, name), getattr(rb, name), equal_nan=True), name
    assert np.array_equal(a[0].arrival_s, b[0].arrival_s, equal_nan=True)
    # the queue series too: each replica records its state as each step leaves it, so a replica
    # that runs out of work reads idle from then on, not from when the loop next looks at it
    # (which depends on the other replicas in the same run)
    end = stats.ran_until(b[1], 1e9)
    assert stats.ran_until(a[1], 1e9) == end
    assert stats.queue_series(a[1], end) == stats.queue_series(b[1], end)


def test_replica_groups_merge_to_the_whole_run(job):
    whole = parallel.run_job(job)
    parts = parallel.split(job, 2)
    assert [p.replicas for p in parts] == [(0, 2), (1,)]
    _same(parallel.merge([parallel.run_job(p) for p in parts]), whole)


def test_workers_in_processes(job):
    whole = parallel.run_job(job)
    _same(parallel.merge(parallel.run_jobs(parallel.split(job, 2), workers=2)), whole)


RAY_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np, ray
from planner.catalog import load_catalog
from planner.cli.file_cmds import load_scenario
from planner.simulate import fleet, parallel
from planner.simulate.plan import sim_plan
from test_simulate_parallel import PLAN, _same
catalog = load_catalog()
sp = sim_plan(PLAN, load_scenario({scenario!r}, [], catalog), catalog)
job = parallel.Job(plan=sp, workload=parallel.Workload(), options=fleet.Options(duration_s=60.0, seed=5))
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
try:
    _same(parallel.merge(parallel.run_jobs(parallel.split(job, 3), ray_address="auto")), parallel.run_job(job))
finally:
    ray.shutdown()
print("RAY-OK")
"""


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (optional extra: pip install 'planner[ray]'; kept out of [dev]: "
                    "an ~80 MB wheel)")
def test_ray_local_cluster(tmp_path):
    """A local Ray instance, started by the test in its own process (Ray's shutdown must not take a
    pytest worker with it), runs the replica groups; the merged run equals the run in one piece."""
    import subprocess
    import sys

    path = tmp_path / "three.toml"
    path.write_text(SCENARIO)
    script = RAY_SCRIPT.format(tests=str(Path(__file__).resolve().parent), scenario=str(path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1], check=False)
    assert done.returncode == 0 and "RAY-OK" in done.stdout, done.stderr[-3000:]
