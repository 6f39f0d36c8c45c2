"""Output helpers shared by the CLI commands: a deterministic Rich console, JSON, number formats.

Tables go through `console()`, which is fixed-width and colourless when stdout is not a terminal, so
piped output and test snapshots do not depend on the terminal they ran in. JSON is written with the
standard library (never through Rich, which would wrap and highlight it).
"""

from __future__ import annotations

import json
import math
import sys
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.table import Table

from planner.schema import ModelSpec
from planner.schema.common import BYTES_PER_ELEMENT

PIPE_WIDTH = 160
"""Console width used when stdout is not a terminal (pipes, files, tests)."""

UNSUPPORTED_MARK = "-"
UNKNOWN_MARK = "?"


class _PipeAwareConsole(Console):
    """Rich exits with status 1 when the reader of a pipe goes away (`planner solve x | head`), which
    would read as "no feasible plan"; re-raise instead so the CLI's one error mapper decides."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError

    def render_str(self, text: str, **kwargs: Any):  # noqa: ANN201 (rich's Text)
        """Every string printed or put in a table: control characters other than newline and tab (a
        terminal escape in a scenario name) shown escaped rather than sent to the terminal."""
        return super().render_str(printable(text), **kwargs)


def printable(text: str) -> str:
    """`text` with control characters but newline and tab shown as escapes (`\x1b`)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def console(file: IO[str] | None = None) -> Console:
    """A console for `file` (default: the current `sys.stdout`, looked up at call time). Markup is
    off: every string it prints is the planner's own or a user's (a scenario named "Chat [/b]" must
    print as written, not raise Rich's MarkupError), and no output of ours uses Rich markup."""
    out = file if file is not None else sys.stdout
    is_tty = bool(getattr(out, "isatty", lambda: False)())
    if is_tty:
        return _PipeAwareConsole(file=out, highlight=False, emoji=False, markup=False)
    return _PipeAwareConsole(
        file=out,
        markup=False,
        width=PIPE_WIDTH,
        color_system=None,
        force_terminal=False,
        force_interactive=False,
        no_color=True,
        highlight=False,
        emoji=False,
        legacy_windows=False,
        soft_wrap=False,
    )


def table(*columns: str, title: str | None = None, caption: str | None = None,
          right: tuple[str, ...] = (), compact: bool = False) -> Table:
    """A plain table; columns named in `right` are right-aligned (numbers). `compact`: two spaces
    between columns instead of three, for tables with many columns (solve's plans: 16)."""
    result = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, title_justify="left",
                   caption_justify="left", pad_edge=False, show_edge=False, collapse_padding=compact)
    for name in columns:
        result.add_column(name, justify="right" if name in right else "left", overflow="fold")
    return result


def print_json(data: Any, file: IO[str] | None = None) -> None:
    out = file if file is not None else sys.stdout
    out.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def num(value: object, digits: int = 0) -> str:
    """A catalog number for a table cell: '-' for unsupported, '?' for unknown, '' for absent."""
    if value is None:
        return ""
    if value == "unsupported":
        return UNSUPPORTED_MARK
    if value == "unknown":
        return UNKNOWN_MARK
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if digits == 0 and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def count(value: float | None) -> str:
    """Parameter counts as 8.03B / 671B / 500M; 'n/a' when not given."""
    if value is None:
        return "n/a"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            shown = value / scale
            text = f"{shown:.3g}" if shown < 100 else f"{shown:.0f}"
            return f"{text}{suffix}"
    return f"{value:g}"


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "bf16") -> int:
    """KV-cache bytes per token over all layers.

    GQA caches K and V per KV head: 2 * layers * kv_heads * head_dim * bytes. MLA (DeepSeek) caches one
    compressed latent plus the decoupled RoPE key: layers * (kv_lora_rank + qk_rope_head_dim) * bytes.
    Sliding-window layers are counted in full here (this is the per-token cost at short context);
    compressed layers count 1/ratio of an entry, sparse layers add their indexer key, and the fixed
    state of linear/SSM layers is left out (it does not grow with the context).
    """
    from planner.model.arch import kv_elems_per_token

    return int(round(kv_elems_per_token(spec) * BYTES_PER_ELEMENT[kv_dtype]))


def kib(nbytes: float) -> str:
    return f"{nbytes / 1024:,.1f}"


def figure(x: float) -> str:
    """A rate, size or factor as plain digits: whole numbers from 100 up, three significant figures
    below (`,.3g` printed 3,000 req/s as "3e+03" and 0.00003 as "3e-05"; one decimal printed a Groq
    chip's 0.245 GB of weights and 0.207 GB usable both as "0.2")."""
    if x >= 100:
        return f"{x:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(x))) if x > 0 else 0
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def money(x: float | None) -> str:
    """A monthly bill or price for a table cell: whole dollars, 'n/a' when absent."""
    return "n/a" if x is None else f"${x:,.0f}"


def tiers(plan: dict[str, Any]) -> str:
    """A plan's KV tier split as a short cell: 'HBM', or HBM/DRAM/NVMe percentages."""
    t = plan["tier_split"]
    if t["dram"] == 0 and t["nvme"] == 0:
        return plan.get("memory_kind", "HBM")
    return f"{t['hbm']:.0%}/{t['dram']:.0%}/{t['nvme']:.0%}"


def spec_words(plan: dict[str, Any]) -> str:
    """Speculative decoding of a plan in a few words: 'off' or 'method k=K'."""
    if not plan.get("spec_k"):
        return "off"
    return f"{plan.get('spec_method', 'on')} k={plan['spec_k']}"


def tier_words(plan: dict[str, Any]) -> str:
    """The same split for a sentence."""
    t = plan["tier_split"]
    if t["dram"] == 0 and t["nvme"] == 0:
        return f"all in {plan.get('memory_kind', 'HBM')}"  # SRAM on dataflow chips (Groq, Cerebras)
    return f"HBM/DRAM/NVMe {t['hbm']:.0%}/{t['dram']:.0%}/{t['nvme']:.0%}"


def per_hardware_title(result: Any, short: bool = False) -> str:
    """The title of the per-hardware table: its plans are aggregated ones, which a scenario that
    searches disaggregated serving only lists for comparison, not as answers."""
    title = "Best plan per hardware" if short else "Best plan per hardware (by monthly bill)"
    scenario = getattr(getattr(result, "grid", None), "scenario", None)
    if scenario is None or "aggregated" in scenario.search.serving_mode:
        return title
    return "Aggregated plan per hardware, for comparison (search.serving_mode is disaggregated only)"
