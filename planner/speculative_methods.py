"""Speculative methods: their default acceptance curves, what their drafters cost, and whether a
model can use them. Turns a scenario's `[speculative]` table into the cost model's `Spec` arrays.

Curves and drafter constants come from planner/data/speculative.toml (published measurements, each
with its source); the cost model never reads files. A method the model cannot use (MTP without
MTP heads, a draft model with another tokenizer or no smaller model at all) is named with the
reason, so callers can raise it (the scenario's own method) or note it (a searched alternative).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from planner.catalog import Catalog, tokenizer_mismatch
from planner.errors import InputFileError
from planner.model.arch import (
    _attention_params,
    kv_elems_per_token,
    kv_elems_per_token_layer,
    mlp_layer_counts,
    param_counts,
)
from planner.model.speculative import CURVE_POINTS
from planner.model.types import Spec
from planner.schema import ModelSpec
from planner.schema.scenario import SPEC_METHODS, Speculative

_F32 = np.float32
MEASURES = ("acceptance_rate", "acceptance_length", "speedup_batch1")
DATA_FILE = Path(__file__).resolve().parent / "data" / "speculative.toml"


@cache
def data() -> dict:
    with DATA_FILE.open("rb") as f:
        return tomllib.load(f)


def alpha_from_length(length: float, k: int) -> float:
    """Per-token acceptance whose geometric series 1 + a + ... + a^k equals the measured AL (bisection)."""
    length = min(max(length, 1.0), k + 1.0)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(mid**i for i in range(k + 1)) < length else (lo, mid)
    return (lo + hi) / 2


def curve_alpha(name: str) -> tuple[list[float], list[float]]:
    """(contexts, per-token acceptance) of a named curve, converted from what its source measured."""
    c = data()["curve"][name]
    if c["measure"] == "acceptance_rate":
        alpha = list(c["values"])
    elif c["measure"] == "acceptance_length":
        alpha = [alpha_from_length(v, int(c["k"])) for v in c["values"]]
    else:  # speedup at batch 1 bounds the tokens per step from below; a long lookahead's limit
        alpha = [1.0 - 1.0 / v for v in c["values"]]
    return [float(x) for x in c["context_tokens"]], [min(max(a, 1e-3), 0.999) for a in alpha]


def curve_names(method: str) -> list[str]:
    return [n for n, c in data()["curve"].items() if c["method"] == method]


def curve_for(method: str, spec: Speculative) -> str:
    """The named curve a method uses: the one the scenario's `curves` lists for it, else the default."""
    known = data()["curve"]
    chosen = [n for n in spec.curves if n in known and known[n]["method"] == method]
    return chosen[0] if chosen else data()["method"][method]["curve"]


def check_curve(spec: Speculative) -> str | None:
    """Why `speculative.curves` is unusable (an unknown name, two curves for one method), or None."""
    known = data()["curve"]
    for name in spec.curves:
        if name not in known:
            import difflib

            near = difflib.get_close_matches(name, list(known), n=2, cutoff=0.5)
            return (f"unknown curve '{name}'" + (f"; did you mean {', '.join(near)}?" if near else "")
                    + f" (known: {', '.join(known)})")
    methods = [known[n]["method"] for n in spec.curves]
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        return f"two curves for method '{twice[0]}': name one curve per method"
    if spec.custom_curve and spec.method in methods:
        return (f"a curve for '{spec.method}' and acceptance_short/long/context_tokens both given: the scenario's "
                "own values or a named curve for its method, not both")
    return None


def pick_draft(catalog: Catalog, target: ModelSpec, spec: Speculative) -> tuple[ModelSpec | None, str | None]:
    """(draft model, why none): the scenario's draft_model, else the target's first listed draft,
    else the smallest catalog model that shares its tokenizer with at most a tenth of its weights."""
    from planner.catalog import DRAFT_SHARE

    size = param_counts(target).total
    if spec.draft_model is not None:
        draft = catalog.model(spec.draft_model)
        why = tokenizer_mismatch(draft, target)
        if why:
            return None, why
        if param_counts(draft).total >= size:
            return None, f"draft model '{draft.id}' is not smaller than '{target.id}'"
        return draft, None
    fits = [m for m in catalog.models.values()
            if m.id != target.id and target.tokenizer and m.tokenizer == target.tokenizer
            and (m.id in target.draft_models or param_counts(m).total <= DRAFT_SHARE * size)]
    fits.sort(key=lambda m: (m.id not in target.draft_models, param_counts(m).total))
    if not fits:
        return None, (f"no catalog model shares '{target.id}''s tokenizer ({target.tokenizer or 'unknown'}) "
                      "and is small enough to draft for it")
    return fits[0], None


def incompatibility(method: str, catalog: Catalog, target: ModelSpec, spec: Speculative) -> str | None:
    """Why `target` cannot use `method`, or None."""
    if method == "mtp" and not target.mtp_layers:
        given = "not given" if target.mtp_layers is None else f"= {target.mtp_layers}"
        return (f"'{target.id}' ships no multi-token-prediction heads (catalog mtp_layers {given}); "
                "use eagle3, draft, self, ngram or suffix")
    if method == "draft":
        return pick_draft(catalog, target, spec)[1]
    return None


@dataclass(frozen=True)
class Drafter:
    """One method's cost-model parameters and its weights in memory (BF16 params, params at the
    target's weight dtype: an MTP layer ships in the checkpoint; an LM head at the target's head dtype:
    an MTP module's own copy of it)."""

    spec: Spec
    params_bf16: float
    params_target: float
    draft_id: str | None = None
    params_head: float = 0.0

    def weight_bytes(self, weight_bytes_per_param: float, head_bytes_per_param: float = 2.0) -> float:
        return (self.params_bf16 * 2.0 + self.params_target * weight_bytes_per_param
                + self.params_head * head_bytes_per_param)


def _curve_arrays(ctx: list[float], alpha: list[float]) -> tuple[np.ndarray, np.ndarray]:
    pad = CURVE_POINTS - len(ctx)
    return (np.asarray(ctx + [ctx[-1]] * pad, _F32), np.asarray(alpha + [alpha[-1]] * pad, _F32))


def off() -> Drafter:
    """No speculation (k = 0): nothing drafts, acceptance never read."""
    zeros = np.zeros(CURVE_POINTS, _F32)
    return Drafter(Spec(alpha_short=_F32(0.0), alpha_long=_F32(0.0), alpha_context=_F32(1.0), draft_params=_F32(0.0),
                        draft_kv_elems=_F32(0.0), draft_layers=_F32(0.0), mtp_cost_fraction=_F32(0.0),
                        curve_ctx=zeros, curve_alpha=zeros, draft_params_target=_F32(0.0),
                        draft_expert_params=_F32(0.0), draft_experts=_F32(0.0), draft_topk=_F32(0.0),
                        draft_context=_F32(1e12), self_draft=_F32(0.0), host_draft_s=_F32(0.0)), 0.0, 0.0)


def _layer_parts(m: ModelSpec) -> tuple[float, float, int, int]:
    """(dense weights of one decoder layer: attention, norms, dense MLP or shared experts and router;
    one routed expert; routed experts; experts per token) for a layer like the model's last."""
    counts = param_counts(m)
    mats = 3 if m.gated_mlp else 2
    attn = _attention_params(m) + 2 * m.hidden
    _, moe_layers = mlp_layer_counts(m)
    if m.is_moe and moe_layers:
        shared = (m.experts_shared or 0) * mats * m.hidden * (m.shared_ffn_dim or m.moe_ffn_dim)
        return attn + shared + m.hidden * m.experts_routed, counts.expert / moe_layers, m.experts_routed, m.experts_active
    return attn + mats * m.hidden * m.ffn_dim, 0.0, 0, 0


def drafter(method: str, catalog: Catalog, target: ModelSpec, spec: Speculative) -> Drafter:
    """The cost-model parameters of `method` drafting for `target` (the method must be compatible)."""
    if spec.custom_curve and method == spec.method:
        ctx, alpha = [0.0], [0.0]
        a_short, a_long, a_ctx = spec.acceptance_short, spec.acceptance_long, spec.acceptance_context_tokens
    else:
        ctx, alpha = curve_alpha(curve_for(method, spec))
        a_short, a_long, a_ctx = 0.0, 0.0, 1.0
    curve_ctx, curve_alpha_ = _curve_arrays(ctx, alpha)
    fields = dict(alpha_short=a_short, alpha_long=a_long, alpha_context=a_ctx, draft_params=0.0, draft_kv_elems=0.0,
                  draft_layers=0.0, mtp_cost_fraction=0.0, draft_params_target=0.0, draft_expert_params=0.0,
                  draft_experts=0.0, draft_topk=0.0, draft_context=1e12, self_draft=0.0, host_draft_s=0.0)
    bf16 = target_params = head = 0.0
    draft_id = None
    consts = data()["drafter"]
    if method == "draft":
        draft = pick_draft(catalog, target, spec)[0]
        assert draft is not None, "incompatible draft methods are filtered before lowering"
        bf16 = param_counts(draft).total
        draft_id = draft.id
        fields.update(draft_params=bf16, draft_kv_elems=kv_elems_per_token(draft), draft_layers=float(draft.layers))
    elif method == "eagle3":
        # one decoder layer whose q/k/v read [embedding; fused features] (2H), a dense MLP of the
        # target's width, the fc fusing three target layers (3H -> H) and a reduced-vocabulary head
        h = target.hidden
        attn = _attention_params(target) + (target.heads + 2 * target.kv_heads) * target.head_dim * h
        bf16 = attn + (3 if target.gated_mlp else 2) * h * target.ffn_dim + 3 * h * h + consts["eagle3_draft_vocab"] * h
        fields.update(draft_params=bf16, draft_kv_elems=kv_elems_per_token_layer(target), draft_layers=1.0)
    elif method == "mtp":
        # each MTP module: a decoder layer like the model's own plus the projection of [embedding; hidden]
        # (2H -> H); it shares the embedding and the LM head, which it streams for its logits in the
        # checkpoint's head format (engines load the module's head as a copy, held here beside it)
        n = float(target.mtp_layers or 0)
        dense, expert, routed, topk = _layer_parts(target)
        head = float(target.vocab * target.hidden)
        target_params = n * (dense + 2 * target.hidden * target.hidden)
        fields.update(draft_head_params=head, draft_params_target=target_params, draft_expert_params=n * expert,
                      draft_experts=float(routed), draft_topk=float(topk),
                      draft_kv_elems=n * kv_elems_per_token_layer(target), draft_layers=n)
        target_params += n * expert * routed  # every expert of the MTP layer is held in memory
    elif method == "self":
        fields.update(self_draft=1.0, draft_context=float(consts["self_kv_budget_tokens"]),
                      draft_kv_elems=kv_elems_per_token(target))
    elif method in ("ngram", "suffix"):
        fields.update(host_draft_s=(spec.host_draft_us or 0.0) * 1e-6)
    if method in ("mtp", "eagle3") and spec.mtp_cost_fraction is not None and method == spec.method:
        fields.update(mtp_cost_fraction=spec.mtp_cost_fraction)
    arrays = Spec(**{k: _F32(v) for k, v in fields.items()}, curve_ctx=curve_ctx, curve_alpha=curve_alpha_)
    return Drafter(arrays, bf16, target_params, draft_id, head)


def searched_methods(catalog: Catalog, target: ModelSpec, spec: Speculative,
                     extra: list[str]) -> tuple[list[str], list[str]]:
    """(methods to search, notes on the ones left out): the scenario's method, which must be usable
    (else a one-line input error), and the compatible ones among `extra`."""
    methods = [m for m in dict.fromkeys(([spec.method] if spec.method != "none" else []) + list(extra))
               if m in SPEC_METHODS]
    keep, notes = [], []
    problem = check_curve(spec)
    if problem:
        raise InputFileError(f"speculative.curves: {problem}")
    for m in methods:
        why = incompatibility(m, catalog, target, spec)
        if why and m == spec.method:
            raise InputFileError(f"speculative.method = '{m}': {why}")
        if why:
            notes.append(f"speculative method '{m}' not searched: {why}")
        else:
            keep.append(m)
    return keep, notes
