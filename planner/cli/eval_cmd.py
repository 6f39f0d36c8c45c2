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


FLAGS = {"hardware": "--hardware", "model": "--model", "chips": "--chips", "batch": "--batch",
         "input": "--input", "output": "--output", "weight_dtype": "--weight-dtype", "kv_dtype": "--kv-dtype",
         "spec_k": "--spec-k", "spec_alpha": "--spec-alpha", "spec_method": "--spec-method", "cached_tokens": "--cached-tokens",
         "cache_tier": "--cache-tier", "max_batch": "--max-batch", "max_num_tokens": "--max-num-tokens",
         "requests": "--requests", "arrival_rps": "--arrival-rps", "replicas": "--replicas",
         "tp": "--tp", "pp": "--pp", "ep": "--ep", "dp_attention": "--dp-attention", "cp": "--cp"}


def _batch(value: str) -> int | str:
    if value == "max":
        return "max"
    try:
        return int(value)  # the range is checked with the other fields
    except ValueError:
        raise InputFileError(f"--batch: {value!r} is not a positive integer or 'max'") from None


def _read_cases(path: Path, catalog) -> list:
    from planner import io
    from planner.evaluation import case_from_dict

    data = io.read_toml(path)
    raw_cases = data.get("case")
    if raw_cases is None:
        found = ", ".join(sorted(data)) or "nothing"
        raise InputFileError(f"{path}: case: no [[case]] array of tables (found {found})")
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        raise InputFileError(f"{path}: case: expected a [[case]] array of tables")
    if not raw_cases:
        raise InputFileError(f"{path}: case: the list is empty; add at least one [[case]] table")
    base = path.resolve().parent
    for c in raw_cases:  # a config.json model is relative to the cases file
        ref = c.get("model")
        if isinstance(ref, str) and ref.endswith(".json") and not Path(ref).is_absolute():
            c["model"] = str(base / ref)
    return [case_from_dict(c, f"{path}: case[{i}]", catalog=catalog, lenient_ids=True)
            for i, c in enumerate(raw_cases)]


def evaluate(
    hardware: Annotated[str | None, typer.Option("--hardware", help="Hardware ID, e.g. h100-sxm.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model ID, e.g. llama-3.1-8b, or a path to a "
                                              "Hugging Face config.json.")] = None,
    chips: Annotated[int, typer.Option("--chips", help="Chips per replica, 1 to 100,000.")] = 1,
    batch: Annotated[str, typer.Option("--batch", help="Sequences in flight, or 'max' (largest that fits).")] = "max",
    input_tokens: Annotated[int, typer.Option("--input", help="Prompt tokens, 1 to 10,000,000.")] = 1024,
    output_tokens: Annotated[int, typer.Option("--output", help="Output tokens, 1 to 10,000,000.")] = 256,
    weight_dtype: Annotated[str | None, typer.Option("--weight-dtype", help="bf16, fp8, int8, int4 or fp4 (aliases: fp16, nvfp4, awq, w8a8, ...; mxfp4 runs as int4). Default: the dtype the model's published checkpoint is served at (bf16 where the catalog does not record it).")] = None,
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16, fp8, int8 or int4 (aliases: fp16, fp8_e4m3, ...).")] = "bf16",
    spec_k: Annotated[int, typer.Option("--spec-k", help="Speculative lookahead, 0 (off) to 16.")] = 0,
    spec_alpha: Annotated[float | None, typer.Option("--spec-alpha", help="Per-token acceptance, 0.001 to 0.999 "
                                                      "(default: the method's published curve; 0.7 without --spec-method).")] = None,
    spec_method: Annotated[str | None, typer.Option("--spec-method", help="Drafter: draft, eagle3, mtp, self, ngram or "
                                                     "suffix (default: the model's listed draft model, else its MTP head).")] = None,
    cached_tokens: Annotated[int, typer.Option("--cached-tokens", help="Prompt tokens whose KV is reused (reloaded from --cache-tier) rather than recomputed.")] = 0,
    cache_tier: Annotated[str, typer.Option("--cache-tier", help="Where cached KV is read from: hbm, dram or nvme.")] = "dram",
    max_batch: Annotated[int | None, typer.Option("--max-batch", help="Engine limit on sequences in flight.")] = None,
    max_num_tokens: Annotated[int | None, typer.Option("--max-num-tokens", help="Engine limit on tokens per forward pass.")] = None,
    requests: Annotated[int | None, typer.Option("--requests", help="A finite offline run of this many requests.")] = None,
    arrival_rps: Annotated[float | None, typer.Option("--arrival-rps", help="Poisson load on the whole system, requests/s: TTFT/TPOT become means under load (p99 in ttft_p99_s/tpot_p99_s).")] = None,
    replicas: Annotated[int | None, typer.Option("--replicas", help="Data-parallel replicas on the chips (default: the best).")] = None,
    tp: Annotated[int | None, typer.Option("--tp", help="Pin the layout: attention tensor-parallel ranks.")] = None,
    pp: Annotated[int | None, typer.Option("--pp", help="Pin the layout: pipeline stages.")] = None,
    ep: Annotated[int | None, typer.Option("--ep", help="Pin the layout: expert-parallel ranks (1 or tp x dp-attention).")] = None,
    dp_attention: Annotated[int | None, typer.Option("--dp-attention", help="Pin the layout: attention data-parallel groups.")] = None,
    cp: Annotated[int | None, typer.Option("--cp", help="Pin the layout: decode context-parallel ranks (divides tp).")] = None,
    cases: Annotated[Path | None, typer.Option("--cases", help="TOML file whose 'case' array of tables lists the configurations.")] = None,
    format: Annotated[EvalFormat, typer.Option("--format", "-f", help="Output format.")] = EvalFormat.table,
) -> None:
    """Predict TTFT, TPOT, throughput, memory and cost of fixed configurations."""
    from planner import render
    from planner.catalog import load_catalog
    from planner.evaluation import case_from_dict, evaluate_cases
    from planner.solve_report import layout_cell, link_note
    from planner.uncertainty import UNCALIBRATED_NOTE

    catalog = load_catalog()
    if cases is not None:
        flags = {"--hardware": hardware, "--model": model, "--weight-dtype": weight_dtype, "--spec-alpha": spec_alpha,
                 "--spec-method": spec_method, "--max-batch": max_batch, "--max-num-tokens": max_num_tokens,
                 "--requests": requests, "--arrival-rps": arrival_rps, "--replicas": replicas, "--tp": tp, "--pp": pp,
                 "--ep": ep, "--dp-attention": dp_attention, "--cp": cp}
        changed = {"--chips": chips != 1, "--batch": batch != "max", "--input": input_tokens != 1024,
                   "--output": output_tokens != 256, "--kv-dtype": kv_dtype != "bf16", "--spec-k": spec_k != 0,
                   "--cached-tokens": cached_tokens != 0, "--cache-tier": cache_tier != "dram"}
        ignored = [f for f, v in flags.items() if v is not None] + [f for f, v in changed.items() if v]
        if ignored:
            raise InputFileError(f"{cases}: --cases takes every configuration from the file, so {', '.join(ignored)} "
                                 "would be ignored; put them in the file's [[case]] tables or drop --cases")
        parsed = _read_cases(cases, catalog)
    else:
        if hardware is None or model is None:
            raise InputFileError("eval: give --hardware and --model (or --cases FILE.toml)")
        parsed = [case_from_dict({
            "hardware": hardware, "model": model, "chips": chips, "batch": _batch(batch),
            "input": input_tokens, "output": output_tokens,
            **({"weight_dtype": weight_dtype} if weight_dtype is not None else {}),
            "kv_dtype": kv_dtype, "spec_k": spec_k,
            **({"spec_alpha": spec_alpha} if spec_alpha is not None else {}),
            **({"spec_method": spec_method} if spec_method is not None else {}),
            "cached_tokens": cached_tokens, "cache_tier": cache_tier,
            **{key: value for key, value in (("max_batch", max_batch), ("max_num_tokens", max_num_tokens),
                                             ("requests", requests), ("arrival_rps", arrival_rps),
                                             ("replicas", replicas)) if value is not None},
            "tp": tp, "pp": pp, "ep": ep, "dp_attention": dp_attention, "cp": cp,
        }, "eval", catalog=catalog, labels=FLAGS)]
    rows = evaluate_cases(parsed, catalog)
    for i, r in enumerate(rows):  # served differently than written: say so, never silently
        for note in r.get("assumed", ()):
            typer.echo(f"warning: {f'{cases}: case[{i}]' if cases is not None else 'eval'}: {note}", err=True)
    if format == EvalFormat.json:
        render.print_json(rows if cases is not None else rows[0])
        return
    out = render.table("hardware", "model", "chips", "layout", "w/kv", "in/out", "batch", "TTFT s", "TPOT ms",
                       "tok/s", "KV cap tok", "GB/chip", "$/h", "$/Mtok\nout", "fits",
                       right=("chips", "batch", "TTFT s", "TPOT ms", "tok/s", "KV cap tok", "GB/chip",
                              "$/h", "$/Mtok\nout"), compact=True)
    for column in out.columns[:2]:  # ids are never folded mid-word
        column.no_wrap = True
    uncalibrated = sorted({r["hardware"] for r in rows if r.get("calibration") == "uncalibrated"})
    for r in rows:
        layout = layout_cell(r) if r.get("layout") else (r.get("layout_text") or "n/a")
        hw_cell = r["hardware"] + ("*" if r["hardware"] in uncalibrated else "")
        out.add_row(hw_cell, _model_cell(r["model"], catalog), str(r["chips"]), layout, f"{r['weight_dtype']}/{r['kv_dtype']}",
                    f"{r['input']}/{r['output']}", "n/a" if r["batch"] is None else str(r["batch"]), _fmt(r["ttft_s"], 3),
                    _fmt(r["tpot_s"] and r["tpot_s"] * 1e3, 2), _fmt(r["throughput_tok_s"], 0),
                    _fmt(r["kv_capacity_tokens"], 0), _fmt(r["memory_gb_per_chip"], 1),
                    _fmt(r["cost_per_hour"], 2), _fmt(r["usd_per_mtok_output"], 3),
                    "yes" if r["fits"] else f"no: {r['reason']}")
    con = render.console()
    con.print(out)
    note = link_note(rows)
    if note:
        con.print(note, markup=False)
    for line in _layout_notes(rows, cases is not None):
        con.print(line, markup=False)
    for line in dict.fromkeys(_speculation_note(r) for r in rows if r.get("spec_acceptance")):
        con.print(line, markup=False)
    if uncalibrated:
        con.print(f"{UNCALIBRATED_NOTE} ({_priors(uncalibrated, catalog)}); "
                  "p10-p90 band in JSON (`<metric>_low`, `<metric>_high`)", markup=False)


def _model_cell(model: str, catalog) -> str:
    """A config.json path shows as the model's ID (as `planner models import` names it): a long
    path squeezed every other column of the table, and the warnings already use the ID."""
    from planner.catalog import is_config_path
    from planner.errors import PlannerError

    if not is_config_path(model):
        return model
    try:
        return catalog.model(model).id
    except PlannerError:
        return model


def _layout_notes(rows: list[dict], from_file: bool) -> list[str]:
    """How an unpinned layout was chosen: the table shows one layout, and a reader must not take it
    for the only one the chips allow, nor guess what it was chosen for (`layout_chosen` in JSON)."""
    from planner.evaluation import CHOSEN_CLOSEST, CHOSEN_LATENCY, CHOSEN_THROUGHPUT

    rules = {CHOSEN_THROUGHPUT: "highest throughput at batch max, ties by request latency",
             CHOSEN_LATENCY: "lowest request latency at the fixed batch: TTFT + (output - 1) x TPOT",
             CHOSEN_CLOSEST: "none fits: the one closest to fitting, least memory per chip"}
    chosen: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("layout_chosen") in rules:
            chosen.setdefault(r["layout_chosen"], []).append(i)
    pin = "the keys tp, pp, ep, dp_attention, cp" if from_file else "--tp, --pp, --ep, --dp-attention, --cp"
    lines = []
    for rule, indices in chosen.items():
        if from_file:
            whose = "each case's" if len(indices) > 1 else "its"
            lines.append(f"layout of {_case_ranges(indices)}: not pinned, so the best of {whose} replica counts and "
                         f"layouts is shown ({rules[rule]}); pin one with {pin}")
        else:
            row = rows[indices[0]]
            options = row.get("layouts_considered")
            of = f"the best of {options:,} replica counts and layouts for {row['chips']:,} chips" if options else "the best layout"
            lines.append(f"layout: not pinned, so {of} is shown ({rules[rule]}); pin one with {pin}")
    return lines


def _case_ranges(indices: list[int]) -> str:
    """Ascending case indices as runs, e.g. "case[0]..case[3], case[7]": a file of hundreds of cases
    gets a line, not a paragraph."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"case[{a}]" if a == b else f"case[{a}]..case[{b}]" for a, b in runs)


def _speculation_note(row: dict) -> str:
    """What a speculative row's tokens per step rest on, so a collapsed acceptance is never silent."""
    per_step = row.get("tokens_per_step")
    at = f"{per_step:.2f} tokens per verify step at {row['input']:,} tokens of context" if per_step else "n/a"
    return (f"speculation {row['spec_method']} k={row['spec_k']}: {at}; acceptance from {row['spec_acceptance']} "
            "(--spec-alpha sets your drafter's)")


def _priors(hardware: list[str], catalog) -> str:
    """Where each uncalibrated chip's efficiencies come from, e.g. "mi355x: priors from cdna3's fit"."""
    words = []
    for hw_id in hardware:
        acc = catalog.hardware.get(hw_id)
        parent = catalog.calibration[acc.family].prior_from if acc is not None else None
        words.append(f"{hw_id}: priors from {parent}'s fit" if parent else f"{hw_id}: prior efficiencies")
    return "; ".join(words)


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"
