"""Quality floors: which weight and KV precisions the operator accepts for this workload.

The cost model does not predict accuracy, so precision is policy, not physics: `[quality]` says
what is acceptable, the search masks the rest, and every plan that still uses a 4-bit format says
so next to its bill.
"""

from __future__ import annotations

from planner.errors import PlannerError
from planner.schema import Scenario

BITS = {"bf16": 16, "fp8": 8, "int8": 8, "int4": 4, "fp4": 4}
"""Bits per element of each format: the order in which `*_min` floors compare them."""


class QualityFloorError(PlannerError):
    """The quality floor excludes every value of a searched dtype axis."""


def long_context(scenario: Scenario) -> bool:
    """The median prompt reaches `quality.long_context_tokens`: the regime where 4-bit KV errors
    accumulate over the whole attended context."""
    return scenario.workload.input_tokens.median >= scenario.quality.long_context_tokens


def as_published(weight_dtype: str, published: str | None) -> bool:
    """Weights in the format the model is published in: the same dtype, or an FP4 checkpoint run
    weight-only (int4 here: the same 4-bit weights with 16-bit activations, as chips without FP4
    tensor cores run it), which keeps every published weight and only leaves activations unquantised."""
    return published is not None and (weight_dtype == published or (published == "fp4" and weight_dtype == "int4"))


def weight_ok(scenario: Scenario, dtype: str, published: str | None = None) -> bool:
    """At or above the floor, or the format the model is published in (`published`): the floor is
    about quantising a model further than its authors did, and their format is the model itself."""
    return as_published(dtype, published) or BITS[dtype] >= BITS[scenario.quality.weight_dtype_min]


def kv_ok(scenario: Scenario, dtype: str) -> bool:
    q = scenario.quality
    if BITS[dtype] < BITS[q.kv_dtype_min]:
        return False
    return not (BITS[dtype] <= 4 and not q.kv_4bit_long_context and long_context(scenario))


def excluded(scenario: Scenario, published: str | None = None) -> list[str]:
    """One sentence per searched dtype the floor removes (a visible warning: the search is not
    what [search] lists), and one when the model's published format (`published`) stays although
    it is below the floor. Raises when nothing is left on an axis."""
    s, q = scenario.search, scenario.quality
    notes = []
    weights = [d for d in dict.fromkeys(s.weight_dtype) if not weight_ok(scenario, d, published)]
    kept = [d for d in dict.fromkeys(s.weight_dtype) if as_published(d, published) and BITS[d] < BITS[q.weight_dtype_min]]
    if kept:
        notes.append(f"search.weight_dtype {', '.join(kept)} searched although below quality.weight_dtype_min = "
                     f"{q.weight_dtype_min}: {scenario.model.id} is published in {published}")
    kvs = [d for d in dict.fromkeys(s.kv_dtype) if not kv_ok(scenario, d)]
    if weights:
        notes.append(f"search.weight_dtype {', '.join(weights)} not searched: below quality.weight_dtype_min "
                     f"= {q.weight_dtype_min}")
    if kvs:
        why = (f"4-bit KV at long context (prompt median {scenario.workload.input_tokens.median:,} >= "
               f"quality.long_context_tokens = {q.long_context_tokens:,}; quality.kv_4bit_long_context = false)"
               if all(BITS[d] >= BITS[q.kv_dtype_min] for d in kvs) else f"below quality.kv_dtype_min = {q.kv_dtype_min}")
        notes.append(f"search.kv_dtype {', '.join(kvs)} not searched: {why}")
    for axis, values, dropped in (("weight_dtype", s.weight_dtype, weights), ("kv_dtype", s.kv_dtype, kvs)):
        if set(values) <= set(dropped):
            raise QualityFloorError(f"search.{axis}: every value ({', '.join(values)}) is excluded by [quality]: "
                                    f"{notes[-1] if axis == 'kv_dtype' else notes[0]}; list a higher precision "
                                    "or lower the floor")
    return notes


ACCURACY_CAVEAT = "accuracy not modelled"


def unmodelled_accuracy(note: str | None) -> bool:
    """Whether a plan's `four_bit_note` carries the accuracy caveat (not only weights as published)."""
    return bool(note) and ACCURACY_CAVEAT in note


def four_bit_note(weight_dtype: str, kv_dtype: str, published: str | None = None,
                  kept: str | None = None) -> str | None:
    """What a plan's bill rests on when a format is 4-bit: accuracy is not modelled. Weights in the
    4-bit format the model is published in (`ModelSpec.weight_dtype_published`: Kimi-K2.5's INT4,
    gpt-oss's MXFP4, quantised by their authors) are the model itself, and the note says so instead,
    naming what the checkpoint keeps wider (`kept`: `ModelSpec.kept_wider`, 'attention in fp8')."""
    published_4bit = BITS[weight_dtype] <= 4 and as_published(weight_dtype, published)
    parts = [name for name, d in (("weights", weight_dtype), ("KV cache", kv_dtype))
             if BITS[d] <= 4 and not (name == "weights" and published_4bit)]
    lead = f"4-bit weights as the model is published{f' ({kept})' if kept else ''}" if published_4bit else ""
    if not parts:
        return lead or None
    tail = f"4-bit {' and '.join(parts)}: {ACCURACY_CAVEAT}; check it on your own evals"
    return f"{lead}; {tail}" if lead else tail
