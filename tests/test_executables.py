"""The executable cache: a hit gives the same answer as a compile, and a bad entry costs time, never
an answer (corrupt, truncated, foreign or stale files are rebuilt)."""

from __future__ import annotations

import sys
import threading
import time
from typing import NamedTuple

import jax
import numpy as np
import pytest

from planner import executables, paths
from planner.catalog import load_catalog
from planner.grid import build_grid
from planner.search import _row_kernel, in_grid_order, model_flags, row_kernel_inputs, run_grid
from planner.startup_bench import BREAKDOWN, startup_breakdown


class Pair(NamedTuple):
    a: np.ndarray
    b: np.ndarray


def _affine():
    return jax.jit(lambda p, x: {"y": p.a * x + p.b})


ARGS = (Pair(np.arange(4, dtype=np.float32), np.full(4, 0.5, np.float32)), np.float32(3.0))
EXPECTED = np.array([0.5, 3.5, 6.5, 9.5], np.float32)  # a * 3 + 0.5 for a = 0, 1, 2, 3


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, this process's memo emptied, and a count of compiles."""
    monkeypatch.setenv("PLANNER_CACHE_DIR", str(tmp_path))
    executables.forget()
    builds: list[str] = []
    real_compile = executables._compile

    def counting(name, lowered, interactive=False):
        builds.append(f"{name} (interactive)" if interactive else name)
        return real_compile(name, lowered, interactive)

    monkeypatch.setattr(executables, "_compile", counting)
    yield tmp_path, builds
    executables.forget()


def _entries(root):
    executables.wait_for_stores()  # kernels are written in the background
    return sorted((root / "kernels").glob("*.bin"))


def _solve_affine():
    return np.asarray(executables.compiled("affine", _affine, ARGS)(*ARGS)["y"])


def test_a_second_process_loads_instead_of_compiling(cache):
    root, builds = cache
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine"] and len(_entries(root)) == 1
    executables.forget()  # as a new process: only the disk remains
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine"]  # loaded, not compiled again


def test_a_new_kernel_answers_before_it_is_stored_and_is_on_disk_after_the_wait(cache, monkeypatch):
    """A cold solve runs its kernel while the kernel is still being written (serializing the row
    kernel takes ~0.2 s); `wait_for_stores` (at exit) returns only once the entry is on disk."""
    root, builds = cache
    gate, real = threading.Event(), executables._store

    def held(path, k, exe):
        assert gate.wait(60)
        real(path, k, exe)

    monkeypatch.setattr(executables, "_store", held)
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)  # answered while the store is held
    assert not list((root / "kernels").glob("*.bin"))
    gate.set()
    executables.wait_for_stores()
    assert len(list((root / "kernels").glob("*.bin"))) == 1 and builds == ["affine"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped byte", "empty"])
def test_a_damaged_entry_is_rebuilt_and_replaced(cache, damage):
    root, builds = cache
    _solve_affine()
    (entry,) = _entries(root)
    blob = entry.read_bytes()
    entry.write_bytes({"garbage": b"\x00not an executable" * 100, "truncated": blob[: len(blob) // 2],
                       "flipped byte": blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:],
                       "empty": b""}[damage])
    executables.forget()
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine", "affine"]
    assert len(_entries(root)) == 1 and entry.read_bytes() != b""  # (_entries waits for the store)
    executables.forget()
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)  # the rewritten entry loads
    assert builds == ["affine", "affine"]


def test_an_entry_filed_under_another_key_is_not_loaded(cache):
    root, builds = cache
    _solve_affine()
    (entry,) = _entries(root)
    other_args = (ARGS[0], np.float32(3.0), np.float32(1.0))  # another signature, so another key
    other = root / "kernels" / f"affine-{executables.key('affine', other_args)[:32]}.bin"
    entry.rename(other)
    executables.forget()
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine", "affine"]


def test_the_next_process_prefetches_the_entries_this_one_used(cache):
    root, builds = cache
    _solve_affine()
    (entry,) = _entries(root)
    assert (root / "kernels" / "recent.txt").read_text().split() == [entry.name]
    executables.forget()
    executables.prefetch()
    assert entry in executables._prefetched
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine"] and not executables._prefetched  # taken from the prefetch


def test_eval_loads_its_kernel_from_the_cache_and_leaves_the_solve_prefetch_alone(cache):
    """`planner eval` compiled its jitted model in every process (~4 s); its kernel is now kept like
    the search's, but it is not what the next `planner solve` should start loading."""
    from planner.evaluation import case_from_dict, evaluate_cases

    root, builds = cache
    catalog = load_catalog()
    case = case_from_dict({"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "batch": 16,
                           "input": 4000, "output": 300}, "test", catalog=catalog)
    first = evaluate_cases([case], catalog)
    assert builds == ["eval"] and len(_entries(root)) == 1
    executables.forget()  # as a new process
    assert repr(evaluate_cases([case], catalog)) == repr(first)
    assert builds == ["eval"]  # loaded, not compiled again
    assert not (root / "kernels" / "recent.txt").exists()


def test_kernels_used_inside_uses_not_noted_are_not_prefetched_next(cache):
    root, builds = cache
    with executables.uses_not_noted():
        np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine"] and not (root / "kernels" / "recent.txt").exists()
    executables.forget()
    _solve_affine()  # outside it again: noted
    assert (root / "kernels" / "recent.txt").read_text().split() == [_entries(root)[0].name]


def test_a_prefetched_entry_with_another_key_is_not_used(cache):
    root, builds = cache
    _solve_affine()
    other_args = (ARGS[0], np.float32(3.0), np.float32(1.0))
    (entry,) = _entries(root)
    wrong = root / "kernels" / f"affine-{executables.key('affine', other_args)[:32]}.bin"
    entry.rename(wrong)
    (root / "kernels" / "recent.txt").write_text(wrong.name + "\n../outside.bin\n")
    executables.forget()
    executables.prefetch()
    assert list(executables._prefetched) == [wrong]  # a name leaving the folder is never read
    out = executables.compiled("affine", lambda: jax.jit(lambda p, x, y: {"y": p.a * x + p.b * y}), other_args)
    np.testing.assert_array_equal(np.asarray(out(*other_args)["y"]), EXPECTED)
    assert builds == ["affine", "affine"]  # the prefetched file held another key: rebuilt


def test_a_model_source_change_misses_the_old_entry(cache, monkeypatch):
    root, builds = cache
    _solve_affine()
    old_key = executables.key("affine", ARGS)
    monkeypatch.setattr(executables, "source_hash", lambda: "an edited cost model")
    assert executables.key("affine", ARGS) != old_key
    executables.forget()
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine", "affine"] and len(_entries(root)) == 2


def test_the_source_hash_covers_every_cost_model_file(tmp_path, monkeypatch):
    package = executables._PACKAGE
    copy = tmp_path / "planner"
    (copy / "model").mkdir(parents=True)
    for entry in executables.TRACED_SOURCES:
        src = package / entry
        for f in (src.rglob("*.py") if src.is_dir() else [src]):
            target = copy / f.relative_to(package)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    monkeypatch.setattr(executables, "_PACKAGE", copy)
    executables.source_hash.cache_clear()
    try:
        before = executables.source_hash()
        for name in ("model/serving.py", "model/types.py", "search.py"):
            path = copy / name
            original = path.read_bytes()
            path.write_bytes(original + b"\n# an edit\n")
            executables.source_hash.cache_clear()
            assert executables.source_hash() != before, name
            path.write_bytes(original)
        (copy / "model" / "layouts.py").write_text("X = 1\n")  # a new module of the model counts too
        executables.source_hash.cache_clear()
        assert executables.source_hash() != before
    finally:
        executables.source_hash.cache_clear()


class Wider(NamedTuple):
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


class Renamed(NamedTuple):
    a: np.ndarray
    bias: np.ndarray


@pytest.mark.parametrize("changed", [
    (Pair(np.arange(5, dtype=np.float32), np.full(5, 0.5, np.float32)), np.float32(3.0)),  # a longer axis
    (Pair(np.arange(4, dtype=np.int32), np.full(4, 0.5, np.float32)), np.float32(3.0)),  # a dtype
    (Pair(np.arange(4, dtype=np.float32), np.full(4, 0.5, np.float32)), 3.0),  # a weakly typed scalar
    (Wider(np.arange(4, dtype=np.float32), np.full(4, 0.5, np.float32), np.zeros(4, np.float32)),
     np.float32(3.0)),  # a new field (a new Hw or Arch input)
    (Renamed(np.arange(4, dtype=np.float32), np.full(4, 0.5, np.float32)), np.float32(3.0)),  # a renamed field
])
def test_any_change_in_the_inputs_types_is_a_new_key(changed):
    assert executables.key("affine", changed) != executables.key("affine", ARGS)
    assert executables.key("affine", ARGS) == executables.key("affine", ARGS)
    assert executables.key("other", ARGS) != executables.key("affine", ARGS)


def _spy_on_compile_options(monkeypatch) -> list[object]:
    """The `compiler_options` of every XLA compile from now on, in order."""
    asked: list[object] = []
    real = jax.stages.Lowered.compile

    def spy(self, compiler_options=None, **kwargs):
        asked.append(compiler_options)
        return real(self, compiler_options=compiler_options, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", spy)
    return asked


def test_the_cpu_compiler_options_are_applied_and_an_xla_without_them_still_compiles(cache, monkeypatch):
    """The CPU options reach XLA (an unknown one is refused there), and an XLA that refuses them
    still gets the kernel compiled, without them (jax >= 0.4.30 is allowed; its XLA may predate them)."""
    _, builds = cache
    lowered = _affine().trace(*ARGS).lower()
    with pytest.raises(Exception, match="xla_cpu_no_such_option"):
        lowered.compile(compiler_options={"xla_cpu_no_such_option": True})
    asked = _spy_on_compile_options(monkeypatch)
    monkeypatch.setattr(executables, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option": True})
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine"] and asked == [{"xla_cpu_no_such_option": True}, None]  # refused, then plain


def test_an_unwritable_cache_still_answers(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PLANNER_CACHE_DIR", str(blocker))
    executables.forget()
    try:
        np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    finally:
        executables.forget()


def test_the_search_from_a_cached_executable_equals_the_jit_answer(cache):
    """The real search kernel: compiled and stored, then loaded from disk by a 'new process'; both
    answers equal the plain `jax.jit` call's, bit for bit."""
    root, builds = cache
    catalog = load_catalog()
    grid = build_grid(_small(), catalog)
    fresh = run_grid(grid)
    assert [b for b in builds if b.startswith("rows-")] and _entries(root)
    executables.forget()
    builds.clear()
    cached = run_grid(grid)
    assert builds == []  # loaded from disk
    devices, deal, args = row_kernel_inputs(grid)
    dense = not np.any(np.asarray(grid.arch.experts_routed))
    from planner.model.attention import absent_kinds

    jit_out = _row_kernel(devices, dense, absent_kinds(grid.arch))(*args)
    for k in fresh:
        np.testing.assert_array_equal(fresh[k], cached[k])
        np.testing.assert_array_equal(in_grid_order(jit_out[k], deal), cached[k])


def _small():
    from planner import io
    from planner.schema import Scenario

    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = {"hardware": ["h100-sxm", "b200"], "chips": [1, 2, 4], "batch": [4, 16], "weight_dtype": ["bf16"],
                      "kv_dtype": ["fp8"], "dram_fraction": [0.0], "nvme_fraction": [0.0], "spec_k": [0],
                      "prefix_cache": [False], "attention": ["flash"]}
    return io.validate(Scenario, data, "test")


def test_startup_breakdown_of_real_processes():
    """Cold then warm `planner solve` processes: the cold one compiles, the warm ones load."""
    result = startup_breakdown(paths.scenarios_dir() / "chat.toml", warm_runs=1, settle=False)
    cold, warm = result["cold"]["breakdown"], result["warm"]["breakdown"]
    assert set(cold) == {label for label, _ in BREAKDOWN}
    assert cold["compile"] > 0 and cold["cache load"] < cold["compile"]
    assert warm["compile"] == 0 and warm["trace + lower"] == 0
    # loaded from the cache: its load ran (its seconds can round to 0 when the entry was read and
    # deserialized by `prefetch` while the process was still importing)
    assert any(phase.startswith("load ") for phase in result["warm_runs"][0]["phases"])
    assert result["warm"]["wall_s"] < result["cold"]["wall_s"]
    json_run = result["warm_json"]  # JSON adds the Pareto frontiers the table leaves out (phases, not
    # seconds: on a loaded machine the frontiers' few ms are within the noise of the plans' time)
    assert json_run["breakdown"]["compile"] == 0
    assert "frontiers" in result["warm_json_runs"][0]["phases"] and "frontiers" not in result["warm_runs"][0]["phases"]
    assert warm["hand-over to a resident worker"] == 0  # these ran in their own processes
    if sys.platform == "linux":  # then a resident worker: commands handed over, nothing imported
        first, resident = result["worker_first"], result["worker_runs"][0]
        for run in (first, resident):
            assert run["breakdown"]["hand-over to a resident worker"] > 0
            assert run["breakdown"]["imports (jax, search)"] < 0.05 and "imports (jax, early)" not in run["phases"]
            assert run["cpu_s"] >= run["phases"]["worker CPU"] > 0
        assert first["breakdown"]["compile"] == 0  # its kernels came from the cache the warm runs used


def test_plans_label_the_ratios_in_the_model_order():
    from planner.model.serving import BINDING, MIN_PREFILL_LOAD
    from planner.plans import BINDING as restated
    from planner.plans import MIN_PREFILL_LOAD as restated_floor

    assert restated == BINDING
    assert restated_floor == MIN_PREFILL_LOAD


def test_a_warm_solve_does_not_import_the_model_equations(tmp_path):
    """With its kernels cached, `planner solve` runs them without importing the cost model's
    equations (their import places arrays on the host device) nor the TUI."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PLANNER_CACHE_DIR": str(tmp_path)}
    probe = ("import sys\nfrom planner.cli import main\n"
             "try:\n    main(['solve', sys.argv[1], '--format', 'json'])\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith(('planner.model.serving', 'textual'))))")
    scenario = str(paths.scenarios_dir() / "chat.toml")
    cold = subprocess.run([sys.executable, "-c", probe, scenario], env=env, capture_output=True, text=True, check=True)
    warm = subprocess.run([sys.executable, "-c", probe, scenario], env=env, capture_output=True, text=True, check=True)
    assert "'planner.model.serving'" in cold.stdout.splitlines()[-1]  # the cold one traced the model
    assert warm.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["solve", "--help"], ["hardware", "list"]])
def test_only_solve_imports_jax_before_the_cli(argv):
    """The console script imports JAX early only for a solve; help and the catalog commands stay fast."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "planner", *argv], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "planner.cli" in imported and "jax" not in imported


def test_meanwhile_starts_once_where_it_competes_least(cache, monkeypatch):
    """Other work (the disaggregated prefill kernel) starts after this kernel's tracing when it must be compiled,
    and before its loading when it is cached; exactly once either way."""
    root, builds = cache
    events: list[str] = []
    real_compile, real_load = executables._compile, executables._load
    monkeypatch.setattr(executables, "_compile", lambda name, lowered, interactive=False: (
        events.append("compile"), real_compile(name, lowered, interactive))[1])
    monkeypatch.setattr(executables, "_load", lambda path, k: (events.append("load"), real_load(path, k))[1])
    executables.compiled("affine", _affine, ARGS, meanwhile=lambda: events.append("meanwhile"))
    assert events == ["load", "meanwhile", "compile"]  # nothing on disk: after lowering, before compiling
    events.clear()
    executables.forget()
    executables.compiled("affine", _affine, ARGS, meanwhile=lambda: events.append("meanwhile"))
    assert events == ["meanwhile", "load"]
    events.clear()
    executables.compiled("affine", _affine, ARGS, meanwhile=lambda: events.append("meanwhile"))
    assert events == ["meanwhile"]  # in memory already


def test_an_entry_that_loads_but_cannot_run_is_rebuilt(tmp_path):
    """E.g. one serialized from an executable that JAX had loaded from its own cache: it loads,
    then fails with "Function ... not found". The first call removes it and answers anyway."""
    entry = tmp_path / "affine-x.bin"
    entry.write_bytes(b"a stored entry")

    def broken(*args):
        raise RuntimeError("NOT_FOUND: Function add_divide_fusion not found")

    rebuilt = []
    checked = executables._Checked(broken, entry, lambda: (rebuilt.append(1), _affine())[1])
    np.testing.assert_array_equal(np.asarray(checked(*ARGS)["y"]), EXPECTED)
    assert rebuilt == [1] and not entry.exists()
    np.testing.assert_array_equal(np.asarray(checked(*ARGS)["y"]), EXPECTED)
    assert rebuilt == [1]


def test_no_entry_is_stored_while_jax_own_cache_is_on(cache, monkeypatch):
    root, builds = cache
    monkeypatch.setattr(executables, "_jax_cache_in_use", lambda: True)
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)
    assert builds == ["affine"] and _entries(root) == []


@pytest.fixture
def interactive(cache):
    """`cache`, where this XLA builds interactive kernels other than the one-shot ones."""
    if not executables._options_differ():
        pytest.skip("this jaxlib builds one kind of kernel (executables.INTERACTIVE_SINCE_JAXLIB)")
    return cache


def test_interactive_kernels_answer_at_once_and_upgrade_in_the_background(interactive):
    """Inside `interactive_kernels` a kernel not yet compiled for many runs is answered by the
    one-shot compile; asked for in a second round (a re-run), its interactive build starts in a
    thread and a later call takes it; a new process finds it on disk and builds nothing."""
    root, builds = interactive
    with executables.interactive_kernels():
        first = executables.compiled("affine", _affine, ARGS)
        np.testing.assert_array_equal(np.asarray(first(*ARGS)["y"]), EXPECTED)
        assert executables.compiled("affine", _affine, ARGS) is first  # asked twice in one round
        executables.wait_for_upgrades()
        assert builds == ["affine"]  # one round: nothing more to build
        executables.new_round()
        assert executables.compiled("affine", _affine, ARGS) is first  # the second round starts the build
        executables.wait_for_upgrades()
        assert builds == ["affine", "affine (interactive)"] and len(_entries(root)) == 2
        second = executables.compiled("affine", _affine, ARGS)
        assert second is not first and second is executables._memo[executables.key("affine", ARGS, True)]
        np.testing.assert_array_equal(np.asarray(second(*ARGS)["y"]), EXPECTED)
        executables.forget()  # a new process
        np.testing.assert_array_equal(_solve_affine(), EXPECTED)
        assert executables.key("affine", ARGS, True) in executables._memo  # loaded from disk
        executables.wait_for_upgrades()
    assert builds == ["affine", "affine (interactive)"]  # loaded the interactive entry, no upgrade
    recent = (root / "kernels" / "recent.txt").read_text().split()
    assert recent == [executables._entry_path("affine", executables.key("affine", ARGS)).name]  # what solve prefetches
    executables.forget()
    np.testing.assert_array_equal(_solve_affine(), EXPECTED)  # outside: the one-shot entry loads
    assert builds == ["affine", "affine (interactive)"]


def _gated_interactive_compiles(monkeypatch):
    """Interactive compiles wait for the returned event; one-shot ones go through."""
    gate = threading.Event()
    real = executables._compile

    def gated(name, lowered, interactive=False):
        if interactive:
            assert gate.wait(60)
        return real(name, lowered, interactive)

    monkeypatch.setattr(executables, "_compile", gated)
    return gate


def test_no_call_waits_for_an_interactive_build(interactive, monkeypatch):
    """While the interactive build runs (held here), calls are answered by the one-shot kernel, even
    once another process has stored the interactive entry (this process's build holds its lock)."""
    root, _ = interactive
    gate = _gated_interactive_compiles(monkeypatch)
    try:
        with executables.interactive_kernels():
            first = executables.compiled("affine", _affine, ARGS)
            executables.new_round()
            executables.compiled("affine", _affine, ARGS)  # starts the build, which now waits
            fast_path = executables._entry_path("affine", executables.key("affine", ARGS, True))
            fast_path.write_bytes(_entries(root)[0].read_bytes())  # "another process" stored an entry
            started = time.perf_counter()
            assert executables.compiled("affine", _affine, ARGS) is first
            assert time.perf_counter() - started < 5
            gate.set()
            executables.wait_for_upgrades()
            assert executables.compiled("affine", _affine, ARGS) is not first
    finally:
        gate.set()


def test_a_damaged_interactive_entry_is_never_rebuilt_in_the_call(interactive, monkeypatch):
    """A bad interactive entry on disk: the call takes the one-shot kernel and removes the file;
    the interactive kernel is rebuilt in the background, once the kernel is re-run."""
    root, builds = interactive
    with executables.interactive_kernels():
        fast_path = executables._entry_path("affine", executables.key("affine", ARGS, True))
        fast_path.parent.mkdir(parents=True, exist_ok=True)
        fast_path.write_bytes(b"\x00not an executable" * 100)
        np.testing.assert_array_equal(_solve_affine(), EXPECTED)
        assert builds == ["affine"] and not fast_path.exists()
        executables.new_round()
        _solve_affine()
        executables.wait_for_upgrades()
        assert builds == ["affine", "affine (interactive)"] and fast_path.exists()


def test_interactive_kernels_are_compiled_with_their_own_options(interactive, monkeypatch):
    """The two kinds of kernel are distinct entries compiled with distinct XLA options."""
    asked = _spy_on_compile_options(monkeypatch)
    assert executables.key("affine", ARGS, True) != executables.key("affine", ARGS)
    with executables.interactive_kernels(wait_at_exit=True):
        _solve_affine()
        executables.new_round()
        _solve_affine()
    assert asked == [executables.CPU_COMPILER_OPTIONS, executables.CPU_INTERACTIVE_OPTIONS]
    assert executables.CPU_COMPILER_OPTIONS != executables.CPU_INTERACTIVE_OPTIONS
    assert not executables._interactive and not executables.interactive()  # the context ends with the block


def test_the_interactive_search_kernel_gives_the_one_shot_answer(interactive):
    """The real row kernel compiled both ways (the TUI swaps one for the other mid-session): every
    output equal, bit for bit, so a plan never changes because a kernel was upgraded."""
    root, builds = interactive
    grid = build_grid(_small(), load_catalog())
    one_shot = run_grid(grid)
    executables.forget()
    with executables.interactive_kernels():
        run_grid(grid)  # the one-shot kernel from disk
        executables.new_round()
        run_grid(grid)  # re-run: the interactive one builds meanwhile
        executables.wait_for_upgrades()
        interactive = run_grid(grid)
    devices, _, args = row_kernel_inputs(grid)
    name = f"rows-{devices}-{model_flags(grid)[2]}"
    assert f"{name} (interactive)" in builds
    assert executables.key(name, args, True) in executables._memo  # the last run had it to take
    assert set(interactive) == set(one_shot)
    for k in one_shot:
        np.testing.assert_array_equal(interactive[k], one_shot[k])
