"""Which resident worker may answer a command, and where it listens.

A worker is a long-lived `planner` process that has imported JAX and the CLI and holds its compiled
kernels in memory; a command it answers skips ~1.2 s of start-up. It answers only for the code,
interpreter and start-up environment it was started with: anything read once at import (the planner's
files and bundled catalogs, installed packages, JAX/XLA flags, the kernel cache folder) goes into
its key, so an edited source file or a different `XLA_FLAGS` finds no worker and runs directly.
Everything a command reads at run time (arguments, working folder, the rest of the environment,
the terminal) travels with each request.

Imports here stay light (no JAX, no Typer): the client runs them before anything else.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

ENV_SWITCH = "PLANNER_WORKER"
"""`0`, `off`, `no` or `false`: never use or start a resident worker. `1`, `on`, `yes` or `true`:
a command that finds none starts one even without a terminal. Unset: started from a terminal only
(a script or a test harness uses a running worker but never leaves one behind)."""
MAX_WORKERS = 2
"""Workers a command may start beside those running (one per code version or start-up
environment: a second kernel cache folder is a second worker; ~550 MB each)."""
ENV_DIR = "PLANNER_WORKER_DIR"
"""Where workers put their sockets (default `$XDG_RUNTIME_DIR/planner`, else `/tmp/planner-<uid>`)."""
ENV_IDLE = "PLANNER_WORKER_IDLE_S"
"""Seconds a worker waits for its next command before it exits (default IDLE_S)."""
IDLE_S = 600.0
ENV_WAIT = "PLANNER_WORKER_WAIT_S"
"""Seconds a command waits for a worker to accept it before running itself (default WAIT_S)."""
WAIT_S = 0.5
"""A busy worker's command may take seconds (`whatif`); running directly (~1.8 s warm) beats waiting
longer. A machine loaded by other work may need more: a worker slowed past the wait leaves the
command to run in its own process (correct, only slower)."""

RESIDENT_COMMANDS = frozenset({"solve", "whatif", "sweep", "project", "eval"})
"""Commands a worker answers: each imports JAX and runs compiled kernels, and none takes over the
terminal (the TUI) or times processes (bench)."""

# Global options of `planner` that take a value (`planner --catalog X solve ...`).
_VALUED_GLOBAL_OPTIONS = ("--catalog", "--price")

# Environment read when modules are imported or JAX starts: a worker started under other values
# would not answer as a fresh process would. (`PLANNER_TIMINGS*` travel with each request instead.)
# The locale counts too: Python fixes its default file encoding at start-up; and so do the variables
# Typer reads when it is imported (its help and usage errors: width, colour).
_STARTUP_ENV_PREFIXES = ("JAX_", "XLA_", "PYTHON", "OMP_", "MKL_", "OPENBLAS_", "NPY_", "LD_",
                         "PLANNER_CACHE_", "LC_", "LANG", "TZ", "TYPER_", "_TYPER_", "TERMINAL_WIDTH",
                         "GITHUB_ACTIONS", "FORCE_COLOR", "PY_COLORS")
_PACKAGE = Path(__file__).resolve().parent.parent


def enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Workers are used unless switched off, on Linux only (the hand-over passes file descriptors
    and checks the peer's user id, both Linux-specific as written)."""
    value = environ.get(ENV_SWITCH, "").strip().lower()
    return sys.platform == "linux" and value not in {"0", "off", "no", "false"}


def auto_start(environ: dict[str, str] | os._Environ[str], at_terminal: bool) -> bool:
    """Whether a command that found no worker starts one (see ENV_SWITCH)."""
    value = environ.get(ENV_SWITCH, "").strip().lower()
    if not enabled(environ):
        return False
    return value in {"1", "on", "yes", "true"} or at_terminal


def command_of(argv: list[str]) -> str | None:
    """The subcommand of a `planner` argument list, past the global options; None if there is none."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _VALUED_GLOBAL_OPTIONS:
            i += 2
        elif word.startswith("-"):
            i += 1
        else:
            return word
    return None


def routable(argv: list[str]) -> bool:
    return command_of(argv) in RESIDENT_COMMANDS


def wait_seconds(environ: dict[str, str] | os._Environ[str] = os.environ) -> float:
    """How long a command waits for a worker to accept it (ENV_WAIT; WAIT_S if unset or not a
    positive number)."""
    return _positive(environ.get(ENV_WAIT), WAIT_S)


def idle_seconds(environ: dict[str, str] | os._Environ[str] = os.environ) -> float:
    return _positive(environ.get(ENV_IDLE), IDLE_S)


def _positive(text: str | None, default: float) -> float:
    try:
        value = float(text) if text is not None else default
    except ValueError:
        return default
    return value if value > 0 and value != float("inf") else default


def runtime_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    explicit = environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    xdg = environ.get("XDG_RUNTIME_DIR")
    return Path(xdg) / "planner" if xdg else Path("/tmp") / f"planner-{os.getuid()}"


def private_dir(path: Path) -> bool:
    """Create `path` (mode 0700) if needed; True only if it is a real folder that this user owns and
    nobody else can open: a socket there cannot be reached, or replaced, by another user."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _tree_stats(root: Path, digest: hashlib._Hash) -> None:
    """Every file under `root` (caches aside) by path, size and modification time: an edit, an
    added module or a changed catalog changes the key. Stats, not contents: ~150 files in ~2 ms."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name == "__pycache__" or entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=True):
                stack.append(Path(entry.path))
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            digest.update(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())


def key(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The identity a worker must share with a command it answers (see the module docstring).
    Installed packages count through the modification times of the package folders on `sys.path`
    (installing, upgrading or removing a package adds or removes entries there); the script's own
    folder or working folder on `sys.path` does not count."""
    digest = hashlib.sha256()
    # the interpreter by its real file and its environment (`.venv/bin/python` and the console
    # script's `.venv/bin/python3` are one interpreter)
    digest.update(f"{os.path.realpath(sys.executable)}\0{sys.prefix}\0{sys.version}\0{os.getuid()}\n".encode())
    for name in sorted(environ):
        if name.startswith(_STARTUP_ENV_PREFIXES):
            digest.update(f"env {name}={environ[name]}\n".encode())
    for entry in sys.path:
        if not entry.endswith(("site-packages", "dist-packages")):
            continue
        try:
            digest.update(f"path {entry} {os.stat(entry).st_mtime_ns}\n".encode())
        except OSError:
            continue
    _tree_stats(_PACKAGE, digest)
    for bundled in (_PACKAGE / "_bundled" / "hardware", _PACKAGE.parent / "hardware"):
        if bundled.is_dir():  # the catalog folder `planner.paths.hardware_dir` reads once per process
            _tree_stats(bundled, digest)
            break
    return digest.hexdigest()[:24]


def package_root() -> Path:
    """The folder `planner` is imported from (a worker is started with it first on `sys.path`, so
    that it runs this copy of the code even from another working folder)."""
    return _PACKAGE.parent


SOCKET_PATH_MAX = 104  # bytes a Unix socket's path may have (108 on Linux, 104 on BSDs, less a NUL)


def socket_path(worker_key: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    return runtime_dir(environ) / f"{worker_key}.sock"


def usable_socket_path(worker_key: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> Path | None:
    """The worker's socket path, or None when the folder's path is too long for a Unix socket (then
    no worker is used or started: commands run as before)."""
    path = socket_path(worker_key, environ)
    return path if len(os.fsencode(path)) < SOCKET_PATH_MAX else None


def lock_path(worker_key: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    return runtime_dir(environ) / f"{worker_key}.lock"


def log_path(worker_key: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    return runtime_dir(environ) / f"{worker_key}.log"
