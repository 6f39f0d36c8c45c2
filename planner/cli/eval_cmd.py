"""`planner eval`: predict fixed configurations (the fidelity contract in DESIGN.md section 4)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from planner.errors import InputFileError


class EvalFormat(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("eval", rich_help_panel="Plan")(evaluate)


def _batch(value: str) -> int | str:
    if value == "max":
        return "max"
    try:
        batch = int(value)
    except ValueError:
        raise InputFileError(f"--batch: {value!r} is not a positive integer or 'max'") from None
    if batch < 1:
        raise InputFileError(f"--batch: {batch} must be >= 1 (or 'max')")
    return batch


def evaluate(
    hardware: Annotated[str | None, typer.Option("--hardware", help="Hardware ID, e.g. h100-sxm.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model ID, e.g. llama-3.1-8b.")] = None,
    chips: Annotated[int, typer.Option("--chips", min=1, max=100_000, help="Chips per replica.")] = 1,
    batch: Annotated[str, typer.Option("--batch", help="Sequences in flight, or 'max' (largest that fits).")] = "max",
    input_tokens: Annotated[int, typer.Option("--input", min=1, max=10_000_000, help="Prompt tokens.")] = 1024,
    output_tokens: Annotated[int, typer.Option("--output", min=1, max=10_000_000, help="Output tokens.")] = 256,
    weight_dtype: Annotated[str, typer.Option("--weight-dtype", help="bf16, fp8, int8, int4 or fp4.")] = "bf16",
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16, fp8, int8 or int4.")] = "bf16",
    spec_k: Annotated[int, typer.Option("--spec-k", min=0, max=16, help="Speculative lookahead (0 = off).")] = 0,
    spec_alpha: Annotated[float, typer.Option("--spec-alpha", help="Per-token acceptance in (0, 1).")] = 0.7,
    cases: Annotated[Path | None, typer.Option("--cases", help="TOML file whose 'case' array of tables lists the configurations.")] = None,
    format: Annotated[EvalFormat, typer.Option("--format", "-f", help="Output format.")] = EvalFormat.table,
) -> None:
    """Predict TTFT, TPOT, throughput, memory and cost of fixed configurations."""
    from planner import io, render
    from planner.catalog import load_catalog
    from planner.evaluation import case_from_dict, evaluate_cases

    catalog = load_catalog()
    if cases is not None:
        data = io.read_toml(cases)
        raw_cases = data.get("case")
        if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
            raise InputFileError(f"{cases}: case: expected a [[case]] array of tables")
        parsed = [case_from_dict(c, f"{cases}: case[{i}]") for i, c in enumerate(raw_cases)]
    else:
        if hardware is None or model is None:
            raise InputFileError("eval: give --hardware and --model (or --cases FILE.toml)")
        parsed = [case_from_dict({
            "hardware": hardware, "model": model, "chips": chips, "batch": _batch(batch),
            "input": input_tokens, "output": output_tokens, "weight_dtype": weight_dtype,
            "kv_dtype": kv_dtype, "spec_k": spec_k, "spec_alpha": spec_alpha,
        }, "eval")]
    rows = evaluate_cases(parsed, catalog)
    if format == EvalFormat.json:
        render.print_json(rows if cases is not None else rows[0])
        return
    out = render.table("hardware", "model", "chips", "w/kv", "in/out", "batch", "TTFT s", "TPOT ms",
                       "tok/s", "KV cap tok", "GB/chip", "$/h", "$/Mtok out", "fits",
                       right=("chips", "batch", "TTFT s", "TPOT ms", "tok/s", "KV cap tok", "GB/chip",
                              "$/h", "$/Mtok out"))
    for r in rows:
        out.add_row(r["hardware"], r["model"], str(r["chips"]), f"{r['weight_dtype']}/{r['kv_dtype']}",
                    f"{r['input']}/{r['output']}", str(r["batch"]), _fmt(r["ttft_s"], 3),
                    _fmt(r["tpot_s"] and r["tpot_s"] * 1e3, 2), _fmt(r["throughput_tok_s"], 0),
                    f"{r['kv_capacity_tokens']:,}", _fmt(r["memory_gb_per_chip"], 1),
                    _fmt(r["cost_per_hour"], 2), _fmt(r["usd_per_mtok_output"], 3),
                    "yes" if r["fits"] else f"no: {r['reason']}")
    render.console().print(out)


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"
