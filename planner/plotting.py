"""Charts for `sweep --plot` and `project --plot` (PNG or SVG by the file suffix).

matplotlib is an optional extra (`pip install 'planner[plot]'`); it is imported only here, and only
when a plot is asked for. Missing matplotlib or a bad path is a one-line `PlannerError` (exit 2).
The chart data (`sweep_series`, `project_series`) is plain lists, so the TUI can draw the same curves.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from planner.errors import InputFileError, PlannerError
from planner.io import atomic_write_bytes

SUFFIXES = (".png", ".svg")
INSTALL_HINT = "pip install 'planner[plot]'"


class PlotUnavailableError(PlannerError):
    """matplotlib is not installed."""


def check_path(path: Path) -> None:
    """Fail before any solving: the suffix picks the format, the folder must exist, and nothing there
    is replaced (an existing file or link, even an earlier chart: the user removes it or names
    another; the write itself refuses one that appears meanwhile, `io.atomic_write_bytes`)."""
    if path.suffix.lower() not in SUFFIXES:
        raise InputFileError(f"--plot {path}: use a .png or .svg file name")
    if not path.parent.exists() and str(path.parent) not in ("", "."):
        raise InputFileError(f"--plot {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise InputFileError(f"--plot {path}: is a folder; give a file name")
    if path.exists() or path.is_symlink():
        raise InputFileError(f"--plot {path}: already exists; refusing to overwrite it (remove it or choose another name)")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailableError(f"--plot needs matplotlib: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def require_matplotlib() -> None:
    _pyplot()


def sweep_series(doc: dict[str, Any]) -> dict[str, Any]:
    """x values, best monthly bill (None where infeasible) and the best hardware per point."""
    points = doc["points"]
    xs = [p["value"] for p in points]
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
    series = {"best": [p["best"]["monthly_usd"] if p["best"] else None for p in points]}
    for i, p in enumerate(points):
        for v in p.get("variants", []):
            series.setdefault(v["name"], [None] * len(points))[i] = v["monthly_usd"]
    return {"x": xs, "numeric": numeric, "series": series,
            "labels": [p["best"]["hardware"] if p["best"] else "infeasible" for p in points],
            "ttft_p95_s": [p["best"]["ttft_p95_s"] if p["best"] else None for p in points],
            "tpot_p95_ms": [p["best"]["tpot_p95_ms"] if p["best"] else None for p in points]}


def project_series(doc: dict[str, Any]) -> dict[str, Any]:
    rows = doc["projection"]
    series = {"self-hosted": [r["self_hosted"]["monthly_usd"] if r["self_hosted"] else None for r in rows]}
    for a in doc["apis"]:
        series[a["name"]] = [r["api_monthly_usd"][a["id"]] for r in rows]
    return {"x": [r["year"] for r in rows], "series": series}


def _save(fig, path: Path) -> None:
    """Render to memory, then write atomically without replacing anything (`check_path`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lower().lstrip("."), bbox_inches="tight", metadata=_metadata(path))
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except InputFileError as exc:
        raise InputFileError(f"--plot {exc}") from None


def _metadata(path: Path) -> dict[str, Any]:
    # No creation date in SVGs, so the same data gives the same file.
    return {"Date": None} if path.suffix.lower() == ".svg" else {}


def plot_sweep(doc: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    data = sweep_series(doc)
    xs = data["x"] if data["numeric"] else list(range(len(data["x"])))
    fig, (ax, lat) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(2, 1))
    for name, ys in data["series"].items():
        ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o",
                label="best plan" if name == "best" else f"{name}", linewidth=2.2 if name == "best" else 1.2)
    shown = None
    for x, y, label in zip(xs, data["series"]["best"], data["labels"], strict=True):
        if y is not None and label != shown:  # label where the best hardware changes
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
            shown = label
    ax.set_ylabel("monthly bill ($)")
    ax.set_title(f"{doc['scenario']}: best plan vs {doc['param']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    lat.plot(xs, [float("nan") if y is None else y for y in data["ttft_p95_s"]], marker="s", label="TTFT p95 (s)")
    lat2 = lat.twinx()
    lat2.plot(xs, [float("nan") if y is None else y for y in data["tpot_p95_ms"]], marker="^", color="tab:red",
              label="TPOT p95 (ms)")
    lat.set_ylabel("TTFT p95 (s)")
    lat2.set_ylabel("TPOT p95 (ms)", color="tab:red")
    lat.set_xlabel(doc["param"])
    lat.grid(alpha=0.3)
    if not data["numeric"]:
        lat.set_xticks(xs, [str(x) for x in data["x"]])
    _save(fig, path)
    plt.close(fig)


def plot_project(doc: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    data = project_series(doc)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, ys in data["series"].items():
        ax.plot(data["x"], [float("nan") if y is None else y for y in ys], marker="o",
                linewidth=2.4 if name == "self-hosted" else 1.2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("year")
    ax.set_ylabel("monthly bill ($, log scale)")
    ax.set_title(f"{doc['scenario']}: prices -{doc['price_decline_pct']:g}%/yr, usage x{doc['usage_growth']:g}/yr")
    if doc.get("jevons_year") is not None:
        ax.axvline(doc["jevons_year"], color="grey", linestyle=":", label="spend rises (Jevons)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
