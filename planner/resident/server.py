"""The resident worker: one process that imports JAX and the CLI once, keeps its compiled kernels in
memory, and runs `planner` commands for other processes of the same user.

It answers one command at a time, in its main thread, exactly as a fresh process would: the
command's own stdin, stdout and stderr (passed as file descriptors), working folder, environment
and arguments replace the worker's for the run and are put back after it. A command that arrives
while it is busy is not queued: the caller runs it itself. It exits after `PLANNER_WORKER_IDLE_S`
seconds without a command, when its code or socket changes under it, or on `planner worker stop`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from planner.resident import identity, protocol

HANDSHAKE_S = 5.0  # a caller that connected but sends nothing for this long is dropped
CHECK_S = 30.0  # how often an idle worker checks that its code and socket are still current


WARM_UP_COMMANDS = ("solve",)
"""A worker started after one of these runs it once more, its output discarded: the first command it
answers then finds every kernel loaded and run once (a first run pays ~0.4 s of one-time set-up)."""
_UNSAFE_TO_REPEAT = ("--verify", "--verify-duration", "--workers")  # a simulation: seconds, not a warm-up


def warm_up(repeat: dict[str, Any] | None = None) -> None:
    """What every command would otherwise import or load first: JAX and its devices, the CLI and
    the search, and the kernels the previous process used (read from the kernel cache); then the
    command that started the worker (`repeat`: its argv and working folder), if it is safe to repeat."""
    import jax

    jax.devices()
    from planner import executables

    executables.prefetch()
    import planner.cli  # noqa: F401  (registers every command)
    import planner.disagg_solve  # noqa: F401
    import planner.plans  # noqa: F401
    import planner.search  # noqa: F401
    import planner.solve_report  # noqa: F401

    executables.wait_for_prefetch()
    if repeat is None:
        return
    argv = [str(a) for a in repeat.get("argv") or []]
    if identity.command_of(argv) not in WARM_UP_COMMANDS or any(a.split("=")[0] in _UNSAFE_TO_REPEAT for a in argv):
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANNER_TIMINGS")}
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        run_command({"argv": argv, "cwd": repeat.get("cwd"), "env": env}, [devnull, devnull, devnull])
    finally:
        os.close(devnull)


class Worker:
    def __init__(self, worker_key: str, listener: socket.socket, path: Path) -> None:
        self.key = worker_key
        self.listener = listener
        self.path = path
        self.inode = os.stat(path).st_ino
        self.started = time.time()
        self.served = 0
        self.last = time.monotonic()
        self.stopping = False

    def serve(self) -> None:
        idle = identity.idle_seconds()
        next_check = time.monotonic() + CHECK_S
        while not self.stopping:
            now = time.monotonic()
            if now - self.last >= idle:
                return
            if now >= next_check:
                if not self._still_current():
                    return
                _release_memory()  # what a kernel built in the background meanwhile left behind
                next_check = now + CHECK_S
            try:
                ready, _, _ = select.select([self.listener], [], [], min(idle - (now - self.last), CHECK_S))
                if ready:
                    self._accept()
            except KeyboardInterrupt:  # defensive: SIGINT only raises inside commands
                continue

    def _still_current(self) -> bool:
        """The socket file is still ours and the code still has the key we were started with."""
        try:
            if os.stat(self.path).st_ino != self.inode:
                return False
        except OSError:
            return False
        return identity.key() == self.key

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            if not _same_user(conn):
                return
            conn.settimeout(HANDSHAKE_S)
            _forget_interrupt()  # meant for an earlier caller: this one cannot have sent it yet
            try:
                protocol.send(conn, {"pid": os.getpid(), "key": self.key})
                request, fds = protocol.receive(conn, max_fds=3)
            except (protocol.ProtocolError, OSError):
                return  # the caller went away (it found us busy and ran the command itself)
            conn.settimeout(None)
            op = request.get("op")
            with contextlib.suppress(OSError):
                if op == "run" and len(fds) == 3:
                    code = run_command(request, fds)
                    self.served += 1
                    protocol.send(conn, {"exit": code})
                elif op == "status":
                    protocol.send(conn, self.status())
                elif op == "stop":
                    self.stopping = True
                    protocol.send(conn, {"stopping": True})
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if op == "run":
            _release_memory()  # after the reply: the caller does not wait for it
            self.last = time.monotonic()  # idle means no command: a status query does not count

    def status(self) -> dict[str, Any]:
        from planner import executables

        return {"pid": os.getpid(), "key": self.key, "started": self.started, "served": self.served,
                "idle_s": round(time.monotonic() - self.last, 1), "rss_mb": _rss_mb(),
                "building_kernels": executables.upgrades_running()}


def _release_memory() -> None:
    """Give freed heap pages back to the system (glibc keeps them by default): a command's arrays
    and a kernel build's compiler memory would otherwise stay in the worker's resident size."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _same_user(conn: socket.socket) -> bool:
    """Only the worker's own user may hand it a command (the folder is private too)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return float("nan")


def _stream(fd: int, spec: dict[str, Any], mode: str) -> io.TextIOWrapper:
    """A text stream on one of the caller's descriptors, encoded and buffered as the caller's was."""
    raw = open(fd, mode + "b", closefd=False)  # noqa: SIM115 (the caller's descriptor, left open)
    return io.TextIOWrapper(raw, encoding=spec.get("encoding") or "utf-8", errors=spec.get("errors") or "strict",
                            newline=None if mode == "r" else "\n", line_buffering=bool(spec.get("line_buffering")))


def run_command(request: dict[str, Any], fds: list[int]) -> int:
    """Run one `planner` command as the caller's process would, and return its exit code."""
    from planner import executables, timing

    global _in_command
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_argv = sys.argv
    saved_umask = os.umask(0o022)
    code: int = protocol.INTERNAL_ERROR
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        streams = request.get("streams") or [{}, {}, {}]
        sys.stdin = _stream(0, streams[0], "r")
        sys.stdout = _stream(1, streams[1], "w")
        sys.stderr = _stream(2, streams[2], "w")
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request.get("env") or {}).items()})
        os.umask(int(request.get("umask", saved_umask)))
        os.chdir(str(request.get("cwd") or "/"))
        argv = [str(a) for a in request.get("argv") or []]
        sys.argv = ["planner", *argv]
        timing.restart(float(request.get("started") or time.time()))
        timing.mark("worker answers")
        executables.new_round()
        cpu = os.times()
        _in_command = True
        try:
            code = _cli(argv)
        finally:
            _in_command = False
            now = os.times()
            timing.PHASES["worker CPU"] = now.user + now.system - cpu.user - cpu.system
    except BaseException as exc:  # the worker must survive whatever a command does
        with contextlib.suppress(Exception):
            sys.stderr.write(f"internal error: resident worker: {type(exc).__name__}: {exc}\n")
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(Exception):
            timing.write()
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        os.umask(saved_umask)
        os.environ.clear()
        os.environ.update(saved_env)
        with contextlib.suppress(OSError):
            os.chdir(saved_cwd)
        _detach_streams()
    return code


def _cli(argv: list[str]) -> int:
    """The command's exit code; the caller's Ctrl-C (forwarded as SIGINT) interrupts it, also one that
    came between the hand-over and this start."""
    from planner.cli import main

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if _interrupt_pending:
            raise KeyboardInterrupt
        main(argv)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        sys.stderr.write(f"{exc.code}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        return 130
    finally:
        signal.signal(signal.SIGINT, _remember_interrupt)  # one that comes late must not hit the worker
    return 0


_log_fd: int | None = None  # the worker's own stderr (its log), kept aside while commands use fd 2
_in_command = False
_interrupt_pending = False  # a caller's Ctrl-C that arrived before its command started


def _remember_interrupt(_signum: int, _frame: Any) -> None:
    """SIGINT outside a command: the caller's command is being handed over (or is over); keep it
    for the command, which then stops at once (a new caller's hand-over clears it)."""
    global _interrupt_pending
    _interrupt_pending = True


def _forget_interrupt() -> None:
    global _interrupt_pending
    _interrupt_pending = False


def _detach_streams() -> None:
    """Point descriptors 0 and 1 back at /dev/null and 2 at the worker's log, so that the caller's
    terminal or pipe is released (a pipe's reader sees end-of-file) as soon as its command ends."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(devnull if _log_fd is None else _log_fd, 2)
    finally:
        os.close(devnull)


def _terminate(worker: Worker) -> None:
    """SIGTERM: stop at once when idle; after the command in hand when busy."""

    def handler(_signum: int, _frame: Any) -> None:
        worker.stopping = True
        if not _in_command:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def main(expected_key: str | None = None, repeat: dict[str, Any] | None = None) -> int:
    """Start a worker for this process's identity, unless one is already starting or running
    (`repeat`: the command that started it, see `warm_up`)."""
    if not identity.enabled():
        return 0
    worker_key = identity.key()
    if expected_key is not None and worker_key != expected_key:
        print(f"worker key {worker_key} differs from the caller's {expected_key}: not started", file=sys.stderr)
        return 0
    folder = identity.runtime_dir()
    if identity.usable_socket_path(worker_key) is None:
        print(f"{folder}: too long a path for a Unix socket; no worker started", file=sys.stderr)
        return 0
    if not identity.private_dir(folder):
        print(f"{folder}: not a private folder of this user; no worker started", file=sys.stderr)
        return 0
    lock = open(identity.lock_path(worker_key), "a")  # noqa: SIM115 (held for the worker's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another worker for this key is starting or running
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")  # `planner worker stop` signals a worker too busy to answer
    lock.flush()
    from planner.resident import client

    client.remove_stale(folder, worker_key)  # past code versions' lock and log files
    from planner import executables

    global _log_fd
    _log_fd = os.dup(2)  # the log, where fd 2 returns after each command (the warm-up's too)
    gc.disable()
    with executables.interactive_kernels():
        warm_up(repeat)
    gc.collect()
    gc.freeze()
    gc.enable()
    path = identity.socket_path(worker_key)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead worker's: we hold the lock, so nobody else listens there
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(8)
    _detach_streams()
    worker = Worker(worker_key, listener, path)
    signal.signal(signal.SIGINT, _remember_interrupt)  # raised only while a command runs (run_command)
    _terminate(worker)
    try:
        with executables.interactive_kernels():
            worker.serve()
    finally:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == worker.inode:
                path.unlink()
        listener.close()
    executables.wait_for_stores()  # kernels compiled so far reach the disk for the next process
    # A kernel build may still run in a background thread: the interpreter's teardown would abort
    # inside XLA's compiler, so the process ends here (the log is unbuffered; nothing else to flush).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))  # `python -m planner.resident.server [KEY]`
