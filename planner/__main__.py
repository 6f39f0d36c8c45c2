"""The `planner` console script (and `python -m planner`).

Start-up builds about a million long-lived objects (Typer, pydantic schemas, JAX); the cyclic
garbage collector would scan them over and over while they are created, which cost a third of the
import time of a warm `planner solve`. It stays off until the command starts (`planner.cli`
re-enables it, with what exists by then frozen out of its scans). `planner solve` starts loading
its compiled kernels before the CLI is imported. At the end the interpreter's
teardown (freeing every module and JAX's runtime, 5-8 % of a warm solve) is skipped: output is
flushed and the exit handlers run, then the process ends.

Before any of that, a command that JAX serves (`planner.resident.identity.RESIDENT_COMMANDS`) is
offered to this user's resident worker, which has all of it loaded already; when none takes it, the
command runs here and then starts one in the background for the next command (`PLANNER_WORKER=0`
turns both off).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
import time

_STARTED = time.time()


def _start_loading_kernels(argv: list[str]) -> None:
    """`planner solve`: import JAX first and start loading the last solve's compiled kernels
    (`executables.prefetch`, C++ threads), so that the loading overlaps the CLI's own imports and
    the catalog load instead of following them. Help stays as fast as before."""
    if argv[:1] != ["solve"] or {"-h", "--help"} & set(argv):
        return
    from planner import executables, timing

    with timing.phase("imports (jax, early)"):
        import jax

        jax.devices()
    executables.prefetch()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def _exit(code: int) -> None:
    _flush()
    atexit._run_exitfuncs()
    os._exit(code)


def main() -> None:
    gc.disable()
    argv = sys.argv[1:]
    from planner.resident import identity

    resident = identity.enabled() and identity.routable(argv)
    startup_env = dict(os.environ)  # before JAX adds its own variables: what a worker must start with
    if resident:  # other commands (help, catalogs, the TUI) do not import the hand-over's modules
        from planner.resident import client

        answered = client.run(argv, _STARTED)
        if answered is not None:
            _exit(answered)
    _start_loading_kernels(argv)
    from planner.cli import main as cli_main

    try:
        cli_main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if resident:
        _flush()  # the answer first, then the worker's start
        kernels = sys.modules.get("planner.executables")
        if kernels is not None:
            kernels.wait_for_stores()  # the worker's warm-up loads what this command compiled
        client.spawn(startup_env, argv)
    if not isinstance(code, int) or any(t.is_alive() and not t.daemon for t in threading.enumerate()
                                        if t is not threading.main_thread()):
        sys.exit(code)  # a message to print, or work still running: the ordinary way out
    _exit(code)


if __name__ == "__main__":
    main()
