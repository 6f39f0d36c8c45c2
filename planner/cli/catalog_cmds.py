"""`planner hardware list|show` and `planner models list|show`: browse the catalogs with citations."""

from __future__ import annotations

import typing
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from planner import render
from planner.catalog import Catalog, load_catalog
from planner.errors import InputFileError
from planner.model.power import sustained_peak_fraction
from planner.schema import Accelerator, ModelSpec


class Format(StrEnum):
    table = "table"
    json = "json"


Kind = StrEnum(  # type: ignore[misc]
    "Kind", {k: k for k in typing.get_args(Accelerator.model_fields["kind"].annotation)}
)

FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]

hardware_app = typer.Typer(help="Browse the accelerator catalog (hardware/*.toml).", no_args_is_help=True)
models_app = typer.Typer(help="Browse the model catalog (planner/data/models.toml).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(hardware_app, name="hardware", rich_help_panel="Catalog")
    app.add_typer(models_app, name="models", rich_help_panel="Catalog")


# ---------------------------------------------------------------- records (the JSON form)


def hardware_record(cat: Catalog, acc: Accelerator) -> dict[str, Any]:
    """Every field, the derived memory figures, and `sources` resolved to citation text."""
    record = acc.model_dump(mode="json")
    record["source_keys"] = record.pop("sources")
    record["sources"] = {field: cat.citation(acc, field) for field in acc.sources}
    known = cat.hardware_sources[acc.id]
    for api in record["api_prices"]:
        api["citation"] = known.get(api["source"])
    record["memory_gb"] = acc.memory_gb
    record["memory_gbps"] = acc.memory_gbps
    record["memory_kind"] = "hbm" if acc.hbm_gb > 0 else "sram"
    record["sustained_peak_fraction"] = sustained_peak_fraction(acc.power_w, cat.family(acc))
    record["admission_interval_steps"] = cat.family(acc).admission_interval_steps
    record["first_token_steps"] = cat.family(acc).first_token_steps
    record["file"] = cat.hardware_files[acc.id].name
    return record


def model_record(cat: Catalog, spec: ModelSpec) -> dict[str, Any]:
    record = spec.model_dump(mode="json")
    record["source_keys"] = record.pop("sources")
    record["sources"] = {field: cat.model_sources.get(key) for field, key in spec.sources.items()}
    record["is_moe"] = spec.is_moe
    record["kv_bytes_per_token_bf16"] = render.kv_bytes_per_token(spec, "bf16")
    from planner.model.arch import param_counts

    counts = param_counts(spec)
    record["params_total_derived"], record["params_active_derived"] = counts.total, counts.active
    return record


# ---------------------------------------------------------------- cells


def _sig(value: object) -> str:
    """Compact number: integers with separators, otherwise three significant digits."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return render.num(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _memory_cell(acc: Accelerator) -> str:
    shown = _sig(acc.memory_gb)
    return shown if acc.hbm_gb > 0 else f"{shown} SRAM"


def _experts_cell(spec: ModelSpec) -> str:
    if not spec.is_moe:
        return "-"
    text = f"{spec.experts_routed} (top-{spec.experts_active})"
    if spec.experts_shared:
        text += f" +{spec.experts_shared} shared"
    return text


def _params_cell(spec: ModelSpec) -> str:
    """Published total / active parameters; where none is published, the planner's own count from
    the architecture (marked ~), which is what it sizes weights with."""
    from planner.model.arch import param_counts  # imports jax: not at module level (the CLI stays light)

    counts = param_counts(spec)
    total = spec.params_total_published
    active = spec.params_active_published
    if active is None and not spec.is_moe:
        active = total

    def cell(published: float | None, derived: float) -> str:
        return render.count(published) if published is not None else f"~{render.count(derived)}"

    return f"{cell(total, counts.total)} / {cell(active, counts.active)}"


def _value_cell(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, int | float):
        return _sig(value)
    return str(value)


# ---------------------------------------------------------------- hardware


@hardware_app.command("list")
def hardware_list(
    format: FormatOption = Format.table,
    kind: Annotated[Kind | None, typer.Option("--kind", help="Only this architecture class.")] = None,
) -> None:
    """List every accelerator: memory, bandwidth, dense peak compute, scale-up, price."""
    cat = load_catalog()
    chips = [a for a in cat.hardware.values() if kind is None or a.kind == kind.value]
    if format is Format.json:
        render.print_json([hardware_record(cat, a) for a in chips])
        return
    out = render.table(
        "id", "name", "kind", "memory GB", "BW TB/s", "bf16 TFLOPs", "fp8 TFLOPs", "fp4 TFLOPs",
        "scale-up GB/s x domain", "$/h", "price",
        title=f"{len(chips)} accelerators",
        caption="Dense peak FLOPs per chip ('-' unsupported, '?' unknown). Memory is HBM, or on-chip SRAM "
        "where marked. Scale-up: GB/s per direction per chip x chips per domain. $/h per chip.",
        right=("memory GB", "BW TB/s", "bf16 TFLOPs", "fp8 TFLOPs", "fp4 TFLOPs", "scale-up GB/s x domain",
               "$/h"),
    )
    for a in chips:
        out.add_row(
            a.id, a.name, a.kind, _memory_cell(a), _sig(a.memory_gbps / 1000), _sig(a.bf16_tflops),
            _sig(a.fp8_tflops), _sig(a.fp4_tflops), f"{_sig(a.scale_up_gbps)} x {a.scale_up_domain}",
            f"{a.usd_per_hour:.2f}", a.price_kind,
        )
    render.console().print(out)


@hardware_app.command("show")
def hardware_show(
    hw_id: Annotated[str, typer.Argument(metavar="ID", help="Hardware ID, e.g. h100-sxm.")],
    format: FormatOption = Format.table,
) -> None:
    """Show every field of one accelerator with the source each number comes from."""
    cat = load_catalog()
    acc = cat.accelerator(hw_id)
    if format is Format.json:
        render.print_json(hardware_record(cat, acc))
        return
    known = cat.hardware_sources[acc.id]
    out = render.table("field", "value", "source", title=f"{acc.id}: {acc.name}  ({cat.hardware_files[acc.id].name})")
    fallbacks = _fallbacks(acc, cat.family(acc))
    for field in Accelerator.model_fields:
        if field in ("sources", "api_prices"):
            continue
        out.add_row(field, fallbacks.get(field) or _value_cell(getattr(acc, field)), acc.sources.get(field, ""))
    out.add_row("memory_gb (derived)", _sig(acc.memory_gb), "hbm_gb, or sram_mb / 1000 on SRAM-only chips")
    out.add_row("memory_gbps (derived)", _sig(acc.memory_gbps), "hbm_gbps, or sram_gbps on SRAM-only chips")
    fam = cat.family(acc)
    out.add_row("sustained_peak_fraction (derived)", f"{sustained_peak_fraction(acc.power_w, fam):.2f}",
                f"of the rated FLOPs: (power_w / {fam.id}'s full_clock_power_w {fam.full_clock_power_w:g} W)"
                f"^{fam.power_clock_exponent:g}, at most 1; 0 W = the rated peak holds (planner/model/README.md)")
    out.add_row("admission_interval_steps (family)", f"{fam.admission_interval_steps:g}",
                f"{fam.id}'s calibration: under load a new prompt waits for the scheduler's next admission, half of "
                "this many decode steps on average (1: every step; planner/model/README.md)")
    out.add_row("first_token_steps (family)", f"{fam.first_token_steps:g}",
                f"{fam.id}'s calibration: decode steps a first token waits for after its prefill, added to TTFT "
                "(0: the prefill emits it; planner/model/README.md)")
    for api in acc.api_prices:
        speed = f", {_value_cell(api.tokens_per_s)} tok/s" if api.tokens_per_s is not None else ""
        cached = (f", cached in ${_value_cell(api.usd_per_mtok_cached_input)}"
                  if api.usd_per_mtok_cached_input is not None else "")
        value = (f"{api.model}: ${_value_cell(api.usd_per_mtok_input)} in / "
                 f"${_value_cell(api.usd_per_mtok_output)} out per Mtok{cached}{speed}")
        out.add_row("api price", value, api.source)
    used = [*acc.sources.values(), *(api.source for api in acc.api_prices)]
    _print_with_sources(out, used, known)


def _fallbacks(acc: Accelerator, fam) -> dict[str, str]:
    """Cells for fields the catalog leaves unknown but the model still needs a value for: what it
    assumes instead (planner.lowering), so "n/a" never hides an assumption in play."""
    from planner.lowering import UNKNOWN_LINK_GBPS, UNKNOWN_SCALE_OUT_GBPS

    def unknown(value: object) -> bool:
        return not isinstance(value, int | float) or isinstance(value, bool)

    out = {}
    if unknown(acc.scale_out_gbps):
        out["scale_out_gbps"] = (f"unknown (assumed {UNKNOWN_SCALE_OUT_GBPS:g} GB/s per chip: one 400 Gb/s port; "
                                 "plans that cross scale-up domains name it)")
    if unknown(acc.allreduce_latency_us):
        out["allreduce_latency_us"] = f"unknown (assumed {fam.id}'s collective_latency_us, {fam.collective_latency_us:g})"
    if acc.scale_up_domain > 1 and unknown(acc.scale_up_gbps):
        out["scale_up_gbps"] = f"unknown (assumed {UNKNOWN_LINK_GBPS:g} GB/s: PCIe Gen5 x16 per direction)"
    if unknown(acc.host_link_gbps):
        out["host_link_gbps"] = f"unknown (assumed {UNKNOWN_LINK_GBPS:g} GB/s: PCIe Gen5 x16 per direction)"
    return out


def _print_with_sources(out: Table, used: list[str], known: dict[str, str]) -> None:
    """The field table, then each cited source key once with its citation text."""
    legend = render.table("source", "citation", title="sources")
    for key in dict.fromkeys(used):
        legend.add_row(key, known.get(key, "(not in [sources])"))
    con = render.console()
    con.print(out)
    con.print()
    con.print(legend)


# ---------------------------------------------------------------- models


@models_app.command("list")
def models_list(format: FormatOption = Format.table) -> None:
    """List every model: attention, shape, experts, parameters, KV bytes per token, context."""
    cat = load_catalog()
    specs = list(cat.models.values())
    if format is Format.json:
        render.print_json([model_record(cat, m) for m in specs])
        return
    out = render.table(
        "id", "attention", "layers", "hidden", "heads/kv", "experts", "params total/active",
        "KV KiB/token bf16", "max context", "weights",
        title=f"{len(specs)} models",
        caption="Params are the published totals; ~ where none is published: the planner's count from the "
        "architecture, which sizes the weights (`planner models show` gives both). Weights: the dtype the "
        "published checkpoint is served at, which `planner eval` assumes when given none (unknown: not "
        "recorded, eval assumes bf16); int4+bf16: 4-bit experts beside non-expert matrices (attention, "
        "shared experts) the checkpoint keeps at bf16, or a dense model's 4-bit MLPs beside its attention. KV per token at short "
        "context, all layers: GQA 2*kv_heads*head_dim*2 B per layer, MLA (kv_lora_rank+rope_dim)*2 B; "
        "sparse layers add their indexer key, compressed layers 1/ratio of an entry; fixed linear/SSM "
        "states are not per token.",
        right=("layers", "hidden", "heads/kv", "params total/active", "KV KiB/token bf16", "max context"),
    )
    for m in specs:
        out.add_row(
            m.id, m.attention, str(m.layers), f"{m.hidden:,}", f"{m.heads}/{m.kv_heads}", _experts_cell(m),
            _params_cell(m), render.kib(render.kv_bytes_per_token(m)), f"{m.max_context:,}",
            _weights_cell(m),
        )
    render.console().print(out)


def _weights_cell(m: ModelSpec) -> str:
    if m.weight_dtype_published is None:
        return "unknown"
    dense = m.weight_dtype_dense_published
    return m.weight_dtype_published + (f"+{dense}" if dense else "")


@models_app.command("show")
def models_show(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="Model ID, e.g. llama-3.1-70b.")],
    format: FormatOption = Format.table,
) -> None:
    """Show every field of one model with the source each number comes from."""
    cat = load_catalog()
    spec = cat.model(model_id)
    if format is Format.json:
        render.print_json(model_record(cat, spec))
        return
    out = render.table("field", "value", "source", title=f"{spec.id}: {spec.name}")
    for field in ModelSpec.model_fields:
        if field == "sources":
            continue
        out.add_row(field, _value_cell(getattr(spec, field)), spec.sources.get(field, ""))
    from planner.model.arch import param_counts

    counts = param_counts(spec)
    out.add_row("params_total (derived)", render.count(counts.total),
                "the planner's count from the architecture fields (planner/model/arch.py), which sizes the weights")
    out.add_row("params_active (derived)", render.count(counts.active),
                "per token: the dense part, the active routed experts, embeddings and LM head")
    kv = render.kv_bytes_per_token(spec)
    out.add_row("kv_bytes_per_token_bf16 (derived)", f"{kv:,}",
                "per attention kind (planner/model/attention.py): "
                + ("MLA: (kv_lora_rank+qk_rope_head_dim)*2 per layer" if spec.attention == "mla"
                   else "shared KV: head_dim*2 per entry" if spec.attention == "shared-kv"
                   else "GQA: 2*kv_heads*head_dim*2 per layer")
                + (", + indexer key" if spec.index_topk else "")
                + (", / compress ratio" if spec.compress_ratios else ""))
    _print_with_sources(out, list(spec.sources.values()), cat.model_sources)


class ImportFormat(StrEnum):
    toml = "toml"
    json = "json"


@models_app.command("import")
def models_import(
    config: Annotated[str, typer.Argument(metavar="CONFIG.json", help="A Hugging Face config.json.")],
    model_id: Annotated[str | None, typer.Option("--id", help="Catalog ID for the entry (default: from the "
                                                 "file or repository name).")] = None,
    format: Annotated[ImportFormat, typer.Option("--format", "-f", help="Output format.")] = ImportFormat.toml,
) -> None:
    """Print the catalog entry of a Hugging Face config.json (a ready `--catalog` file), citing the file."""
    from pathlib import Path

    from planner.hf_import import import_model, to_toml

    if model_id is not None:
        from planner.schema.common import _KEBAB

        if not _KEBAB.match(model_id):
            raise InputFileError(f"--id: '{model_id}' is not a lowercase kebab-case ID, e.g. 'my-model-7b'")
    spec, sources = import_model(Path(config), model_id)
    if format is ImportFormat.json:
        entry = spec.model_dump(mode="json", exclude_none=True)
        render.print_json({"sources": sources, "model": [entry]})
        return
    typer.echo(to_toml(spec, sources), nl=False)
