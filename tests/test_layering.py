"""The core never imports the CLI or the TUI: library users (and the analyses) get the model and the
search without typer or textual, and a change to the interface cannot break the core."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import planner

EDGES = ("planner.cli", "planner.tui", "planner.__main__", "planner.resident")
"""The interfaces and the processes that run them (a resident worker runs CLI commands, as the
console script does)."""


def core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(planner.__path__, "planner.")]
    return sorted(n for n in names if not n.startswith(EDGES))


def test_core_modules_do_not_import_the_cli_or_the_tui() -> None:
    modules = core_modules()
    assert "planner.analyses.sweep" in modules and "planner.search" in modules
    probe = ("import importlib, sys\n"
             f"for name in {modules!r}:\n"
             "    try:\n"
             "        importlib.import_module(name)\n"
             "    except ImportError as exc:\n"
             "        if 'ray' not in str(exc):\n"  # the optional ray extra
             "            raise\n"
             f"print(sorted(m for m in sys.modules if m.startswith({EDGES!r})))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stdout


def test_no_core_source_imports_the_cli_or_the_tui_even_inside_a_function() -> None:
    """Lazy imports too (the sweep once borrowed a check from the CLI inside a function)."""
    import ast
    from pathlib import Path

    root = Path(planner.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        name = "planner." + ".".join(path.relative_to(root).with_suffix("").parts)
        if name.startswith(EDGES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            offenders += [f"{name}: {t}" for t in targets if t.startswith(("planner.cli", "planner.tui"))]
    assert offenders == []
