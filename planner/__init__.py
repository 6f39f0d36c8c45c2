"""planner: a capacity planner for LLM inference.

The package is layered so that data flows one way:
TOML -> pydantic schemas -> arrays -> pure JAX cost model -> search -> reports.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"


def _xla_cpu_flags() -> None:
    """XLA runs one CPU device single-threaded for elementwise work; exposing one host device per
    core lets the search shard its hardware axis over all cores (1.8x on 2 cores); and
    CPU_LLVM_OPTIONS. Both only take effect if set before JAX starts, hence here; an explicit user
    setting always wins."""
    if "jax" in _sys.modules:
        return
    flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        cores = len(_os.sched_getaffinity(0)) if hasattr(_os, "sched_getaffinity") else (_os.cpu_count() or 1)
        flags = f"{flags} --xla_force_host_platform_device_count={max(cores, 1)}".strip()
    if "xla_backend_extra_options" not in flags and _cpu_only():
        flags = f"{flags} {CPU_LLVM_OPTIONS}"
    if flags != _os.environ.get("XLA_FLAGS", ""):
        _os.environ["XLA_FLAGS"] = flags


CPU_LLVM_OPTIONS = "--xla_backend_extra_options=-disable-lsr,-unroll-threshold=0"
"""LLVM options for XLA's CPU code generation (docs/speed-log.md, thirty-third session):
- no loop strength reduction: the costliest single LLVM pass on the search kernels, ~27 % of
  LLVM's time on the row kernel (its fusions' loops index many broadcast operands, and LSR's
  formula search grows with them). Without it: 20-30 % less CPU to compile the row kernel, ~10 %
  the prefill-pool kernel, the same speed and bit-identical outputs;
- no loop unrolling: unrolled, the fusions' short inner loops (a layout block's axes of 2-11) became
  straight-line code with one scalar call per `log`/`exp`, where kept as loops LLVM's loop vectoriser
  computes them with XLA's vector functions. The row kernel runs 20-25 % faster (the interactive
  one 25-30 %) and compiles in another 10-20 % less CPU; per-configuration values move within
  float32 rounding (as close to the numpy twin as before: median 7e-7 relative), every snapshot,
  bundled scenario's plan and the fidelity table are unchanged.
LLVM options are process-wide and also reach a GPU's code generator, so they are set only where
JAX can run on nothing but the CPU."""


def _cpu_only() -> bool:
    """Whether JAX will find no accelerator: none asked for in JAX_PLATFORMS, and no GPU or TPU
    plugin installed (a plugin registers under the `jax_plugins` namespace, a TPU needs libtpu)."""
    import importlib.util

    platforms = _os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.strip().lower() == "cpu"
    return all(importlib.util.find_spec(name) is None for name in ("jax_plugins", "libtpu"))


def _no_numpy_hugepages() -> None:
    """Numpy asks Linux for transparent huge pages on every large array (madvise). Where the kernel
    often cannot give them (the 2-core Firecracker VMs of CI: THP defrag "madvise"), a page fault of
    such an array stalls in a failed compaction: allocating and filling 140 MB took 0.80-0.93 s in
    half the runs and 0.026 s in the others, against 0.062-0.092 s every time without; `planner
    whatif` on the default scenario 23-25 s (11-12 s of it system time) against 15-16 s (3.3-3.6 s).
    The planner's arrays are written once and read a few times: huge pages save little where they
    work and cost seconds where they do not. An explicit NUMPY_MADVISE_HUGEPAGE always wins; the
    setting also reaches child processes (resident workers, simulation workers)."""
    if "NUMPY_MADVISE_HUGEPAGE" in _os.environ:
        return
    _os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"  # read by numpy when it is imported
    if "numpy" in _sys.modules:  # imported before the planner (a test runner, a notebook): switch it now
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:
            return
        _set_madvise_hugepage(False)


_no_numpy_hugepages()
_xla_cpu_flags()
