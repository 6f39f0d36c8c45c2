"""A `planner` command handed to a resident worker (`planner.resident.server`), and the worker's
start after a command that found none.

The hand-over costs a few milliseconds: this module and `identity` import nothing heavy. When no
worker answers at once (none running, busy with another command, a different code version), the
command runs in its own process as it always did, and `spawn` starts a worker for the next one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

from planner.resident import identity, protocol

READY_WAIT_S: float | None = None
"""How long a command waits for a worker to accept it; None: `identity.wait_seconds()` (its
environment's `PLANNER_WORKER_WAIT_S`, else 0.5 s)."""


def _ready_wait() -> float:
    return identity.wait_seconds() if READY_WAIT_S is None else READY_WAIT_S


def run(argv: list[str], started: float) -> int | None:
    """The exit code of `planner ARGV` run by this user's worker for this code, or None if no worker
    took the command (the caller then runs it)."""
    if not identity.enabled() or not identity.routable(argv):
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None  # the working folder is gone: the command reports it in its own process
    worker_key = identity.key()
    conn = _connect(worker_key)
    if conn is None:
        return None
    with conn:
        try:
            hello, _ = protocol.receive(conn)
        except (protocol.ProtocolError, OSError):
            return None  # busy (it did not accept within _ready_wait()) or gone
        if hello.get("key") != worker_key or not isinstance(hello.get("pid"), int):
            return None
        fds, opened = _standard_fds()
        with _forwarding_interrupts(hello["pid"]) as interrupted:  # from before the command can start
            try:
                umask = os.umask(0o022)
                os.umask(umask)
                protocol.send(conn, {"op": "run", "argv": argv, "cwd": cwd, "env": dict(os.environ), "umask": umask,
                                     "streams": [_stream_spec(s) for s in (sys.stdin, sys.stdout, sys.stderr)],
                                     "started": started}, fds)
            except OSError:
                if interrupted:  # Ctrl-C during a hand-over that failed: the command is not run at all
                    sys.stderr.write("aborted\n")
                    return 130
                return None  # nothing ran yet: run it here
            finally:
                for fd in opened:
                    os.close(fd)
            return _wait_for_exit(conn, hello["pid"], interrupted)


def _connect(worker_key: str) -> socket.socket | None:
    path = identity.usable_socket_path(worker_key)
    if path is None:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(_ready_wait())
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


def _standard_fds() -> tuple[list[int], list[int]]:
    """Descriptors 0-2 to hand over; a closed one is handed over as /dev/null (as a fresh process
    would see it: reading gives end-of-file, writing goes nowhere). Returns (fds, opened here)."""
    fds, opened = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            fds.append(devnull)
            opened.append(devnull)
    return fds, opened


def _stream_spec(stream: Any) -> dict[str, Any]:
    return {"encoding": getattr(stream, "encoding", None), "errors": getattr(stream, "errors", None),
            "line_buffering": bool(getattr(stream, "line_buffering", False))}


RESEND_S = 1.0
"""After a Ctrl-C, how often it is sent again while the command still runs: a KeyboardInterrupt that
Python raises inside a garbage-collector callback (JAX registers one) is printed and dropped."""


@contextlib.contextmanager
def _forwarding_interrupts(worker_pid: int) -> Iterator[list[bool]]:
    """Within it, Ctrl-C (and SIGTERM, SIGHUP) here is sent to the worker as SIGINT, where it
    interrupts the command (or, before the command starts, stops it as it starts); yields the list
    that records that one came."""
    interrupted: list[bool] = []

    def forward(_signum: int, _frame: Any) -> None:
        interrupted.append(True)
        with contextlib.suppress(OSError):
            os.kill(worker_pid, signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_exit(conn: socket.socket, worker_pid: int, interrupted: list[bool]) -> int:
    """Wait for the worker's exit code, sending a Ctrl-C that came (`interrupted`) again every
    RESEND_S while the command runs."""
    import select

    try:
        conn.settimeout(None)
        while not select.select([conn], [], [], RESEND_S)[0]:
            if interrupted:
                with contextlib.suppress(OSError):
                    os.kill(worker_pid, signal.SIGINT)
        reply, _ = protocol.receive(conn)
        code = reply.get("exit")
        if isinstance(code, int) and not isinstance(code, bool):
            return code
        raise protocol.ProtocolError(f"unexpected reply {reply!r}")
    except (protocol.ProtocolError, OSError) as exc:
        sys.stderr.write(f"internal error: the resident planner worker (pid {worker_pid}) stopped before the "
                         f"command ended ({exc}); run it again, or set {identity.ENV_SWITCH}=0 to run "
                         "commands in their own process\n")
        return protocol.INTERNAL_ERROR


def spawn(environ: dict[str, str], argv: list[str] | None = None, asked: bool = False) -> None:
    """Start a worker for this code and `environ` (the environment this process started with, before
    JAX added to it) in the background, unless one is starting or running (it holds the key's lock
    file); `argv`: the command that just ran here, which the worker may repeat as its warm-up. Best
    effort: any failure leaves things as they were. `asked` (`planner worker start`): started
    whether or not a terminal is attached and however many other workers run."""
    at_terminal = any(_isatty(s) for s in (sys.stdin, sys.stdout, sys.stderr))
    if not (identity.enabled(environ) if asked else identity.auto_start(environ, at_terminal)):
        return
    import subprocess

    worker_key = identity.key(environ)
    folder = identity.runtime_dir(environ)
    if identity.usable_socket_path(worker_key, environ) is None or not identity.private_dir(folder):
        return
    running = _running_workers(folder)
    if identity.lock_path(worker_key, environ).name in running or (len(running) >= identity.MAX_WORKERS and not asked):
        return  # this one is starting or running; or enough others are (each holds its lock file)
    package_root = str(identity.package_root())
    try:
        repeat = {"argv": argv, "cwd": os.getcwd()} if argv else None
    except OSError:  # the working folder is gone
        return
    bootstrap = (f"import sys; sys.path.insert(0, {package_root!r}); "
                 f"from planner.resident.server import main; sys.exit(main({worker_key!r}, {repeat!r}))")
    try:
        with open(identity.log_path(worker_key, environ), "w", encoding="utf-8") as log:
            worker = subprocess.Popen([sys.executable, "-c", bootstrap], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=log, cwd="/", env=environ,
                                      start_new_session=True, close_fds=True)
    except OSError:
        return
    if not asked and _isatty(sys.stderr):  # a person at a terminal is told; pipes stay clean
        minutes = identity.idle_seconds(environ) / 60
        sys.stderr.write(f"note: started a resident planner worker (pid {worker.pid}) to answer the next commands "
                         f"without start-up; it exits after {minutes:g} idle minutes (`planner worker stop`; "
                         f"{identity.ENV_SWITCH}=0 turns workers off)\n")
        sys.stderr.flush()


def _isatty(stream: Any) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def holder(lock: Any) -> int | None:
    """The pid of the live worker holding lock file `lock`, or None if no process holds it."""
    import fcntl

    try:
        with open(lock, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                text = f.read().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


STALE_S = 86400.0
"""A worker key's lock and log files untouched this long, with no socket and no live holder, belong
to a code version or environment no longer in use: they are removed."""


def remove_stale(folder: Any, keep: str) -> list[str]:
    """Remove the `.lock` and `.log` files of keys other than `keep` that no worker holds, have no
    socket and were last written over STALE_S ago (each worker leaves two small files per code
    version; its lock must outlive it while its code is current, so that two never start for one
    key). Returns the keys removed."""
    from pathlib import Path

    removed = []
    cutoff = time.time() - STALE_S
    for lock in Path(folder).glob("*.lock"):
        key = lock.stem
        if key == keep or lock.with_suffix(".sock").exists():
            continue
        try:
            if lock.stat().st_mtime > cutoff or holder(lock) is not None:
                continue
            log = lock.with_suffix(".log")
            if log.exists() and log.stat().st_mtime > cutoff:
                continue
            lock.unlink()
            log.unlink(missing_ok=True)
        except OSError:
            continue
        removed.append(key)
    return removed


def _running_workers(folder: Any) -> set[str]:
    """Names of the lock files in `folder` that a live worker holds (a lock dies with its process)."""
    return {path.name for path in folder.glob("*.lock") if holder(path) is not None}


def wait_until_ready(worker_key: str, timeout_s: float,
                     environ: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """The pid of the worker for `worker_key` once it accepts commands, or None after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = query(identity.socket_path(worker_key, environ), "status")
        if status is not None and isinstance(status.get("pid"), int):
            return int(status["pid"])
        time.sleep(0.05)
    return None


def wait_while_building(path: Any, timeout_s: float) -> None:
    """Until the worker at `path` builds no kernel in the background (its commands are then timed,
    or handed over, without a build's tracing holding its GIL), it is gone, or `timeout_s` passed.
    A worker killed without cleaning up leaves its socket behind but not its lock: that is gone too."""
    from pathlib import Path

    lock = Path(path).with_suffix(".lock")
    deadline = time.monotonic() + timeout_s
    while os.path.exists(path) and lock.exists() and holder(lock) is not None and time.monotonic() < deadline:
        state = query(path, "status")
        if state is not None and not state.get("building_kernels"):
            return
        time.sleep(0.5)


def query(path: Any, op: str) -> dict[str, Any] | None:
    """Ask the worker at `path` for its status, or to stop; None if it does not answer."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(_ready_wait())
    try:
        with conn:
            conn.connect(str(path))
            protocol.receive(conn)
            conn.settimeout(5.0)
            protocol.send(conn, {"op": op})
            reply, _ = protocol.receive(conn)
            return reply
    except (protocol.ProtocolError, OSError):
        return None
