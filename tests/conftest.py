"""Shared fixtures: run the CLI in-process exactly as the console script does, and sample files.

`invoke(*args)` goes through `PlannerGroup.main`, the same entry the `planner` binary uses, so exit
codes, stdout and stderr match the real program (error mapping included). `run_planner(*args)` runs
a real subprocess for the few tests that must see the process boundary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import REPO, TERMINAL_ENV
from typer.testing import CliRunner, Result

from planner.cli import app

# The suite compiles ~100 kernel shapes; keep them all on disk so none is compiled twice
# (workers and subprocesses inherit this).
os.environ.setdefault("PLANNER_CACHE_KEEP", "400")
# No resident worker (planner.resident) answers or outlives a test's `planner` process, unless the
# test starts one in its own folder (tests/test_resident.py).
os.environ["PLANNER_WORKER"] = "0"


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TERMINAL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner) -> Callable[..., Result]:
    def _invoke(*args: str | Path) -> Result:
        # catch_exceptions=False: anything escaping the error mapping fails the test loudly.
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return _invoke


@pytest.fixture
def run_planner() -> Callable[..., subprocess.CompletedProcess[str]]:
    """The real entry point in a fresh interpreter (what the console script runs)."""

    def _run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in TERMINAL_ENV}
        return subprocess.run(
            [sys.executable, "-c", "from planner.cli import main; main()", *(str(a) for a in args)],
            capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False,
        )

    return _run


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_kernels():
    """Each test module compiles kernels for its own grid shapes; a worker that kept every module's
    executables (and JAX's traces of them) grew past 10 GB over the suite. Drop them between modules:
    the on-disk executable cache still serves the next module, so this costs loads, not compiles."""
    yield
    if "jax" not in sys.modules:
        return
    import jax

    from planner import executables, search

    executables.forget()
    for fn in (search._grid_kernel, search._row_kernel):
        fn.cache_clear()
    jax.clear_caches()
