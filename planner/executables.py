"""Compiled search kernels kept on disk as serialized XLA executables.

A warm process then skips tracing, lowering and compiling: it hashes everything that decides the
compiled program into a key and loads the executable stored under it. The key is derived, never
maintained by hand: the kernel's name and static arguments, the pytree structure (field names
included), shape, dtype and sharding of every input, the source of the code that is traced (the
cost model and the search kernels), and the identity of JAX, XLA, the devices and the host CPU.
A change to any of them (a new grid axis, a new `Hw` field, an edited equation) is a new key, so a
stale entry is never found. A file that fails its checksum, belongs to another key or does not
load is ignored and rebuilt: the cache can cost time, never an answer.

Files live in `PLANNER_CACHE_DIR` (default `~/.cache/planner`) under `kernels/`; the oldest are
removed beyond `KEEP` entries (`PLANNER_CACHE_KEEP` overrides). Entries are pickles, trusted like any file in the user's own cache.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import pickle
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from planner import replicated, timing

FORMAT = 3  # the layout of an entry file (below); part of the key
KEEP = 48  # entries kept (~2-3 MB each): every grid shape the TUI met recently stays warm (a shape it
# re-runs takes two: its one-shot and its interactive kernel)


def _keep() -> int:
    """Entries kept: KEEP, or `PLANNER_CACHE_KEEP` (the test suite meets ~100 shapes; at 48 it
    evicted kernels it needed again and compiled them twice)."""
    try:
        return max(int(os.environ.get("PLANNER_CACHE_KEEP", KEEP)), 1)
    except ValueError:
        return KEEP
_MAGIC = b"planner-executable\n"
_PACKAGE = Path(__file__).resolve().parent
# The code traced into the kernels. A module that a kernel calls must be under one of these, so
# that editing it changes the key (everything else reaches a kernel only as array inputs).
TRACED_SOURCES = ("model", "search.py", "disagg_search.py")

_RECENT = "recent.txt"  # entries the last process used: the next one starts loading them early
_memo: dict[str, Any] = {}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_prefetched: dict[Path, tuple[threading.Thread, list[Any]]] = {}
_used: list[str] = []


def cache_root() -> Path:
    """Where the planner keeps what it can rebuild: `PLANNER_CACHE_DIR` or `~/.cache/planner`."""
    env = os.environ.get("PLANNER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "planner"


@cache
def source_hash() -> str:
    """Hash of the traced source files (paths and bytes), so a model change invalidates entries."""
    digest = hashlib.sha256()
    for entry in TRACED_SOURCES:
        path = _PACKAGE / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(_PACKAGE).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _cpu_identity() -> str:
    """The host CPU's model and feature flags: XLA compiles CPU code for the features it finds, so
    an executable copied to an older CPU must not load there."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [line for line in f.read(65536).splitlines() if line.startswith(("model name", "flags"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        import platform

        return f"{platform.machine()} {platform.processor()}"


@cache
def _runtime_identity() -> str:
    import jax
    import jaxlib

    devices = jax.devices()
    client = devices[0].client
    return "\n".join((
        f"format {FORMAT}", sys.version, jax.__version__, jaxlib.__version__, client.platform,
        client.platform_version, ",".join(f"{d.id}:{d.device_kind}" for d in devices),
        os.environ.get("XLA_FLAGS", ""), f"x64 {jax.config.jax_enable_x64}", _cpu_identity(),
    ))


def signature(args: Sequence[Any]) -> str:
    """Pytree structure with field names, and each leaf's abstract type (shape, dtype, weak type)
    and sharding: the inputs' part of the key."""
    import jax

    leaves, treedef = jax.tree_util.tree_flatten_with_path(tuple(args))
    parts = [str(treedef)]
    for path, leaf in leaves:
        sharding = str(leaf.sharding) if isinstance(leaf, jax.Array) else "host"
        parts.append(f"{jax.tree_util.keystr(path)}: {jax.typeof(leaf)} @ {sharding}")
    return "\n".join(parts)


def key(name: str, args: Sequence[Any], interactive: bool = False) -> str:
    """The entry's key; `interactive` kernels are compiled with other options (`compiler_options`)."""
    options = repr(sorted(compiler_options(interactive).items()))
    text = "\n--\n".join((name, signature(args), source_hash(), _runtime_identity(), options))
    return hashlib.sha256(text.encode()).hexdigest()


_keys: dict[Any, str] = {}


def _key_seen(name: str, args: Sequence[Any], interactive: bool = False) -> str:
    """`key`, remembered per process under a cheap summary of the same facts (an interactive
    session re-solves often: the full key costs milliseconds, this microseconds)."""
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(tuple(args))
    summary = (name, interactive, treedef, tuple((type(x), getattr(x, "shape", ()), getattr(x, "dtype", None),
                                                  getattr(x, "weak_type", None), getattr(x, "sharding", None)) for x in leaves))
    found = _keys.get(summary)
    if found is None:
        found = _keys[summary] = key(name, args, interactive)
    return found


def compiled(name: str, make: Callable[[], Any], args: Sequence[Any],
             meanwhile: Callable[[], None] | None = None) -> Any:
    """The compiled executable of `make()` (a `jax.jit` function) for these arguments' types:
    from this process's memo, else from disk, else traced, lowered, compiled and stored.

    `name` must distinguish everything `make` closes over (static arguments). `meanwhile` (other
    work to start in a thread) is called once, when it competes least with this kernel: before
    loading it, or, if it has to be built, after tracing and lowering (both hold the GIL), while
    XLA compiles.

    Inside `interactive_kernels()` the kernel compiled for running many times is taken where it
    is ready (memo or disk, not being built); until it is, the one-shot kernel answers, and once it
    has been asked for in two rounds (`new_round`: two edits of the TUI) the other is built in a
    background thread (`_upgrade`): a call never waits for the slower compile, and a kernel of one
    round is never compiled twice."""
    if _interactive and _options_differ():
        fast_key = _key_seen(name, args, True)
        fast = _ready(fast_key, name, make, args)
        if fast is not None:
            if meanwhile is not None:
                meanwhile()
            return fast
        k = _key_seen(name, args)
        exe = _memo_or_load(name, make, args, k, meanwhile, False)
        with _locks_guard:
            rounds = _rounds.setdefault(k, set())
            rounds.add(_round)
            again = len(rounds) >= 2
        if again:
            _upgrade(name, make, args, fast_key)
        return exe
    return _memo_or_load(name, make, args, _key_seen(name, args), meanwhile, False)


def _ready(k: str, name: str, make: Callable[[], Any], args: Sequence[Any]) -> Any | None:
    """The interactive kernel under key `k` from the memo or, if this process is not building it,
    from disk; None otherwise. It never builds: a missing, damaged or unrunnable entry leaves the
    one-shot kernel in use (a damaged file is removed, and rebuilt in the background later)."""
    found = _memo.get(k)
    if found is not None:
        return found
    building = _upgrades.get(k)
    if (building is not None and building.is_alive()) or not _entry_path(name, k).exists():
        return None  # not on disk, or being built here (an entry another process stored meanwhile
        # is left for later: this build holds the key's lock until it ends)
    with _lock_for(k):
        found = _memo.get(k)
        if found is None:
            path = _entry_path(name, k)
            with timing.phase(f"load {name}"):
                loaded = _load(path, k)
            if loaded is None:
                return None
            one_shot = _key_seen(name, args)
            found = _memo[k] = _Checked(loaded, path, lambda: _memo_or_load(name, make, args, one_shot, None, False))
    return found


def _memo_or_load(name: str, make: Callable[[], Any], args: Sequence[Any], k: str,
                  meanwhile: Callable[[], None] | None, interactive: bool) -> Any:
    found = _memo.get(k)
    if found is None:
        with _lock_for(k):  # two threads asking for one kernel compile it once
            found = _memo.get(k)
            if found is None:
                found = _load_or_build(name, make, args, k, meanwhile, interactive)
                meanwhile = None
                _memo[k] = found
    if meanwhile is not None:
        meanwhile()
    return found


_noting = True  # whether kernels loaded or built now are noted for the next process's `prefetch`


@contextlib.contextmanager
def uses_not_noted() -> Iterator[None]:
    """Inside, the kernels this process loads or builds are not noted for the next process's
    `prefetch`, which serves `planner solve`: a `whatif`, `sweep` or `project` runs many grid shapes,
    and the solve after it started loading their kernels instead of its own (~0.9 s more CPU); an
    `eval` runs a kernel a solve never needs."""
    global _noting
    before, _noting = _noting, False
    try:
        yield
    finally:
        _noting = before


def _lock_for(k: str) -> threading.Lock:
    """The lock of one kernel key: one thread loads or builds it, the others wait for that."""
    with _locks_guard:
        return _locks.setdefault(k, threading.Lock())


def _entry_path(name: str, k: str) -> Path:
    return cache_root() / "kernels" / f"{name}-{k[:32]}.bin"


def _load_or_build(name: str, make: Callable[[], Any], args: Sequence[Any], k: str,
                   meanwhile: Callable[[], None] | None, interactive: bool = False) -> Any:
    path = _entry_path(name, k)
    if meanwhile is not None and (path in _prefetched or path.exists()):
        meanwhile()
        meanwhile = None
    with timing.phase(f"load {name}"):
        found = _load(path, k)
    if found is not None:
        found = _Checked(found, path, lambda: _build(name, make, args, path, k, None, interactive))
    else:
        found = _build(name, make, args, path, k, meanwhile, interactive)
    if _noting and not interactive:  # `prefetch` serves `planner solve`, which runs the one-shot kernels
        _note_use(path)
    return found


def _build(name: str, make: Callable[[], Any], args: Sequence[Any], path: Path, k: str,
           meanwhile: Callable[[], None] | None, interactive: bool = False) -> Any:
    with timing.phase(f"trace+lower {name}"):
        kernel = make()
        lowered = replicated.lower(kernel, tuple(args)) if isinstance(kernel, replicated.Spec) else kernel.trace(*args).lower()
    if meanwhile is not None:
        meanwhile()
    exe = _compile(name, lowered, interactive)
    _store_in_background(name, path, k, exe)
    return exe


_stores: list[threading.Thread] = []


def _store_in_background(name: str, path: Path, k: str, exe: Any) -> None:
    """Store a kernel just compiled without making its caller wait: serializing the row kernel
    takes ~0.2 s, which a cold `planner solve` spent before its first run. The process waits for
    these writes before it ends (`wait_for_stores`, at exit), so the next one finds the entry."""
    def store() -> None:
        with timing.phase(f"store {name}"):
            _store(path, k, exe)

    thread = threading.Thread(target=store, name=f"planner-store-{name}", daemon=True)
    with _locks_guard:
        _stores[:] = [t for t in _stores if t.is_alive()]  # a TUI or a worker compiles for hours
        _stores.append(thread)
        thread.start()  # inside the lock: another caller's pruning must not drop it before it runs


def wait_for_stores() -> None:
    """Wait until every kernel compiled so far is on disk (at exit; tests, before they look)."""
    while True:
        with _locks_guard:
            if not _stores:
                return
            thread = _stores.pop()
        thread.join()


atexit.register(wait_for_stores)  # `planner.__main__` skips the interpreter's teardown, not atexit


_interactive = False
_round = 0  # `new_round`'s count
_rounds: dict[str, set[int]] = {}  # one-shot kernels' key -> the rounds that asked for it (interactive)
_upgrades: dict[str, threading.Thread] = {}


@contextlib.contextmanager
def interactive_kernels(wait_at_exit: bool = False) -> Iterator[None]:
    """Within it, `compiled` prefers the kernels compiled for running many times
    (`CPU_INTERACTIVE_OPTIONS`): the TUI re-runs one kernel on every edit, a `planner solve` once.
    `wait_at_exit`: wait for the background builds when the block ends (a caller that returns to
    an interpreter that will shut down: a daemon thread inside XLA's compiler aborts the process
    there; `planner tui` ends through `os._exit` in `planner.__main__`, which does not)."""
    global _interactive
    before, _interactive = _interactive, True
    try:
        yield
    finally:
        _interactive = before
        if wait_at_exit:
            wait_for_upgrades()


def interactive() -> bool:
    """Whether this process runs interactive kernels where they differ (`interactive_kernels`)."""
    return _interactive and _options_differ()


def new_round() -> None:
    """A new request begins (the TUI: an edit's solve). A kernel asked for in two rounds is being
    re-run, so `compiled` builds its interactive version; one solve asks for a kernel more than
    once (a pruned run, then the layouts it skipped), and that alone is not a reason."""
    global _round
    with _locks_guard:
        _round += 1


@cache
def _options_differ() -> bool:
    """Whether an interactive kernel differs from a one-shot one here (CPUs only), with an XLA
    that has the emitter option (an older one would build the same kernel twice; jaxlib 0.10.2 is
    the first measured, on which the MLIR emitters run the search 15 % faster)."""
    import jaxlib

    if compiler_options(True) == compiler_options(False):
        return False
    try:
        version = tuple(int(part) for part in jaxlib.__version__.split(".")[:3])
    except ValueError:
        return False
    return version >= INTERACTIVE_SINCE_JAXLIB


def _upgrade(name: str, make: Callable[[], Any], args: Sequence[Any], k: str) -> None:
    """Build the interactive kernel under key `k` in a background thread; `compiled` takes it from
    the memo once it is there. The build shares the cores with the edits that run meanwhile (XLA
    compiles in its own worker threads, so a lower priority for this thread would not reach it); it
    keeps `args` (the grid's arrays) until it ends. A failure leaves the one-shot kernel in use."""
    with _locks_guard:
        if k in _upgrades or k in _memo:
            return

        def build() -> None:
            with contextlib.suppress(Exception):
                _memo_or_load(name, make, args, k, None, True)

        thread = threading.Thread(target=build, name=f"planner-upgrade-{name}", daemon=True)
        _upgrades[k] = thread
    thread.start()


def upgrades_running() -> int:
    """How many kernels are being built in the background now (a resident worker's status)."""
    return sum(thread.is_alive() for thread in list(_upgrades.values()))


def wait_for_upgrades() -> float:
    """Wait for the background builds `compiled` started, and their stores (`planner bench --tui`
    times the edits after them: the steady state); returns the seconds waited."""
    start = time.perf_counter()
    for thread in list(_upgrades.values()):
        thread.join()
    wait_for_stores()
    return time.perf_counter() - start


class _Checked:
    """An executable loaded from disk whose first call is checked: one that loads but cannot run
    is removed and rebuilt, and the call answered by the rebuilt one (never a crash)."""

    def __init__(self, exe: Any, path: Path, rebuild: Callable[[], Any]) -> None:
        self._exe, self._path, self._rebuild = exe, path, rebuild
        self._checked = False

    def __call__(self, *args: Any) -> Any:
        if self._checked:
            return self._exe(*args)
        import jax

        try:
            out = jax.block_until_ready(self._exe(*args))
        except Exception:  # noqa: BLE001 - a bad entry: rebuild it (a real error recurs below)
            _remove(self._path)
            self._exe = self._rebuild()
            out = self._exe(*args)
        self._checked = True
        return out


def prefetch() -> None:
    """Start loading the entries the previous process used, in background threads, so that they
    load while this one is still importing and building its grid. `compiled` takes such an
    entry only if its stored key is the one it needs; otherwise the work is just wasted."""
    folder = cache_root() / "kernels"
    try:
        names = (folder / _RECENT).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return
    for name in names[:4]:
        path = folder / name
        if path.suffix != ".bin" or path.name != name or path in _prefetched:
            continue
        box: list[Any] = []
        thread = threading.Thread(target=lambda p=path, b=box: b.append(_read(p)), daemon=True,
                                  name=f"planner-prefetch-{name}")
        _prefetched[path] = (thread, box)
        thread.start()


def wait_for_prefetch() -> None:
    """Until the entries `prefetch` started loading are loaded (a resident worker's warm-up)."""
    for thread, _box in list(_prefetched.values()):
        thread.join()


def _note_use(path: Path) -> None:
    """Remember the entries this process used (for `prefetch` in the next one); best effort."""
    if path.name in _used:
        return
    _used.append(path.name)
    del _used[:-4]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # its kernel may still be on its way there
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(_used) + "\n")
        os.replace(tmp, path.parent / _RECENT)
    except OSError:
        return


def _jax_cache_in_use() -> bool:
    """Whether JAX's own persistent compilation cache is on in this process. An executable it
    loaded serializes without its kernels (it then fails with "Function ... not found"), so such
    a process never stores entries."""
    import jax

    return bool(jax.config.jax_compilation_cache_dir) and bool(jax.config.jax_enable_compilation_cache)


CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
"""XLA options for the kernels a command runs once or a few times (`planner solve`, `whatif`, ...).
XLA's MLIR fusion emitters (its default) take longer to compile the search kernels than the classic
elemental emitters: a cold `planner solve` goes 7.7-7.9 -> 10.0-10.3 s, and a warm one does not
move (1.42-1.51 s classic, 1.38-1.49 s MLIR; 2 cores, default scenario, 2026-12-02). Part of every key."""

CPU_INTERACTIVE_OPTIONS = {"xla_cpu_use_fusion_emitters": True}
"""XLA options for the kernels the TUI re-runs on every edit (`interactive_kernels`). The MLIR
fusion emitters vectorise `log`/`exp`: the TUI's pruned table stage runs 0.175 -> 0.150 s (median
of 15 edits, jaxlib 0.10.2, 2 cores AVX-512, 2026-12-02) and every bundled scenario's answer is
byte-identical; they cost ~2.3 s more to compile, paid in a background thread (`_upgrade`).
Earlier jaxlibs made no faster kernel with them (`INTERACTIVE_SINCE_JAXLIB`)."""

INTERACTIVE_SINCE_JAXLIB = (0, 10, 2)


def compiler_options(interactive: bool = False) -> dict[str, Any]:
    import jax

    if jax.default_backend() != "cpu":
        return {}
    return dict(CPU_INTERACTIVE_OPTIONS if interactive else CPU_COMPILER_OPTIONS)


def _compile(name: str, lowered: Any, interactive: bool = False) -> Any:
    with timing.phase(f"compile {name}"):
        options = compiler_options(interactive)
        if options:
            try:
                return lowered.compile(compiler_options=options)
            except Exception:  # noqa: BLE001 - an XLA without these options: compile as it comes
                pass
        return lowered.compile()


def _device_ids(exe: Any) -> list[int]:
    ids: set[int] = set()
    for sharding in (*_leaves(exe.input_shardings), *_leaves(exe.output_shardings)):
        ids.update(d.id for d in sharding.device_set)
    return sorted(ids)


def _leaves(tree: Any) -> list[Any]:
    import jax

    return jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))


def _load(path: Path, k: str) -> Any | None:
    """The executable stored under key `k`, or None (missing, corrupt, foreign or unloadable)."""
    prefetched = _prefetched.pop(path, None)
    if prefetched is not None:
        thread, box = prefetched
        thread.join()
        read = box[0] if box else None
    else:
        read = _read(path)
    if read is None:
        return None
    stored_key, exe = read
    if stored_key != k:
        _remove(path)  # filed under the wrong name: never trusted, rebuilt
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: kept by the pruning in _store
    return exe


def _read(path: Path) -> tuple[str, Any] | None:
    """(stored key, loaded executable) of an entry file, or None if it is missing or damaged."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        head, digest, payload = blob[:len(_MAGIC)], blob[len(_MAGIC):len(_MAGIC) + 64], blob[len(_MAGIC) + 65:]
        if head != _MAGIC or digest != hashlib.sha256(payload).hexdigest().encode():
            raise ValueError("checksum")  # checked before XLA sees a byte: a torn file never loads
        stored_key, ids, kind, state = pickle.loads(payload)
        import jax
        from jax.experimental.serialize_executable import deserialize_and_load

        by_id = {d.id: d for d in jax.devices()}
        devices = [by_id[i] for i in ids]
        if kind == "replicas":
            return stored_key, replicated.from_state(state, devices)
        serialized, in_tree, out_tree = state
        return stored_key, deserialize_and_load(serialized, in_tree, out_tree, execution_devices=devices)
    except Exception:  # noqa: BLE001 - any failure means: rebuild (and replace the bad file)
        _remove(path)
        return None


def _store(path: Path, k: str, exe: Any) -> None:
    """Write the entry atomically (a reader sees the old file or the whole new one); best effort:
    an unwritable cache only costs the next process a compile."""
    if _jax_cache_in_use():
        return
    try:
        from jax.experimental.serialize_executable import serialize

        if isinstance(exe, replicated.Replicated):
            ids, kind, state = [d.id for d in exe.devices], "replicas", exe.state()
        else:
            ids, kind, state = _device_ids(exe), "jit", serialize(exe)
        payload = pickle.dumps((k, ids, kind, state), protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
            os.replace(tmp, path)
        except BaseException:
            _remove(Path(tmp))
            raise
        _prune(path.parent)
    except Exception:  # noqa: BLE001 - see docstring
        return


def _prune(folder: Path) -> None:
    entries = []
    for p in folder.glob("*.bin"):
        try:
            entries.append((p.stat().st_mtime, p))
        except OSError:
            continue
    entries.sort(reverse=True)
    for _, p in entries[_keep():]:
        _remove(p)
    cutoff = time.time() - 3600  # temp files of a process killed mid-write
    for p in folder.glob(".tmp-*"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except OSError:
            continue


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def forget() -> None:
    """Drop this process's memo and prefetches (tests: force the next call to go to disk), after
    waiting for the background builds of interactive kernels and every store."""
    for thread, _ in _prefetched.values():
        thread.join()
    wait_for_upgrades()  # and the stores
    _upgrades.clear()
    _rounds.clear()
    _prefetched.clear()
    _memo.clear()
    _keys.clear()
    _used.clear()
