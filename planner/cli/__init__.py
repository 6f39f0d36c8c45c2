"""The `planner` command line: a Typer app whose top-level group maps every error to one line.

Exit codes: 0 ok, 1 no feasible plan, 2 bad input (a `PlannerError` or a usage error), 3 internal
error. A `PlannerError` prints `error: <message>` on stderr; any other exception prints
`internal error: <Type>: <message> (...)`. Tracebacks appear only with `planner --debug ...`.
The mapping lives in `PlannerGroup.main`, so the console script and `typer.testing.CliRunner`
behave identically.

Commands live in modules with a `register(app)` function. Heavy imports (jax, textual) belong inside
command bodies so that `planner --help` stays fast.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from planner.errors import PlannerError

try:  # Typer >= 0.22 vendors Click as typer._click; older releases use the click package.
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as _click_exceptions  # type: ignore[no-redef]

# Click >= 8.2 raises this for a group called without a subcommand; older Click prints help itself.
_NoArgsIsHelpError: Any = getattr(_click_exceptions, "NoArgsIsHelpError", ())

INTERNAL_ERROR = 3
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away
COMMAND_MODULES = ("catalog_cmds", "file_cmds")
OPTIONAL_COMMAND_MODULES = ("eval_cmd", "solve_cmd", "bench_cmd", "analysis_cmds", "tui_cmd", "trace_cmds",
                           "simulate_cmd", "worker_cmd")  # registered when present

_debug = False
_script = False  # started by the console script, garbage collector off (see `imports_done`)


def imports_done() -> None:
    """The console script starts with the garbage collector off (`planner.__main__`); once the
    imports are done, freeze what they built (never garbage) out of its scans and turn it on."""
    global _script
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
        _script = True


@contextmanager
def importing() -> Iterator[None]:
    """A command's own heavy imports (jax, the search) with the collector off, as at start-up.
    Only in the console script: a test or library process keeps its collector as it is."""
    if not _script:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _one_line(text: str) -> str:
    """Whitespace runs (newlines included) become one space; other control characters (a terminal
    escape in a file name, a NUL in a value) are shown escaped, so an error is always one plain line."""
    from planner.render import printable  # the error path only: not at start-up

    return printable(" ".join(str(text).split()))


def _fail(message: str, code: int) -> int:
    if _debug:
        traceback.print_exc(file=sys.stderr)
    sys.stderr.write(_one_line(message) + "\n")
    sys.stderr.flush()
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # an in-memory stdout (tests): nothing to redirect


def _echo_help(text: str) -> None:
    # Typer's Rich help renders itself while being built and returns ""; plain help returns text.
    if text.strip():
        typer.echo(text)


class PlannerGroup(TyperGroup):
    """Top-level group: runs Click in non-standalone mode and owns error reporting and exit codes."""

    def invoke(self, ctx: Any) -> Any:
        imports_done()
        # Discard command return values: exit codes come only from typer.Exit, never from a
        # value a command happens to return.
        try:
            super().invoke(ctx)
        except KeyboardInterrupt as exc:  # Typer would turn it into a silent exit 130: say "aborted" (_run)
            raise typer.Abort() from exc
        return None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _debug
        _debug = False
        try:
            code = self._run(args, prog_name or "planner", complete_var, **extra)
        finally:  # --catalog/--price belong to this command only (in-process callers, tests)
            from planner.catalog import set_user_catalogs

            set_user_catalogs([])
        if not standalone_mode:
            return code
        sys.exit(code)

    def _run(self, args: Sequence[str] | None, prog_name: str, complete_var: str | None, **extra: Any) -> int:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NoArgsIsHelpError as exc:
            # A command group given no subcommand: its help (as `planner` alone prints), not an error.
            _echo_help(exc.message)
            return 0
        except _click_exceptions.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            not_finite = _non_finite_value(exc, list(sys.argv[1:] if args is None else args))
            message = not_finite or exc.format_message()
            option = getattr(exc, "option_name", None)
            if option in GLOBAL_OPTIONS and exc.ctx is not None and exc.ctx.parent is not None:
                message += f"; {option} is an option of planner itself: put it before the command (planner {option} ... {exc.ctx.info_name})"
            return _fail(f"error: {message}{hint}", exc.exit_code)
        except _click_exceptions.ClickException as exc:
            return _fail(f"error: {exc.format_message()}", exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):  # Ctrl-C (`invoke` turns one in a command into Abort)
            return _fail("aborted", 130)
        except BrokenPipeError:
            _silence_stdout()
            return BROKEN_PIPE
        except PlannerError as exc:
            return _fail(f"error: {exc}", int(exc.exit_code))
        except Exception as exc:  # the last line of defence: no tracebacks for users
            return _fail(
                f"internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)",
                INTERNAL_ERROR,
            )
        # Non-standalone Click returns the code of a typer.Exit, or our None for a normal return.
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


app = typer.Typer(
    name="planner",
    cls=PlannerGroup,
    help="Capacity planner for LLM inference: which hardware and serving configuration meets "
    "TTFT/TPOT SLOs at minimum cost.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"planner {version('planner')}")
        except PackageNotFoundError:
            typer.echo("planner (not installed)")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    catalog: Annotated[
        list[str] | None,
        typer.Option("--catalog", metavar="PATH", help="User catalog: a TOML file with \\[\\[model]] and/or "
                     "\\[\\[accelerator]] tables, or a folder of them; adds or overrides entries (repeatable; "
                     "also env PLANNER_CATALOG, paths separated by ':').")] = None,
    price: Annotated[
        list[str] | None,
        typer.Option("--price", metavar="ID=USD_PER_HOUR", help="Override a chip's $ per chip-hour, e.g. "
                     "h100-sxm=1.90 (repeatable).")] = None,
) -> None:
    global _debug
    _debug = debug
    from planner.catalog import set_user_catalogs

    prices = [_price(p) for p in price or []]
    twice = [hw for i, (hw, _, _) in enumerate(prices) if hw in {h for h, _, _ in prices[:i]}]
    if twice:
        raise PlannerError(f"--price {twice[0]}: given twice; give one price per hardware ID")
    set_user_catalogs([_existing(p) for p in catalog or []], prices)
    if ctx.invoked_subcommand is None:
        # `planner` alone: the TUI on the default scenario; help when not attached to a terminal.
        from planner.cli.tui_cmd import open_default

        if not open_default():
            _echo_help(ctx.get_help())


def _existing(path: str):
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise PlannerError(f"--catalog {path}: file not found (check the path)")
    return p


def _price(item: str) -> tuple[str, float, str]:
    hw, sep, value = item.partition("=")
    try:
        usd = float(value)
    except ValueError:
        usd = float("nan")
    from planner.schema.scenario import MAX_CHIP_HOUR_USD

    if not sep or not hw.strip() or not (0 < usd <= MAX_CHIP_HOUR_USD):
        raise PlannerError(f"--price {item!r}: expected ID=USD_PER_HOUR with a price in (0, {MAX_CHIP_HOUR_USD}], "
                           "e.g. h100-sxm=1.90")
    return hw.strip(), usd, "user"


def _register_all() -> None:
    for name in COMMAND_MODULES + OPTIONAL_COMMAND_MODULES:
        qualified = f"{__name__}.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if name in OPTIONAL_COMMAND_MODULES and exc.name == qualified:
                continue
            raise
        module.register(app)


_register_all()


GLOBAL_OPTIONS = ("--price", "--catalog", "--debug")
"""Options of `planner` itself: given after a command, click reports only "No such option"."""


def _non_finite_value(exc: Exception, args: list[str]) -> str | None:
    """"--opt: nan is not a finite number" for a number option given nan or inf, which Typer's range
    check reported as out of range ("Input should be less than or equal to 99")."""
    param = getattr(exc, "param", None)
    if not isinstance(exc, _click_exceptions.BadParameter) or param is None:
        return None
    for i, word in enumerate(args):
        for opt in getattr(param, "opts", ()):
            value = args[i + 1] if word == opt and i + 1 < len(args) else (
                word[len(opt) + 1:] if word.startswith(opt + "=") else None)
            if value is None:
                continue
            try:
                number = float(value)
            except ValueError:
                continue
            if number != number or number in (float("inf"), float("-inf")):
                return f"{opt}: {value} is not a finite number"
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (`planner = planner.cli:main`); exits with the command's code."""
    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe that cannot encode a character (a Latin-1 locale, a name with an emoji)
        # gets an escape instead of a crash.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    typer.main.get_command(app).main(args=argv, prog_name="planner")
