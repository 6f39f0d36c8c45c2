"""The XLA flags `planner` sets before JAX starts (planner/__init__.py): each process's own, so
each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from planner import CPU_LLVM_OPTIONS

PROBE = (
    "import os, planner, jax, jax.numpy as jnp\n"
    "x = jnp.arange(64, dtype=jnp.float32).reshape(8, 8)\n"
    "y = jax.jit(lambda a: (jnp.log1p(a) * a[:, :1] + a[:1]).sum(axis=1))(x)\n"
    "print(os.environ.get('XLA_FLAGS', ''))\n"
    "print(' '.join(repr(v) for v in y.tolist()))\n"
)


def _run(**env: str) -> tuple[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    flags, values = done.stdout.splitlines()[-2:]
    return flags, values


@pytest.fixture(scope="module")
def default_run() -> tuple[str, str]:
    return _run(JAX_PLATFORMS="cpu")


def test_a_cpu_only_process_gets_a_host_device_per_core_and_the_llvm_options_that_compile_it_runs(default_run):
    """The LLVM options must be ones this jaxlib's LLVM knows: an unknown one aborts the process
    at its first compile, so the probe compiling and running is the check."""
    flags, values = default_run
    assert "--xla_force_host_platform_device_count=" in flags
    assert CPU_LLVM_OPTIONS in flags.split()
    assert len(values.split()) == 8
    unasked, _ = _run()  # no JAX_PLATFORMS: CPU-only because no accelerator plugin is installed here
    assert CPU_LLVM_OPTIONS in unasked.split()


def test_the_llvm_options_move_results_only_within_float32_rounding(default_run):
    _, with_options = default_run
    _, without = _run(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_extra_options=-lsr-drop-solution=false")
    a, b = (np.array([float(v) for v in values.split()]) for values in (with_options, without))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_an_accelerator_and_a_users_own_options_are_left_alone():
    flags, _ = _run(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_extra_options=-lsr-drop-solution=false")
    assert "-disable-lsr" not in flags and "-lsr-drop-solution=false" in flags
    done = subprocess.run([sys.executable, "-c", "import os, planner; print(os.environ.get('XLA_FLAGS', ''))"],
                          env={**os.environ, "JAX_PLATFORMS": "cuda", "XLA_FLAGS": ""},
                          capture_output=True, text=True, timeout=60, check=True)
    assert "xla_backend_extra_options" not in done.stdout


HUGEPAGES = "import numpy._core.multiarray as m\nprint(int(m._get_madvise_hugepage()), os.environ.get('NUMPY_MADVISE_HUGEPAGE'))\n"


@pytest.mark.parametrize("numpy_first", [False, True])
def test_numpy_stops_asking_for_huge_pages_unless_the_user_says_so(numpy_first):
    """Where transparent huge pages fail, each fault of a madvised array stalls (planner/__init__.py):
    numpy must not madvise in a planner process, whether numpy was imported before the planner or
    after it, and its children inherit that; a user's explicit setting is kept."""
    imports = "import os, numpy, planner\n" if numpy_first else "import os, planner, numpy\n"
    base = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}

    def probe(env: dict[str, str]) -> str:
        done = subprocess.run([sys.executable, "-c", imports + HUGEPAGES], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    assert probe(base) == "0 0"
    assert probe({**base, "NUMPY_MADVISE_HUGEPAGE": "1"}) == "1 1"  # the user's own choice stands
