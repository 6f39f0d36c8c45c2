"""`planner worker status|start|stop`: the resident workers that answer `solve`, `whatif`, `sweep`,
`project` and `eval` without a fresh process's start-up (`planner.resident`).

A command that finds no worker runs in its own process and then, from a terminal (or with
`PLANNER_WORKER=1`), starts one in the background; it exits after `PLANNER_WORKER_IDLE_S` idle
seconds (default 600). `PLANNER_WORKER=0` turns them off.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from planner.errors import PlannerError

worker_app = typer.Typer(help="Resident workers: `solve` and the analyses answered without start-up.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(worker_app, name="worker", rich_help_panel="Workers")


def _workers() -> list[tuple[str, dict | None, int | None]]:
    """(key, status or None if it does not answer, pid holding its lock or None) for every socket in
    this user's worker folder. A socket whose worker is gone (killed: nobody holds its lock) is
    removed, and so are the lock and log files of code versions long gone (`client.remove_stale`)."""
    from planner.resident import client, identity

    folder = identity.runtime_dir()
    if not folder.is_dir():
        return []
    client.remove_stale(folder, identity.key())
    found = []
    for path in sorted(folder.glob("*.sock")):
        state = client.query(path, "status")
        pid = client.holder(path.with_suffix(".lock"))
        if state is None and pid is None:
            path.unlink(missing_ok=True)
            continue
        found.append((path.stem, state, pid))
    return found


@worker_app.command("status")
def status() -> None:
    """List this user's workers: process, commands answered, idle time, memory, and whether it
    answers this code and environment."""
    from planner.resident import identity

    if not identity.enabled():
        typer.echo(f"resident workers are off ({identity.ENV_SWITCH}={_switch()})")
    current = identity.key()
    found = _workers()
    if not found:
        typer.echo(f"no worker running (folder {identity.runtime_dir()})")
        return
    for key, state, pid in found:
        mine = "this code and environment" if key == current else "another code version or environment"
        if state is None:
            typer.echo(f"{key}: pid {pid}, busy with a command or starting ({mine})")
            continue
        age = time.time() - float(state.get("started", time.time()))
        building = int(state.get("building_kernels") or 0)
        also = f", building {building} kernel{'s' if building != 1 else ''} for repeated runs" if building else ""
        typer.echo(f"{key}: pid {state.get('pid')}, up {age:.0f} s, {state.get('served')} commands answered, "
                   f"idle {state.get('idle_s')} s, {state.get('rss_mb')} MB resident{also} ({mine})")


@worker_app.command("start")
def start(
    wait: Annotated[float, typer.Option("--wait", min=1.0, max=600.0, help="Seconds to wait until it answers.")] = 60.0,
) -> None:
    """Start a worker for this code and environment (if none runs) and wait until it answers."""
    import os

    from planner.resident import client, identity

    if not identity.enabled():
        raise PlannerError(f"resident workers are off ({identity.ENV_SWITCH}={_switch()}); unset it to start one")
    environ = dict(os.environ)
    key = identity.key(environ)
    client.spawn(environ, asked=True)
    pid = client.wait_until_ready(key, wait)
    if pid is None:
        raise PlannerError(f"no worker answered within {wait:g} s (its log: {identity.log_path(key)})")
    typer.echo(f"worker {key} answering (pid {pid})")


@worker_app.command("stop")
def stop() -> None:
    """Stop every worker of this user (one busy with a command stops after it)."""
    import os
    import signal

    from planner.resident import client, identity

    stopped = 0
    for key, _state, pid in _workers():
        if client.query(identity.socket_path(key), "stop") is not None:
            stopped += 1
        elif pid is not None and pid > 0:  # busy: SIGTERM stops it after its command
            try:
                os.kill(pid, signal.SIGTERM)
                stopped += 1
            except OSError:
                pass
    typer.echo(f"stopped {stopped} worker{'s' if stopped != 1 else ''}")


def _switch() -> str:
    import os

    from planner.resident import identity

    return os.environ.get(identity.ENV_SWITCH, "")
