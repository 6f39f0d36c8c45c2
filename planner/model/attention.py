"""Attention by kind: cached elements, elements read and FLOPs, for every layer kind, from data.

A model's attention layers are summarised (in `arch.py`) as at most three *terms* plus a fixed
state. A term is a group of layers that cache the same kind of entries:
- `elems`: KV elements per cached entry, summed over the term's layers;
- `ratio`: tokens per entry (sequence compression, DeepSeek-V4 `compress_ratios`; 1 = none);
- `span`: most recent tokens whose entries are kept (sliding window or attention chunk; huge = all);
- `reach`: tokens a query can see (the window; half a chunk on average for chunked local attention);
- `topk`: entries a query attends to (DSA `index_topk`; huge = all it can see);
- `idx_elems`, `idx_flops`: the top-k indexer's key elements per entry and FLOPs per (query, entry);
- `flops_prefill`, `flops_decode`: attention FLOPs per (query, entry) pair (MLA decodes absorbed);
- `scores`: heads x layers (the size of a naive kernel's materialised score rows).
Full attention is the term (ratio 1, span = reach = topk = all); a sliding window sets span and
reach; a sparse layer sets topk and the indexer; a compressed layer sets ratio. Linear-attention
and SSM layers (gated DeltaNet, Mamba) hold `state_elems` per sequence whatever the context, and
cost `state_flops` per token. Every function below is the same expression for every kind: the kind
is in the numbers, not in branches, so one trace serves every model.
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.types import Arch

TERMS = ("main", "local", "aux")


def _term(a: Arch, t: str) -> dict[str, jnp.ndarray]:
    return {k: getattr(a, f"{t}_{k}") for k in ("elems", "ratio", "span", "reach", "topk", "idx_elems",
                                                 "idx_flops", "flops_prefill", "flops_decode", "scores")}


def _present(x) -> bool:
    """False only for a field that `without_absent` replaced by the Python constant 0.0, so the
    trace drops it (a model with one attention kind then costs one term, not three)."""
    return not (isinstance(x, float) and x == 0.0)


def absent_kinds(a: Arch) -> tuple[str, ...]:
    """Terms (and 'state') with no layers in any of the models in `a` (numpy arrays, at trace-setup time)."""
    import numpy as np

    names = [t for t in TERMS if not np.any(np.asarray(getattr(a, f"{t}_elems")))]
    names += [f"{t}.idx" for t in TERMS if t not in names and not np.any(np.asarray(getattr(a, f"{t}_idx_flops")))]
    if not np.any(np.asarray(a.state_elems)):
        names.append("state")
    return tuple(names)


def without_absent(a: Arch, absent: tuple[str, ...]) -> Arch:
    """`a` with the absent terms' fields as Python zeros: traced code drops them (as `without_experts`
    does for dense models), so a plain GQA model costs what it did before per-kind attention."""
    fields = {f"{t}_elems": 0.0 for t in absent if t in TERMS}
    fields.update({f"{t[:-4]}_{k}": 0.0 for t in absent if t.endswith(".idx") for k in ("idx_elems", "idx_flops")})
    if "state" in absent:
        fields.update(state_elems=0.0, state_flops=0.0)
    return a._replace(**fields)


def _entries(t, context):
    """Entries one sequence of `context` tokens keeps in this term."""
    return jnp.minimum(context, t["span"]) / t["ratio"]


def _attended(t, context):
    """Entries one query at `context` attends to: those it can reach, at most top-k."""
    return jnp.minimum(jnp.minimum(context, t["reach"]) / t["ratio"], t["topk"])


def kv_elems_stored(a: Arch, context) -> jnp.ndarray:
    """Cached elements of one sequence of `context` tokens: every term's entries with their indexer
    keys, plus the fixed linear-attention/SSM state."""
    total = (a.state_elems if _present(a.state_elems) else 0.0) + 0.0 * context
    for name in TERMS:
        t = _term(a, name)
        if _present(t["elems"]):
            total = total + _entries(t, context) * (t["elems"] + t["idx_elems"] if _present(t["idx_elems"])
                                                    else t["elems"])
    return total


def kv_elems_read_decode(a: Arch, context) -> jnp.ndarray:
    """Elements one decode query reads: the entries it attends to (top-k for sparse layers, the
    window, context/ratio for compressed layers), every indexer key it scores, and the fixed state
    (read and written back)."""
    total = (2.0 * a.state_elems if _present(a.state_elems) else 0.0) + 0.0 * context
    for name in TERMS:
        t = _term(a, name)
        if _present(t["elems"]):
            total = total + _attended(t, context) * t["elems"]
            if _present(t["idx_elems"]):
                total = total + _entries(t, context) * t["idx_elems"]
    return total


def attn_flops_decode(a: Arch, context) -> jnp.ndarray:
    """Attention FLOPs of one decode query token at `context`: attended entries, indexer scores over
    every entry it can see, and the state update of linear/SSM layers."""
    total = (a.state_flops if _present(a.state_flops) else 0.0) + 0.0 * context
    for name in TERMS:
        t = _term(a, name)
        if _present(t["elems"]):
            total = total + _attended(t, context) * t["flops_decode"]
            if _present(t["idx_flops"]):
                total = total + _entries(t, context) * t["idx_flops"]
    return total


def score_elems_decode(a: Arch, context) -> jnp.ndarray:
    """Score elements (heads x layers x attended entries) of one decode query: what a naive kernel
    materialises."""
    total = 0.0 * context
    for name in TERMS:
        t = _term(a, name)
        if _present(t["elems"]):
            total = total + _attended(t, context) * t["scores"]
    return total


def _causal_pairs(new, cached, limit, ratio):
    """Sum over the `new` queries (positions cached+1 .. cached+new) of min(position / ratio, limit):
    entries seen by each query of a causal chunk, capped at `limit` entries (window, top-k).
    Exact for the continuous form: queries up to position limit*ratio see position/ratio entries,
    the rest see `limit`."""
    ramp = jnp.clip(limit * ratio - cached, 0.0, new)
    return ramp * (cached + 0.5 * ramp) / ratio + (new - ramp) * limit


def _prefill_pairs(t, new, cached):
    """(attended pairs, indexer pairs or None without an indexer) of `new` tokens after `cached` ones."""
    seen = jnp.minimum(t["reach"], t["span"]) / t["ratio"]
    attended = _causal_pairs(new, cached, jnp.minimum(seen, t["topk"]), t["ratio"])
    indexed = _causal_pairs(new, cached, seen, t["ratio"]) if _present(t["idx_flops"]) else None
    return attended, indexed


def attn_flops_prefill(a: Arch, new, cached) -> jnp.ndarray:
    """Attention FLOPs to prefill `new` tokens after `cached` ones (causal), incl. the indexer
    (which scores every visible entry: quadratic, but cheap per pair) and linear/SSM layers."""
    total = (a.state_flops * new if _present(a.state_flops) else 0.0 * new)
    for name in TERMS:
        t = _term(a, name)
        if _present(t["elems"]):
            attended, indexed = _prefill_pairs(t, new, cached)
            total = total + attended * t["flops_prefill"]
            if indexed is not None:
                total = total + indexed * t["idx_flops"]
    return total


def score_elems_prefill(a: Arch, new, cached) -> jnp.ndarray:
    """Score elements a naive kernel materialises while prefilling `new` tokens after `cached`."""
    total = 0.0 * new
    for name in TERMS:
        t = _term(a, name)
        if _present(t["elems"]):
            total = total + _prefill_pairs(t, new, cached)[0] * t["scores"]
    return total
