"""`planner eval`: predict fixed configurations, one or many, in a single jitted call.

Cases may mix hardware and models: every case becomes one or more rows of stacked arrays (one per
candidate replica count and parallel layout), so the whole file is one kernel launch (and one
compile per process).

Layouts: `chips` are the accelerators of the measured system. Engines often run several replicas
on them (an MLPerf "8-GPU" system may be 8 x TP1), so unless `replicas` pins it, every replica
count that divides `chips` is evaluated and the best is reported: the highest system throughput
for `batch = "max"`, the lowest request latency (TTFT + (output - 1) x TPOT) for a fixed batch
(ties: fewer replicas). Each replica
likewise tries every parallel layout `grid.layouts_for` lists for its chips (tensor, pipeline,
expert, attention-data and context parallelism), unless `tp`/`pp`/`ep`/`dp_attention`/`cp` pin one. A fixed batch and an
`arrival_rps` are for the whole system and are split evenly over the replicas.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np

from planner import executables
from planner.catalog import Catalog, tokenizer_mismatch
from planner.checkpoint_dtype import quantised_by_name
from planner.errors import InputFileError, PlannerError, UnknownIdError
from planner.grid import Layout, heads_split, layouts_for, legacy_layout
from planner.lowering import (
    KV_BYTES,
    WEIGHT_BYTES,
    config_arrays,
    dense_weight_dtype,
    draft_arrays,
    hardware_arrays,
    head_weight_dtype,
    model_arrays,
    supports_weight_dtype,
)
from planner.model.types import Arch, Spec
from planner.plans import layout_fields
from planner.render import figure
from planner.schema.common import _KEBAB, canonical_dtype
from planner.schema.scenario import SPEC_METHODS, Speculative
from planner.speculative_methods import incompatibility
from planner.uncertainty import add_bands, band_for

DEFAULT_HBM_FRACTION = 0.9  # engines' default KV memory fraction (trtllm-bench 0.90, vLLM 0.90)
CASE_KEYS = ("hardware", "model", "chips", "batch", "input", "output", "weight_dtype", "kv_dtype")
CACHE_TIERS = {"hbm": 0.0, "dram": 1.0, "nvme": 2.0}
METRICS = ("ttft_s", "tpot_s", "prefill_tok_s", "decode_tok_s", "throughput_tok_s")


@dataclass(frozen=True)
class EvalCase:
    hardware: str
    model: str
    chips: int
    batch: int | str  # an int, or "max"
    input: int
    output: int
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    spec_k: int = 0
    spec_alpha: float | None = None  # None: the method's default curve (0.7 without --spec-method)
    draft: str | None = None
    spec_method: str | None = None  # None: a draft model if the model lists one, else its MTP head
    cached_tokens: int = 0
    cache_tier: str = "dram"
    max_batch: int | None = None
    max_num_tokens: int | None = None
    requests: int | None = None
    arrival_rps: float | None = None
    replicas: int | None = None  # replicas on the `chips` (data parallel); None = the best
    unresolved: str | None = None  # why the case cannot be evaluated (an unknown ID in a cases file)
    assumed: tuple[str, ...] = ()  # what was assumed for a value the case leaves unknown (its row says)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    layout: dict[str, int] = field(default_factory=dict)  # pinned degrees (tp, pp, ep, dp_attention, cp)


LAYOUT_KEYS = ("tp", "pp", "ep", "dp_attention", "cp")
REQUIRED_CASE_KEYS = ("hardware", "model", "chips", "batch", "input", "output")
OPTIONAL_KEYS = ("spec_k", "spec_alpha", "spec_method", "draft", "cached_tokens", "cache_tier", "max_batch", "max_num_tokens",
                 "requests", "arrival_rps", "replicas", *LAYOUT_KEYS)
LIMITS = {"chips": 100_000, "batch": 1_000_000, "input": 10_000_000, "output": 10_000_000,
          "max_batch": 1_000_000, "max_num_tokens": 10_000_000, "requests": 100_000_000}
ALPHA_RANGE = (0.001, 0.999)  # as the scenario's acceptance: 1 - 1e-12 is exactly 1 in float32
MAX_ARRIVAL_RPS = 1e7


LENIENT_DTYPES = (
    ("weight_dtype", "mxfp4", "int4", "weight-only 4-bit: vLLM dequantises MXFP4 into 16-bit GEMMs on Hopper and, "
     "by default, on Blackwell"),
    ("kv_dtype", "auto", "bf16", "vLLM's 'auto' KV cache takes the model's 16-bit dtype"),
)
"""Dtype names engines use (a cases file or a flag may too) that stand for a modelled dtype only under an
assumption, which the row states (`assumed`) and eval prints as a warning; in a cases file a dtype the
planner does not model at all leaves that case unevaluated."""
UNKNOWN_KV = {"fp8": "fp8", "fp4": "fp8"}
"""KV dtype for a case that leaves it "unknown", by weight dtype: FP8 beside FP8/FP4 weights, whose
serving recipes quantise the KV cache too; else the 16-bit model dtype, vLLM's and SGLang's default."""


MOE_ONLY = {
    "ep": "it has no experts to spread (expert parallelism applies to MoE layers); leave ep at 1",
    "dp_attention": "attention data-parallel groups share MoE layers, which it has none of (engines run dense models "
                    "as replicas: pin replicas, or leave dp_attention at 1)",
}
"""Layout keys only a MoE model has a use for, and what a dense model's case is told."""


def case_from_dict(raw: dict[str, Any], where: str, *, catalog: Catalog | None = None,
                   labels: dict[str, str] | None = None, lenient_ids: bool = False) -> EvalCase:
    """Validate one `[[case]]` table; keys outside the contract are kept aside and ignored.

    A key that looks like a typo of a known one (`weigth_dtype`) is an error, not an annotation.
    Errors name `where` and the key (`labels` maps keys to other names, e.g. command-line flags);
    given the `catalog`, hardware, model and draft IDs are checked with closest-match hints. With
    `lenient_ids` (a cases file) an unknown ID does not stop the file: the case is returned
    `unresolved`, and its row says why; so does a case whose keys are each valid but do not combine
    (a pinned layout that does not divide its chips, a draft this model cannot use, a batch that does
    not split over its replicas). So does a value the validation files mark unknown (chips,
    batch, input or output 0, weight_dtype "unknown"); a KV dtype "unknown" is evaluated as engines
    default it (`UNKNOWN_KV`), and the row says so.
    """
    def at(key: str) -> str:
        return labels[key] if labels and key in labels else f"{where}.{key}"

    not_stated = []
    assumed = []
    if raw.get("weight_dtype") is None and catalog is not None:
        published = published_weight_dtype(catalog, raw.get("model"), raw.get("hardware"))
        raw = {**raw, "weight_dtype": published[0] if published else "bf16"}
        if published and published[1]:
            assumed.append(published[1])
    raw_in = raw
    for key, name, stands_for, why in LENIENT_DTYPES:  # real format names: on the command line too
        if isinstance(raw.get(key), str) and raw[key].strip().lower() == name:
            raw = {**raw, key: stands_for}
            assumed.append(f'{key} "{name}": evaluated as {stands_for} ({why})')
    if lenient_ids:
        raw = dict(raw)
        for key in ("chips", "batch", "input", "output"):
            if key in raw and _is_int(raw[key]) and raw[key] == 0:
                not_stated.append(f"{key} = 0, which a cases file reads as 'not stated by the source' (the "
                                  "validation files' convention); give a value to evaluate this case")
                raw[key] = 1  # validated as a placeholder; the row reports the 0
        if raw.get("weight_dtype") == "unknown":
            not_stated.append('weight_dtype "unknown": not stated by the source; give it to evaluate this case')
            raw["weight_dtype"] = "bf16"
        for key, table in (("weight_dtype", WEIGHT_BYTES), ("kv_dtype", KV_BYTES)):
            value = raw.get(key)
            if isinstance(value, str) and value != "unknown" and canonical_dtype(value) not in table:
                not_stated.append(f"{key} {value!r} is not a dtype the planner models; use one of {', '.join(table)}")
                raw[key] = "bf16"
        if raw.get("kv_dtype") == "unknown":
            wd_known = canonical_dtype(raw.get("weight_dtype", "bf16"))
            raw["kv_dtype"] = UNKNOWN_KV.get(wd_known, "bf16")
            why = (f"{wd_known} weights' recipes quantise the KV cache too" if wd_known in UNKNOWN_KV
                   else "the engines' default, the model's 16-bit dtype")
            assumed.append(f'kv_dtype "unknown": evaluated as {raw["kv_dtype"]} ({why})')

    known = (*CASE_KEYS, *OPTIONAL_KEYS)
    for key in raw:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=3, cutoff=0.75)
            if near:
                raise InputFileError(f"{at(str(key))}: unknown key; did you mean {', '.join(near)}?")
    missing = [k for k in REQUIRED_CASE_KEYS if k not in raw]
    if missing:
        raise InputFileError(f"{where}: missing key '{missing[0]}' (a case needs {', '.join(REQUIRED_CASE_KEYS)}; "
                             "weight_dtype defaults to the published checkpoint's, kv_dtype to bf16)")
    for key in ("hardware", "model"):
        if not isinstance(raw[key], str):
            raise InputFileError(f"{at(key)}: {raw[key]!r} is not a {key} ID string, e.g. "
                                 f"{'h100-sxm' if key == 'hardware' else 'llama-3.1-8b'}")
    batch = raw["batch"]
    if not (batch == "max" or (_is_int(batch) and 1 <= batch <= LIMITS["batch"])):
        raise InputFileError(f"{at('batch')}: {_show(batch)} is not an integer in [1, {LIMITS['batch']}] or \"max\"")
    for key in ("chips", "input", "output"):
        value = raw[key]
        if not _is_int(value) or not 1 <= value <= LIMITS[key]:
            raise InputFileError(f"{at(key)}: {_show(value)} must be an integer in [1, {LIMITS[key]}]")
    wd = canonical_dtype(raw.get("weight_dtype", "bf16"))
    kd = canonical_dtype(raw.get("kv_dtype", "bf16"))
    if not isinstance(wd, str) or wd not in WEIGHT_BYTES:
        raise InputFileError(f"{at('weight_dtype')}: {_show(wd)} is not one of {', '.join(WEIGHT_BYTES)} "
                             "(or an alias: fp16, nvfp4, awq, w8a8, ...)")
    if not isinstance(kd, str) or kd not in KV_BYTES:
        raise InputFileError(f"{at('kv_dtype')}: {_show(kd)} is not one of {', '.join(KV_BYTES)} "
                             "(or an alias: fp16, fp8_e4m3, ...)")
    k = raw.get("spec_k", 0)
    alpha = raw.get("spec_alpha")
    method = raw.get("spec_method")
    if not _is_int(k) or not 0 <= k <= 16:
        raise InputFileError(f"{at('spec_k')}: {_show(k)} must be an integer in [0, 16]")
    lo, hi = ALPHA_RANGE
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, int | float) or not lo <= alpha <= hi):
        raise InputFileError(f"{at('spec_alpha')}: {_show(alpha)} must be a number in [{lo}, {hi}]")
    if method is not None and method not in SPEC_METHODS:
        raise InputFileError(f"{at('spec_method')}: {_show(method)} is not one of {', '.join(SPEC_METHODS)}")
    draft = raw.get("draft")
    if draft is not None and (not isinstance(draft, str) or not _KEBAB.match(draft)):
        raise InputFileError(f"{at('draft')}: {_show(draft)} is not a model ID (lowercase kebab-case, "
                             "e.g. 'llama-3.2-1b')")
    limits = _engine_limits(raw, at)
    serving = _serving_keys(raw, at)
    if k == 0 and (alpha is not None or method is not None):
        given = " and ".join(f"{key} {raw[key]!r}" for key in ("spec_alpha", "spec_method") if raw.get(key) is not None)
        assumed.append(f"{given} without spec_k: speculation is off (spec_k = 0), so it changes nothing; "
                       "give spec_k to draft")
    unresolved = None  # an unknown ID or a config.json the importer cannot read (cases files)
    mismatches: list[str] = []  # values each valid that do not combine (cases files): the first is the reason
    with _as_row(lenient_ids, where, mismatches):
        _check_combination(raw, batch, limits, serving, at)
    if catalog is not None:
        for key, ident, lookup in (("hardware", raw["hardware"], catalog.accelerator),
                                   ("model", raw["model"], catalog.model), ("draft", draft, catalog.model)):
            if ident is None:
                continue
            try:
                lookup(ident)
            except UnknownIdError as exc:
                if not lenient_ids:
                    raise UnknownIdError(f"{at(key)}: {exc}") from None
                unresolved = unresolved or f"{key}: {exc}"
            except InputFileError as exc:  # a config.json the importer cannot interpret
                if not lenient_ids or key != "model":
                    raise
                unresolved = unresolved or str(exc)  # the row says "cannot evaluate: " once
        with _as_row(lenient_ids, where, mismatches):  # a valid draft or method this model cannot use
            if draft is not None and unresolved is None:
                why = tokenizer_mismatch(catalog.model(draft), catalog.model(raw["model"]))
                if why is None and method in (None, "draft") and k > 0:  # it drafts: it must also be smaller
                    why = incompatibility("draft", catalog, catalog.model(raw["model"]), _method_settings("draft", draft, alpha))
                if why:
                    raise InputFileError(f"{at('draft')}: {why}")
            if method is not None and unresolved is None and k > 0:
                why = incompatibility(method, catalog, catalog.model(raw["model"]),
                                      _method_settings(method, draft, alpha))
                if why:
                    raise InputFileError(f"{at('spec_method')}: {why}")
    pinned = {key: raw[key] for key in LAYOUT_KEYS if raw.get(key) is not None}
    for key, value in pinned.items():
        if not _is_int(value) or not 1 <= value <= LIMITS["chips"]:
            raise InputFileError(f"{at(key)}: {_show(value)} must be an integer in [1, {LIMITS['chips']}]")
    with _as_row(lenient_ids, where, mismatches):  # a layout the chips or the model cannot hold
        if catalog is not None and unresolved is None:
            refuse_moe_only(pinned, catalog.model(raw["model"]), at, raw["model"])
        if pinned:
            lay = pinned_layout(raw["chips"], pinned, at)
            if limits["replicas"] is not None and limits["replicas"] != lay.replicas_per_system:
                raise InputFileError(f"{at('replicas')}: {limits['replicas']} replicas, but the pinned layout "
                                     f"(tp x dp_attention x pp = {lay.instance_chips}) makes {lay.replicas_per_system} "
                                     f"on {raw['chips']} chips")
            if catalog is not None and unresolved is None:
                domain = catalog.accelerator(raw["hardware"]).scale_up_domain
                width = lay.tp * lay.dp_attention
                if lay.tp > domain or (width > domain and (lay.ep != width or width % domain)):
                    raise InputFileError(
                        f"{at('tp')}: tp x dp_attention = {width} spans more than {raw['hardware']}'s "
                        f"scale-up domain of {domain} chips; tensor parallelism stays inside a domain (use pp across "
                        "domains, or ep = tp x dp_attention over whole domains for expert parallelism across nodes)")
    extra = {key: v for key, v in raw.items() if key not in CASE_KEYS and key not in OPTIONAL_KEYS}
    if not_stated:  # before any mismatch, which would be about the placeholder 1
        unresolved = unresolved or "; ".join(not_stated)
        return EvalCase(hardware=raw["hardware"], model=raw["model"], chips=raw_in["chips"], batch=raw_in["batch"],
                        input=raw_in["input"], output=raw_in["output"],
                        weight_dtype=str(raw_in.get("weight_dtype", wd)), kv_dtype=str(raw_in.get("kv_dtype", kd)),
                        unresolved=unresolved, extra=extra)
    return EvalCase(hardware=raw["hardware"], model=raw["model"], chips=raw["chips"], batch=batch,
                    input=raw["input"], output=raw["output"], weight_dtype=wd, kv_dtype=kd, spec_k=k,
                    spec_alpha=None if alpha is None else float(alpha), draft=draft, spec_method=method,
                    unresolved=unresolved or next(iter(mismatches), None), assumed=tuple(assumed), extra=extra,
                    layout=pinned, **limits, **serving)


def published_weight_dtype(catalog: Catalog, model: Any, hardware: Any) -> tuple[str, str | None] | None:
    """The weight dtype a case that names none is evaluated at: the one the model's published checkpoint
    is served at (`ModelSpec.weight_dtype_published`), and a note when that is not the 16-bit default
    (FP4 on a chip without FP4 tensor cores runs as weight-only int4, as engines dequantise it). None
    when the model is unknown or its checkpoint dtype is not recorded (16-bit is then assumed)."""
    if not isinstance(model, str):
        return None
    try:
        spec = catalog.model(model)
    except PlannerError:
        return None  # reported where the IDs are checked
    dtype = spec.weight_dtype_published
    if dtype is None:
        called = spec.hf_repo if spec.hf_repo not in ("", "unknown") else spec.name  # a folder named like the repo
        named = quantised_by_name(called)
        return None if named is None else ("bf16", (
            f"weight_dtype not given: evaluated as bf16; {called}'s name says {named}, but no recorded "
            "config.json format confirms it: give weight_dtype to evaluate it so"))
    if dtype == "bf16":
        return dtype, None
    wider = spec.kept_wider()
    kept = f"{wider}, as published" if wider else ""
    note = f"weight_dtype not given: evaluated as {dtype}, the dtype {spec.id}'s published checkpoint ({spec.hf_repo}) is served at"
    note += f" (its {spec.narrowest_part}; {kept})" if kept else ""
    if isinstance(hardware, str) and dtype == "fp4":
        try:
            acc = catalog.accelerator(hardware)
        except PlannerError:
            return dtype, note
        if not supports_weight_dtype(acc, dtype):
            return "int4", (f"weight_dtype not given: {spec.id}'s published checkpoint ({spec.hf_repo}) is FP4; "
                            f"{acc.id} has no FP4 tensor cores, so it is evaluated as int4 (weight-only, as engines "
                            "dequantise it)" + (f"; {kept}" if kept else ""))
    return dtype, note


def _check_combination(raw: dict[str, Any], batch: Any, limits: dict[str, Any], serving: dict[str, Any], at) -> None:
    """Values each valid that one case cannot hold together (a cases file gives such a case its row)."""
    replicas = limits["replicas"]
    if replicas is not None and (replicas > raw["chips"] or raw["chips"] % replicas):
        raise InputFileError(f"{at('replicas')}: {replicas} replicas do not divide {raw['chips']} chips")
    if serving["cached_tokens"] > raw["input"]:
        raise InputFileError(f"{at('cached_tokens')}: {serving['cached_tokens']} is more than input = {raw['input']} "
                             "(the reused prefix is part of the prompt)")
    if batch != "max" and replicas is not None and batch % replicas:
        # each replica runs batch / replicas sequences: 1 over 2 replicas ran half a sequence each,
        # reported batch 2 and a self-contradicting reason ("needs 17.3 GB, more than 77.3 GB usable")
        raise InputFileError(f"{at('batch')}: {batch} sequences do not split evenly over replicas = "
                             f"{replicas} (each replica runs batch / replicas); give a multiple of "
                             f"{replicas}, or fewer replicas")
    if batch != "max" and limits["max_batch"] is not None and batch > limits["max_batch"]:
        raise InputFileError(f"{at('batch')}: {batch} sequences exceed max_batch = {limits['max_batch']}, the engine's "
                             "limit on sequences in flight; lower batch (or give batch = \"max\")")


@contextmanager
def _as_row(lenient: bool, where: str, reasons: list[str]) -> Iterator[None]:
    """Bad input raised inside, for a cases file (`lenient`) a reason for the case's row instead: the
    key without the file and case it is in."""
    try:
        yield
    except InputFileError as exc:
        if not lenient:
            raise
        message = str(exc)
        reasons.append(message[len(where) + 1:] if message.startswith(where + ".") else message)


def _engine_limits(raw: dict[str, Any], at) -> dict[str, Any]:
    """`max_batch`, `max_num_tokens`, `requests`: positive integers, or absent (no limit)."""
    out = {}
    for key in ("max_batch", "max_num_tokens", "requests", "replicas"):
        value = raw.get(key)
        limit = LIMITS.get(key, LIMITS["chips"])
        if value is not None and (not _is_int(value) or not 1 <= value <= limit):
            raise InputFileError(f"{at(key)}: {_show(value)} must be an integer in [1, {limit:,}]")
        out[key] = value
    return out


def _serving_keys(raw: dict[str, Any], at) -> dict[str, Any]:
    """`cached_tokens` + `cache_tier` (prefix reused from a tier) and `arrival_rps` (Poisson load)."""
    cached = raw.get("cached_tokens", 0)
    if not _is_int(cached) or not 0 <= cached <= LIMITS["input"]:
        raise InputFileError(f"{at('cached_tokens')}: {_show(cached)} must be an integer in [0, {LIMITS['input']:,}]")
    tier = raw.get("cache_tier", "dram")
    if tier not in CACHE_TIERS:
        raise InputFileError(f"{at('cache_tier')}: {_show(tier)} is not one of {', '.join(CACHE_TIERS)}")
    rate = raw.get("arrival_rps")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)
                             or not 0 < rate <= MAX_ARRIVAL_RPS):
        raise InputFileError(f"{at('arrival_rps')}: {_show(rate)} must be a number of requests/s in "
                             f"(0, {MAX_ARRIVAL_RPS:g}]")
    return {"cached_tokens": cached, "cache_tier": tier, "arrival_rps": None if rate is None else float(rate)}


def refuse_moe_only(pinned: dict[str, int], model: Any, at=lambda key: key, name: str | None = None) -> None:
    """Layout keys only a MoE model has a use for (`MOE_ONLY`), refused on a dense one: a pinned eval
    case and a plan file (`simulate --plan-file`) alike."""
    if model.experts_routed is not None:
        return
    for key, why in MOE_ONLY.items():
        if pinned.get(key, 1) > 1:
            raise InputFileError(f"{at(key)}: {pinned[key]}, but {name or model.id} is a dense model: {why}")


def pinned_layout(chips: int, pinned: dict[str, int], at=lambda key: key) -> Layout:
    """The layout a case pins; unpinned degrees default to 1, tp to what fills the chips."""
    pp, dp, cp = pinned.get("pp", 1), pinned.get("dp_attention", 1), pinned.get("cp", 1)
    tp = pinned.get("tp", max(chips // (pp * dp), 1))
    instance = tp * dp * pp
    if chips % instance:
        raise InputFileError(f"{at('tp')}: tp x dp_attention x pp = {instance} does not divide chips = {chips} "
                             "(the chips hold whole replicas of that layout)")
    ep = pinned.get("ep", 1)
    if ep not in (1, tp * dp):
        raise InputFileError(f"{at('ep')}: {ep} must be 1 (experts tensor parallel) or tp x dp_attention = {tp * dp} "
                             "(experts spread over the pipeline stage)")
    if tp % cp:
        raise InputFileError(f"{at('cp')}: {cp} must divide tp = {tp} (context parallelism shards KV within the tp group)")
    return Layout(tp=tp, pp=pp, ep=ep, dp_attention=dp, cp=cp, replicas_per_system=chips // instance)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    shown = "a table" if isinstance(value, dict) else repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


@cache
def _kernel():
    import jax

    from planner.model.loaded import evaluate_case

    return jax.jit(evaluate_case)


def _stack(rows: list[Any], cls):
    return cls(**{name: np.asarray([getattr(r, name) for r in rows], dtype=np.float32) for name in cls._fields})


def replica_candidates(case: EvalCase) -> list[int]:
    """Replica counts to try on the case's chips: every divisor that leaves each replica a whole
    batch (and a whole request of a finite run)."""
    if case.replicas is not None:
        return [case.replicas]
    out = []
    for r in range(1, case.chips + 1):
        if case.chips % r:
            continue
        if case.batch != "max" and case.batch < r:
            break
        if case.requests is not None and case.requests < r:
            break
        out.append(r)
    return out


CHOSEN_PINNED, CHOSEN_THROUGHPUT, CHOSEN_LATENCY, CHOSEN_CLOSEST = (
    "pinned", "best throughput", "lowest request latency", "closest to fitting (none fits)")
"""`layout_chosen`: the case pinned its layout, or the rule `_best` picked it by (the eval table
explains each of the last three: `planner.cli.eval_cmd`)."""


def evaluate_cases(cases: list[EvalCase], catalog: Catalog, search_layouts: bool = True) -> list[dict[str, Any]]:
    """Predict every case; a case that does not fit still returns its row with `fits = false`.
    `search_layouts = False` evaluates each replica count with the pre-search layout rule
    (`grid.legacy_layout`) unless the case pins one: the fidelity checks use it for measurements that
    do not state their layout, as the calibration was fitted that way."""
    if not cases:
        return []
    layouts = [layout_candidates(c, catalog, search_layouts) if c.unresolved is None else [] for c in cases]
    cases = [_without_layout(c, catalog) if c.unresolved is None and not found else c
             for c, found in zip(cases, layouts, strict=True)]
    resolved = [c for c in cases if c.unresolved is None]
    resolved_layouts = [found for c, found in zip(cases, layouts, strict=True) if c.unresolved is None]
    rows_by_case: dict[int, dict[str, Any]] = {}
    if resolved:
        expanded = [(i, r, lay) for i, found in enumerate(resolved_layouts) for r, lay in found]
        out = _run([(resolved[i], r, lay) for i, r, lay in expanded], catalog)
        candidates: dict[int, list[dict[str, Any]]] = {}
        for j, (i, r, lay) in enumerate(expanded):
            row = _row(resolved[i], r, {k: v[j] for k, v in out.items()})
            acc = catalog.accelerator(resolved[i].hardware)
            system = replace(lay, replicas_per_system=r)
            row.update(layout_fields(system, acc))
            row["layout_chosen"] = (CHOSEN_PINNED if resolved[i].layout else
                                    CHOSEN_THROUGHPUT if resolved[i].batch == "max" else CHOSEN_LATENCY)
            candidates.setdefault(i, []).append(row)
        for i, case in enumerate(resolved):
            best = _best(case, candidates[i])
            best["layouts_considered"] = len(candidates[i])  # (replica count, layout) options for the chips
            if memory_short(best) and not case.layout:
                best["layout_chosen"] = CHOSEN_CLOSEST
            rows_by_case[id(case)] = _annotate(case, catalog, best)
    return [rows_by_case[id(c)] if c.unresolved is None else _unresolved_row(c) for c in cases]


ROW_BUCKET = 64  # rows are padded to a multiple of this, so files of similar size share one compile


def _without_layout(case: EvalCase, catalog: Catalog) -> EvalCase:
    """The case, marked unresolved: no layout engines run fits its chips (1,000 H100s for one replica
    of an 8B model would need 125 pipeline stages of its 32 layers: tensor parallelism never spans the
    8-chip NVLink domain); it used to fall back to tp = chips, a layout no engine runs."""
    acc = catalog.accelerator(case.hardware)
    model = catalog.model(case.model)
    batch = "batch 'max'" if case.batch == "max" else f"batch {case.batch}"
    return replace(case, unresolved=(
        f"no layout runs {case.model} on {case.chips} {case.hardware} chips as {batch} allows "
        f"(tensor parallel within the {acc.scale_up_domain}-chip scale-up domain, at most one pipeline stage per "
        f"layer of its {model.layers}, at least one sequence per replica); use fewer chips, a larger batch for "
        "more replicas, or pin tp/pp/replicas"))


def layout_candidates(case: EvalCase, catalog: Catalog, search: bool = True) -> list[tuple[int, Layout]]:
    """(replicas, layout of one replica) pairs to evaluate: the pinned layout, or every layout
    `layouts_for` lists for the chips of each replica count (only the legacy rule without `search`);
    none where no layout engines run fits (`_without_layout`)."""
    if case.layout:
        lay = pinned_layout(case.chips, case.layout)
        return [(lay.replicas_per_system, replace(lay, replicas_per_system=1))]
    acc = catalog.accelerator(case.hardware)
    arch = model_arrays(catalog.model(case.model))
    out = []
    for r in replica_candidates(case):
        chips = case.chips // r
        options = (layouts_for(chips, acc.scale_up_domain, arch, family=acc.family) if search
                   else [legacy_layout(chips, acc.scale_up_domain, arch)])
        out += [(r, lay) for lay in options]
    return out


def _run(pairs: list[tuple[EvalCase, int, Layout]], catalog: Catalog) -> dict[str, np.ndarray]:
    real = len(pairs)
    pairs = pairs + [pairs[-1]] * (-real % ROW_BUCKET)
    out = _run_rows(pairs, catalog)
    return {k: v[:real] for k, v in out.items()}


def _run_rows(pairs: list[tuple[EvalCase, int, Layout]], catalog: Catalog) -> dict[str, np.ndarray]:
    cases = [c for c, _, _ in pairs]
    replicas = np.asarray([r for _, r, _ in pairs], np.float32)
    layouts = [lay for _, _, lay in pairs]
    accs = [catalog.accelerator(c.hardware) for c in cases]
    models = [catalog.model(c.model) for c in cases]
    hw = hardware_arrays(accs, catalog)
    arch = _stack([model_arrays(m) for m in models], Arch)
    specs, draft_bytes = [], []
    for case, model in zip(cases, models, strict=True):
        drafter = _speculative_for(case, model)
        s, wbytes = draft_arrays(catalog, model, drafter, case.weight_dtype)
        specs.append(s)
        draft_bytes.append(wbytes if case.spec_k > 0 else 0.0)
    spec = _stack(specs, Spec)
    cfg = config_arrays(
        chips=[c.chips // r for c, r, _ in pairs],
        batch=[0 if c.batch == "max" else c.batch / r for c, r, _ in pairs],
        weight_dtype=[c.weight_dtype for c in cases],
        dense_dtype=[dense_weight_dtype(m, c.weight_dtype) for c, m in zip(cases, models, strict=True)],
        head_dtype=[head_weight_dtype(m, c.weight_dtype) for c, m in zip(cases, models, strict=True)],
        kv_dtype=[c.kv_dtype for c in cases],
        spec_k=[c.spec_k for c in cases],
        tp=[lay.tp for lay in layouts], pp=[lay.pp for lay in layouts], ep=[lay.ep for lay in layouts],
        dp_attn=[lay.dp_attention for lay in layouts], cp=[lay.cp for lay in layouts],
    )

    def per_replica(values, default=np.inf):
        return np.asarray([default if v is None else v / r for v, r in zip(values, replicas, strict=True)],
                          np.float32)

    args = (
        arch, hw, cfg, spec, np.asarray([c.input for c in cases], np.float32),
        np.asarray([c.output for c in cases], np.float32), np.float32(DEFAULT_HBM_FRACTION),
        np.asarray(draft_bytes, np.float32),
        np.asarray([c.cached_tokens for c in cases], np.float32),
        np.asarray([CACHE_TIERS[c.cache_tier] for c in cases], np.float32),
        np.asarray([np.inf if c.max_batch is None else c.max_batch for c in cases], np.float32),
        np.asarray([np.inf if c.max_num_tokens is None else c.max_num_tokens for c in cases], np.float32),
        per_replica([c.requests for c in cases]),
        per_replica([c.arrival_rps for c in cases], 0.0))
    # kept on disk like the search's kernels: a `planner eval` in its own process loads it (~0.3 s)
    # instead of compiling it (~4 s); rows come in ROW_BUCKETs, so files of similar size share one
    with executables.uses_not_noted():  # not one the next `planner solve` should start loading
        kernel = executables.compiled("eval", _kernel, args)
    out = kernel(*args)
    return {k: np.asarray(v) for k, v in out.items()}


def memory_short(row: dict[str, Any]) -> bool:
    """The layout does not hold one sequence (weights or KV): its figures are for a system that
    cannot run, and the layout nearest to holding one is the one worth reporting."""
    return not row["fits"] and row["slots"] < 1


def request_latency(case: EvalCase, row: dict[str, Any]) -> float:
    """Seconds from a request's arrival to its last token: TTFT + (output - 1) x TPOT. What a fixed
    batch is served for; TPOT alone let a layout win by 1 % of TPOT at 3.7x the TTFT of a 512k prompt."""
    if row["ttft_s"] is None or row["tpot_s"] is None:
        return math.inf
    return row["ttft_s"] + max(case.output - 1, 0) * row["tpot_s"]


def _best(case: EvalCase, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The layout an operator would run: the highest throughput for `batch = "max"` (equal
    throughputs, as under a load every layout sustains, by the lower request latency), else the
    lowest request latency (`request_latency`: TTFT + (output - 1) x TPOT); fitting candidates first,
    then those that hold a sequence (e.g. saturated by the load, still ranked the same way), and the
    fewest replicas among equals. Where no layout holds one sequence, the one closest to it (least
    memory per chip), so that its reason names what is really short: 2 x TP1 of a 70B model reported
    its weights' 141 GB per chip where TP2 holds them and lacks only KV."""
    def key(row):
        fits = 0 if row["fits"] else 1
        if memory_short(row):  # after every layout memory holds a sequence in (e.g. one saturated by load)
            return (fits, 1, row["memory_gb_per_chip"] if row["memory_gb_per_chip"] is not None else math.inf,
                    0.0, row["replicas"])
        if case.batch == "max":
            return (fits, 0, -(row["throughput_tok_s"] or 0.0), request_latency(case, row), row["replicas"])
        return (fits, 0, request_latency(case, row), 0.0, row["replicas"])

    return min(rows, key=key)


def _annotate(case: EvalCase, catalog: Catalog, row: dict[str, Any]) -> dict[str, Any]:
    acc, model = catalog.accelerator(case.hardware), catalog.model(case.model)
    settings = _speculative_for(case, model)
    row["spec_method"] = settings.method
    if case.spec_k > 0:
        row["spec_acceptance"] = _acceptance_source(settings)
    assumed = list(case.assumed)
    if case.weight_dtype in ("fp8", "int8") and acc.peak_tflops(case.weight_dtype) is None:
        assumed.append(f"weight_dtype {case.weight_dtype}: {acc.id} has no {case.weight_dtype} matrix units, so the "
                       "weights are dequantised and multiplied at the BF16 rate (weight-only: memory and bandwidth "
                       "at 1 byte, compute as BF16)")
    if case.spec_k > 0 and settings.method == "mtp" and not settings.custom_curve:
        modules = int(model.mtp_layers or 1)
        if case.spec_k > modules:  # grid.lookahead_caps: solve never drafts past the modules
            assumed.append(f"spec_k {case.spec_k} with {model.id}'s {modules} MTP module(s): the module is chained "
                           f"{case.spec_k - modules} more time(s) at its published acceptance, which was measured for "
                           f"its own position only; `planner solve` drafts at most {modules} token(s) by MTP")
    short = _batch_below_the_load(case, row)
    if short:
        assumed.append(short)
    if assumed:
        row["assumed"] = assumed
    if case.input + case.output > model.max_context:  # predicted anyway: the physics still applies
        row["fits"] = False
        row["reason"] = (f"input + output = {case.input + case.output:,} tokens exceeds {model.id}'s "
                         f"context window of {model.max_context:,} tokens; shorten the prompt or the output")
    elif not supports_weight_dtype(acc, case.weight_dtype):
        row["fits"] = False
        row["reason"] = (f"{acc.id} has no native {case.weight_dtype} support; use int4 for 4-bit weights "
                         "dequantised into 16-bit matmuls (weight-only)")
    elif case.layout and not heads_split(attention_tp := pinned_layout(case.chips, case.layout).tp,
                                         model_arrays(model), acc.family):
        row["fits"] = False
        row["reason"] = (f"tp {attention_tp} does not split {model.id}'s {model.heads} attention heads "
                         f"({model.kv_heads} KV heads) evenly; vLLM, SGLang and TensorRT-LLM refuse such a "
                         "layout: pin a tp that divides the heads")
    elif not row["fits"]:
        row["reason"] = _why_not(case, acc, row)
    missing = _missing_tier(acc, case.cache_tier) if case.cached_tokens else None
    if missing:  # its reload time divides by a bandwidth of ~0: no figure to give, whatever else is wrong
        row.update({key: None for key in ("ttft_s", "prefill_tok_s", "throughput_tok_s", "usd_per_mtok_output")})
        row["reason"] = missing if row["fits"] else f"{row['reason']}; {missing}"
        row["fits"] = False
    return add_bands(row, band_for(acc.family))


IN_FLIGHT_SLACK = 1.25
"""How far Little's law may put the sequences in flight above a pinned batch before eval says so
(MLPerf Server cases state the batch Little's law derives from their own latency: ~1)."""


def _batch_below_the_load(case: EvalCase, row: dict[str, Any]) -> str | None:
    """A fixed batch under a load prices every decode step at that batch, but the load keeps
    arrival x (each request's time in the system) sequences in flight (Little's law): at 16 req/s a
    batch of 16 whose requests take 12 s each runs ~200, and its TPOT is far too optimistic."""
    if case.batch == "max" or not case.arrival_rps:
        return None
    latency = request_latency(case, row)
    if not math.isfinite(latency):
        return None
    in_flight = case.arrival_rps * latency
    if in_flight <= IN_FLIGHT_SLACK * case.batch:
        return None
    return (f"batch {case.batch:,} at {case.arrival_rps:g} req/s: each request spends ~{latency:.3g} s from arrival "
            f"to its last token, so ~{in_flight:,.0f} sequences are in flight (Little's law), not {case.batch:,}; "
            "the steps are priced at the pinned batch, which understates TPOT: pin a batch near that figure, "
            "or batch = \"max\" to let the load set it")


def _missing_tier(acc, tier: str) -> str | None:
    """Why a prefix cannot be reloaded from `tier` on this hardware (the catalog gives the tier no
    capacity or no bandwidth, `lowering.host_tiers` leaves it out), or None. A 32k-token reload
    from an NVMe of unknown bandwidth read as a TTFT of 136 years with fits = true."""
    from planner.lowering import host_tiers

    tiers = host_tiers(acc)
    size, speed = {"dram": ("dram_bytes", "dram_bw"), "nvme": ("nvme_bytes", "nvme_bw")}.get(tier, (None, None))
    if size is None or (tiers[size] > 0 and tiers[speed] > 0):
        return None
    fields = "host_dram_gb_per_chip / host_dram_gbps_per_chip" if tier == "dram" else "nvme_gb_per_chip / nvme_gbps_per_chip"
    return (f"cache_tier {tier}: {acc.id} has no {'DRAM' if tier == 'dram' else 'NVMe'} tier the model can time ({fields} unknown or 0 in "
            "the catalog); use cache_tier hbm or dram, or a hardware file that states it")


def _unresolved_row(case: EvalCase) -> dict[str, Any]:
    """A case that could not be evaluated: what it asked for, `fits = false`, the reason, and every
    figure unknown (null), the batch too unless the case named one (it read 0, as if none fitted)."""
    row = {"hardware": case.hardware, "model": case.model, "chips": case.chips,
           "weight_dtype": case.weight_dtype, "kv_dtype": case.kv_dtype, "input": case.input,
           "output": case.output, "spec_k": case.spec_k, "batch": case.batch if isinstance(case.batch, int) else None,
           "slots": None, "fits": False, "reason": f"cannot evaluate: {case.unresolved}", "replicas": None,
           "chips_per_replica": None, "kv_capacity_tokens": None}
    for name in (*METRICS, "memory_gb_per_chip", "weights_gb_per_chip", "kv_gb_per_chip", "cost_per_hour",
                 "usd_per_mtok_output", "tokens_per_step"):
        row[name] = None
    return row


def _method_settings(method: str, draft: str | None, alpha: float | None) -> Speculative:
    """The `[speculative]` table a `spec_method` case stands for: the method's default curve, or a
    flat acceptance `alpha` when given."""
    flat = {} if alpha is None else {"acceptance_short": alpha, "acceptance_long": alpha,
                                     "acceptance_context_tokens": LEGACY_DECAY_TOKENS}
    return Speculative.model_construct(**{**Speculative().model_dump(), "method": method,
                                          "draft_model": draft if method == "draft" else None, **flat})


LEGACY_DECAY_TOKENS = 32_768.0  # irrelevant for a flat acceptance (short = long)
LEGACY_MTP_COST = 0.05  # v1's head cost without --spec-method: kept so earlier `--spec-k/--spec-alpha` answers hold


def _acceptance_source(settings: Speculative) -> str:
    """Where a speculative case's acceptance comes from: the flat value `_speculative_for` set (given,
    or v1's 0.7), or the method's default curve with its source's note (the eagle3 default collapses
    past ~10k tokens)."""
    from planner.speculative_methods import curve_for, data

    if settings.custom_curve:
        return f"flat per-token acceptance {settings.acceptance_short:g}"
    name = curve_for(settings.method, settings)
    return f"curve {name}: {data()['curve'][name]['note']}"


def _speculative_for(case: EvalCase, model) -> Speculative:
    if case.spec_k == 0:
        return Speculative()
    if case.spec_method is not None:
        return _method_settings(case.spec_method, case.draft, case.spec_alpha)
    alpha = 0.7 if case.spec_alpha is None else case.spec_alpha
    draft = case.draft or (model.draft_models[0] if model.draft_models else None)
    return Speculative(method="draft" if draft else "mtp", draft_model=draft, acceptance_short=alpha,
                       acceptance_long=alpha, acceptance_context_tokens=LEGACY_DECAY_TOKENS,
                       mtp_cost_fraction=None if draft else LEGACY_MTP_COST)


def _row(case: EvalCase, replicas: int, v: dict[str, np.ndarray]) -> dict[str, Any]:
    def f(name, scale=1.0):
        x = float(v[name]) * scale
        return x if np.isfinite(x) else None

    row = {
        "hardware": case.hardware, "model": case.model, "chips": case.chips,
        "weight_dtype": case.weight_dtype, "kv_dtype": case.kv_dtype,
        "input": case.input, "output": case.output, "spec_k": case.spec_k,
        "replicas": replicas, "chips_per_replica": case.chips // replicas,
        # the batch the figures stand for: with none fitting, `batch = "max"` is predicted at one sequence
        "batch": int(max(float(v["batch"]), 1.0)) * replicas,
        "slots": int(max(float(v["slots"]), 0.0)) * replicas,  # sequences that fit (within the engine limits)
        "fits": bool(v["fits"]),
        "ttft_s": f("ttft_s"), "tpot_s": f("tpot_s"),
        "prefill_tok_s": f("prefill_tok_s", replicas), "decode_tok_s": f("decode_tok_s", replicas),
        "throughput_tok_s": f("throughput_tok_s", replicas),
        "kv_capacity_tokens": int(max(float(v["kv_capacity_tokens"]), 0.0)) * replicas,
        "memory_gb_per_chip": f("memory_gb_per_chip"),
        "weights_gb_per_chip": f("weights_gb_per_chip"), "kv_gb_per_chip": f("kv_gb_per_chip"),
        "cost_per_hour": f("cost_per_hour", replicas), "usd_per_mtok_output": f("usd_per_mtok_output"),
        "tokens_per_step": f("tokens_per_step"),
    }
    if case.cached_tokens:
        row["cached_tokens"], row["cache_tier"] = case.cached_tokens, case.cache_tier
    if case.arrival_rps is not None:
        row["arrival_rps"] = case.arrival_rps
        row["ttft_p99_s"], row["tpot_p99_s"] = f("ttft_p99_s"), f("tpot_p99_s")
        row["prefill_utilisation"] = f("prefill_utilisation")
        row["slot_utilisation"] = f("slot_utilisation")
    return row


def _why_not(case: EvalCase, acc, row: dict[str, Any]) -> str:
    usable = acc.memory_bytes / 1e9 * DEFAULT_HBM_FRACTION
    weights = row["weights_gb_per_chip"] or 0.0
    if weights > usable:
        return (f"weights need {figure(weights)} GB per chip but {acc.id} has {figure(usable)} GB usable "
                f"({figure(acc.memory_bytes / 1e9)} GB x {DEFAULT_HBM_FRACTION}); use more chips or a smaller weight dtype")
    if row["slots"] < 1:
        return (f"no room for one sequence of {case.input + case.output} tokens of KV next to "
                f"{figure(weights)} GB of weights per chip; use more chips, a smaller KV dtype or shorter prompts")
    if row.get("prefill_utilisation") is not None and row["prefill_utilisation"] >= 1.0:
        return (f"arrival_rps = {case.arrival_rps:g} saturates prefill (utilisation "
                f"{row['prefill_utilisation']:.2f}); lower the load or add chips")
    if row.get("slot_utilisation") is not None and row["slot_utilisation"] >= 1.0:
        per_replica = row["slots"] / max(row["replicas"] or 1, 1)
        limit = "max_batch" if case.max_batch is not None and case.max_batch <= per_replica else "what fits in HBM"
        return (f"arrival_rps = {case.arrival_rps:g} keeps {row['slot_utilisation'] * row['slots']:,.0f} requests "
                f"in flight on average, more than the {row['slots']:,} sequences the system can run ({limit}); "
                "lower the load, add chips or replicas, or use a smaller KV dtype")
    return (f"batch {case.batch} needs {figure(row['memory_gb_per_chip'])} GB per chip, more than "
            f"{figure(usable)} GB usable; lower the batch or use --batch max")
