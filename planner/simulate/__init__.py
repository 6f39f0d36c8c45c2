"""An iteration-level simulator of one plan: the analytic search's screen, checked request by request.

Modules, one job each:
- `plan.py`      a plan (from `solve`, or a plan TOML file) -> the cost model's arrays, per pool;
- `costs.py`     step and prefill times from the cost model itself (planner/model, run as its numpy
                 twin): exact tables over the decode step's inputs, one prefill call per request;
- `arrivals.py`  the request stream: Poisson sessions at the scenario's rate, or a trace replayed;
- `router.py`    which replica serves a request (round-robin, least-loaded, session affinity);
- `prefix_cache.py` a block-level LRU prefix cache over HBM, host DRAM and NVMe;
- `engine.py`    one replica: admission, chunked prefill mixed with decode, preemption, speculation;
- `fleet.py`     every replica of the plan under one router, and the per-request records;
- `stats.py`     percentiles, queue length over time and the analytic figures beside them;
- `parallel.py`  many runs (plans x seeds, or a plan's replicas) over local processes or Ray.

The simulator never imports the search (`planner.search`); both call `planner/model/`.
"""
