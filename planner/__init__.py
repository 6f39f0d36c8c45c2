"""planner: a capacity planner for LLM inference.

The package is layered so that data flows one way:
TOML -> pydantic schemas -> arrays -> pure JAX cost model -> search -> reports.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"


def _one_host_device_per_core() -> None:
    """XLA runs one CPU device single-threaded for elementwise work; exposing one host device per
    core lets the search shard its hardware axis over all cores (1.8x on 2 cores). It only takes
    effect if set before JAX starts, hence here; an explicit user setting always wins."""
    if "jax" in _sys.modules:
        return
    flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        cores = len(_os.sched_getaffinity(0)) if hasattr(_os, "sched_getaffinity") else (_os.cpu_count() or 1)
        _os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={max(cores, 1)}".strip()


_one_host_device_per_core()
