"""The search grid: one axis per decision, broadcast arrays of fixed shape, and the validity mask.

Axes: hardware x layout x batch x weight dtype x KV dtype x tier split x speculation (method, k) x
prefix cache x attention. The speculation axis (named `spec_k`) lists k = 0 once and every searched
method with every k > 0; its drafter parameters (`Spec`) vary along it. The layout axis lists, per hardware, every (chips, parallel layout) pair searched: for
each chip count the layouts engines run (`layouts_for`), padded to a common length with masked
slots. Chips are per hardware: HBM chips use the scenario's list; SRAM-only chips (Groq, Cerebras)
start at the smallest power of two whose SRAM holds the weights, and double from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from planner import quality, tco
from planner.catalog import Catalog, for_scenario
from planner.errors import GridTooLargeError
from planner.lengths import length_sigma, lognormal_mean, running_output, served_cap
from planner.lowering import (
    GEMM_SELECT,
    KV_BYTES,
    WEIGHT_BYTES,
    dense_weight_dtype,
    hardware_arrays,
    head_weight_dtype,
    model_arrays,
    supports_weight_dtype,
)
from planner.model.arch import ParamCounts, param_counts
from planner.model.types import Arch, Config, Hw, Load, Spec
from planner.schema import Accelerator, ModelSpec, Scenario
from planner.speculative_methods import searched_methods
from planner.traces.calibrate import scenario_table
from planner.traces.curve import cached_trace_workload

AXES = ("hardware", "layout", "batch", "prefix_cache", "attention", "spec_k", "weight_dtype", "kv_dtype", "tier")
"""Grid axes in memory order. The order is a speed decision, not a cosmetic one: XLA's CPU loops run
over the last axes innermost, and put the widest axes whose values every term depends on (tier,
dtypes) there so the loops vectorise, and batch outermost so terms of the batch alone are hoisted
out of them; the previous order (two-value axes innermost) made the search 3x slower."""
MAX_CONFIGS = 20_000_000  # a 54M grid took 28 s and 5.6 GB on a 2-core, 24 GiB machine: refuse beyond
LAYOUT_PAD = 4  # layout slots per hardware row padded to a multiple of this (fewer shapes, fewer compiles)
HW_PAD = 16  # hardware axis padded to a multiple of this, so hardware filters and catalog edits rarely
# recompile (padding rows cost no evaluation on CPUs: the row loop stops at the last real row)


@dataclass(frozen=True)
class Layout:
    """One parallel layout of a system (see planner/model/layouts.py for what each degree means)."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp_attention: int = 1
    cp: int = 1
    replicas_per_system: int = 1

    @property
    def instance_chips(self) -> int:
        return self.tp * self.dp_attention * self.pp

    @property
    def chips(self) -> int:
        return self.instance_chips * self.replicas_per_system

    def nodes(self, domain: int) -> int:
        """Scale-up domains (nodes) the system spans: instances are packed into whole domains."""
        per_instance = -(-self.instance_chips // domain)
        if per_instance > 1:
            return per_instance * self.replicas_per_system
        return -(-self.chips // domain)


HEAD_PADDING_FAMILIES = frozenset({"tpu", "neuron", "groq", "cerebras", "sambanova"})
"""Hardware families whose software shards attention heads unevenly (pads them): XLA's GSPMD pads a
dimension that does not divide the mesh (TPU), the Neuron SDK pads heads to the tensor-parallel
degree (its benchmark runs Llama 2 70B, 64 heads, on the 24 NeuronCores of 12 Inferentia2 chips:
tests/data/chips.toml), and the dataflow compilers place layers themselves. The GPU engines
(vLLM, SGLang, TensorRT-LLM; vLLM also on Gaudi) need whole heads per rank (`heads_split`)."""


def heads_split(tp: int, arch: Arch, family: str = "") -> bool:
    """Whether engines can shard attention over `tp` ranks: vLLM, SGLang and TensorRT-LLM give each
    rank whole query heads (heads % tp == 0) and whole KV heads, or replicate them evenly when
    tp exceeds the KV heads (kv_heads % tp == 0 or tp % kv_heads == 0); vLLM refuses anything else
    at start-up ("Total number of attention heads must be divisible by tensor parallel size").
    MLA's latent KV is one copy per rank either way (kv_shardable = 0). Families in
    HEAD_PADDING_FAMILIES pad instead: any tp."""
    if family in HEAD_PADDING_FAMILIES:
        return True
    heads, kv_heads = int(arch.heads), int(arch.kv_heads)
    if heads % tp:
        return False
    if float(arch.kv_shardable) <= 0 or kv_heads < 1:
        return True
    return kv_heads % tp == 0 or tp % kv_heads == 0


def _largest_runnable_width(m: int, domain: int, arch: Arch, family: str) -> int:
    """The widest tensor-parallel group that divides the chips, stays in one domain and splits the heads."""
    return max(d for d in range(1, min(m, domain) + 1) if m % d == 0 and heads_split(d, arch, family))


def legacy_layout(chips: int, domain: int, arch: Arch) -> Layout:
    """The rule before layouts were searched: tp = min(chips, domain, clip(kv_heads, 8, 16)), pipeline
    stages for the rest (what the calibration's measurements were fitted with unless they state a layout)."""
    tp = int(min(chips, domain, min(max(float(arch.kv_heads), 8.0), 16.0)))
    return Layout(tp=tp, pp=chips // tp if chips % tp == 0 else chips / tp)  # type: ignore[arg-type]


def layouts_for(chips: int, domain: int, arch: Arch, replicas: list[int] | tuple[int, ...] = (1,),
                family: str = "") -> list[Layout]:
    """The layouts engines run on `chips` chips, one instance or `replicas` data-parallel instances:
    - a pipeline stage fills the scale-up domain (tensor parallel never spans domains) and the
      stages pipeline across domains, at the widest tensor-parallel group that splits the attention
      heads as engines require (`heads_split`: a 3-chip Llama runs pp3 or three tp1 replicas, never
      tp3); the previous rule (tp = min(chips, domain, clip(kv_heads, 8, 16)), pipeline for the
      rest) is kept too where engines can run it, so adding layouts can only lower the best bill;
    - MoE models: attention TP + experts TP, attention TP + expert parallel, or attention
      data-parallel in groups of any tensor-parallel width (tp x dp-attention = the stage) + expert
      parallel over the stage;
    - decode context parallelism where tensor parallelism would replicate KV (MLA, tp > KV heads);
    - MoE models on more chips than a domain: expert parallel over all of them in one stage (wide
      EP across nodes) with attention data-parallel inside each node.
    """
    kv_heads = int(arch.kv_heads) if float(arch.kv_shardable) > 0 else 1
    moe = float(arch.experts_routed) > 0
    out: list[Layout] = []
    for r in replicas:
        if chips % r:
            continue
        m = chips // r
        legacy = legacy_layout(m, domain, arch).tp
        widths = [_largest_runnable_width(m, domain, arch, family)] + (
            [legacy] if m % legacy == 0 and heads_split(legacy, arch, family) else [])
        for g in dict.fromkeys(widths):
            pp = m // g
            if pp > int(arch.layers):
                continue
            copies = g // min(g, kv_heads)
            cps = [1, copies] if copies > 1 else [1]
            options = [Layout(tp=g, pp=pp, cp=c, replicas_per_system=r) for c in cps]
            if moe and g > 1:
                options += [Layout(tp=g, pp=pp, ep=g, cp=c, replicas_per_system=r) for c in cps]
                # attention data-parallel in d groups of g / d tensor-parallel ranks (d = g: pure
                # DP attention; tp4 x dp-attention 2 halves the attention all-reduce's ranks and
                # the KV copies of tp8, at twice tp1's attention weights per chip)
                options += [Layout(tp=g // d, pp=pp, ep=g, dp_attention=d, replicas_per_system=r)
                            for d in range(2, g + 1) if g % d == 0 and heads_split(g // d, arch, family)]
            out.extend(options)
        if moe and m > domain and m % domain == 0:
            # wide EP: one stage of m chips over m / domain nodes, experts spread over all of them
            # (the all-to-all crosses the NICs), attention data-parallel in groups that stay inside
            # a node: one chip each, or one whole node each
            out += [Layout(tp=t, ep=m, dp_attention=m // t, replicas_per_system=r)
                    for t in dict.fromkeys((1, domain)) if heads_split(t, arch, family)]
    return list(dict.fromkeys(out))


def solve_replicas(chips: int, chip_list: list[int]) -> list[int]:
    """Replicas per system searched by `solve`: r > 1 only where chips / r is not itself a searched
    count (otherwise chips / r with one replica per system bills the same or less: exact, not a heuristic)."""
    return [r for r in range(1, chips + 1) if chips % r == 0 and (r == 1 or chips // r not in chip_list)]


def allowed(lay: Layout, kinds: list[str]) -> bool:
    """Whether the layout uses only the parallelism kinds listed (`search.parallelism`)."""
    used = {"tp": lay.tp, "pp": lay.pp, "ep": lay.ep, "dp_attention": lay.dp_attention, "cp": lay.cp,
            "replicas": lay.replicas_per_system}
    return all(n == 1 or kind in kinds for kind, n in used.items())


def weights_fit(lay: Layout, acc: Accelerator, counts: ParamCounts, weight_dtypes: list[str], hbm_fraction: float,
                head_bytes: float = 2.0) -> bool:
    """Whether the layout's weights per chip fit the chip's usable memory in the smallest searched
    dtype (weights alone, before KV and workspace): a layout failing this is provably infeasible and
    is not searched (the same split as `layouts.weights_per_chip`). `counts`: the model's
    `param_counts`, worked out once per grid (~2,000 layouts on the default one); `head_bytes`: the
    LM head's smallest bytes per weight over the searched dtypes (`smallest_head_bytes`)."""
    smallest = min(WEIGHT_BYTES[d] for d in weight_dtypes)
    experts = counts.experts_routed * counts.expert * smallest
    rest = counts.dense * smallest + counts.embed * 2.0 + counts.lm_head * head_bytes
    per_chip = (rest / lay.tp + experts / (lay.tp * lay.dp_attention)) / lay.pp
    return per_chip <= acc.memory_bytes * hbm_fraction


def smallest_head_bytes(model: ModelSpec, weight_dtypes: list[str]) -> float:
    """The LM head's bytes per weight at the cheapest of the searched weight dtypes (`head_weight_dtype`):
    16-bit unless the published checkpoint quantises it and is among them. The memory floors use
    it, so a layout that fits only with a 4-bit head is still searched."""
    return min(WEIGHT_BYTES[head_weight_dtype(model, d)] for d in weight_dtypes)


def _pipeline_only(chips: int, arch: Arch) -> list[Layout]:
    """One stage per chip: what remains when tensor parallelism is not allowed."""
    return [Layout(pp=chips)] if chips <= int(arch.layers) else []


@dataclass(frozen=True)
class Grid:
    scenario: Scenario
    model: ModelSpec
    hardware: list[Accelerator]  # unpadded
    chips: np.ndarray  # [H_pad, K] chips per system of each layout slot
    layouts: list[list[Layout]]  # [H_pad][K] the layout of each slot (padding repeats slot 0)
    slot_valid: np.ndarray  # [H_pad, K] False for padding slots
    batch: list[int]
    weight_dtype: list[str]
    kv_dtype: list[str]
    tiers: list[tuple[float, float]]  # (dram, nvme) fractions
    spec_k: list[int]
    prefix_cache: list[bool]
    attention: list[str]
    hw: Hw
    arch: Arch
    cfg: Config
    spec: Spec  # per speculation option (the spec_k axis; acceptance tables add a trailing axis)
    load: Load
    draft_weight_bytes: np.ndarray  # [weight dtype, option] on their grid axes: drafter weights in memory
    valid: np.ndarray
    search_notes: tuple[str, ...] = ()  # the search differs from what [search] lists (quality floors, owned hardware)
    spec_method: tuple[str, ...] = ()  # method of each speculation option ("none" where k = 0)
    draft_ids: tuple[str | None, ...] = ()  # draft model of each option (method "draft")

    @property
    def warnings(self) -> list[str]:
        """Valid input served differently than written: requests past the context window, and a search
        that differs from what [search] lists (quality floors, hardware left out when owning)."""
        from planner.truncation import scenario_warnings

        return scenario_warnings(self.scenario, self.model) + list(self.search_notes)

    @property
    def shape(self) -> tuple[int, ...]:
        sizes = {"batch": len(self.batch), "prefix_cache": len(self.prefix_cache), "attention": len(self.attention),
                 "spec_k": len(self.spec_k), "weight_dtype": len(self.weight_dtype), "kv_dtype": len(self.kv_dtype),
                 "tier": len(self.tiers)}
        return (self.chips.shape[0], self.chips.shape[1]) + tuple(sizes[name] for name in AXES[2:])

    def real_slots(self) -> np.ndarray:
        """[H_pad, K] mask of the layout slots searched: real hardware rows, real layout slots."""
        return (np.arange(self.shape[0]) < len(self.hardware))[:, None] & self.slot_valid

    def real(self) -> np.ndarray:
        """Flat mask (grid order) of the configurations searched: real hardware rows and layout slots."""
        rows = self.real_slots()
        return np.broadcast_to(rows.reshape(self.shape[:2] + (1,) * (len(self.shape) - 2)), self.shape).ravel()

    @property
    def size(self) -> int:
        """Configurations searched (real hardware and layout slots only, padding excluded)."""
        slots = int(self.slot_valid[:len(self.hardware)].sum())
        return slots * math.prod(self.shape[2:])


def _axis(values, name: str, dtype=np.float32) -> np.ndarray:
    shape = [1] * len(AXES)
    shape[AXES.index(name)] = len(values)
    return np.asarray(values, dtype=dtype).reshape(shape)


def ownable(hardware: list[Accelerator]) -> list[Accelerator]:
    """Owned hardware needs a purchase price and a power figure; the rest is left out (and named
    in the solve's warnings). Nothing left is bad input."""
    kept = [a for a in hardware if tco.missing(a) is None]
    if not kept:
        gaps = "; ".join(tco.missing(a) or "" for a in hardware[:4])
        raise tco.NotOwnableError(f"cost.mode = \"own\": no searched hardware has a purchase price and power in the "
                                f"catalog ({gaps}{'; ...' if len(hardware) > 4 else ''}); search hardware with "
                                "capex_usd (e.g. h100-sxm, h200-sxm, b200) or use mode = \"rent\"")
    return kept


def load_arrays(scenario: Scenario, model: ModelSpec, catalog: Catalog) -> Load:
    w = scenario.workload
    in_cap = served_cap(w.input_tokens.max, model.max_context)
    out_cap = served_cap(w.output_tokens.max, model.max_context)
    i, o = w.input_tokens, w.output_tokens
    in_sigma = length_sigma(i.median, i.p90, i.mean, in_cap, "workload.input_tokens.mean")  # a written mean is the capped one's
    out_sigma = length_sigma(o.median, o.p90, o.mean, out_cap, "workload.output_tokens.mean")
    in_median = min(float(w.input_tokens.median), in_cap)
    out_median = min(float(w.output_tokens.median), out_cap)
    f = np.float32
    in_mean = lognormal_mean(in_median, in_sigma, in_cap)
    out_mean = lognormal_mean(out_median, out_sigma, out_cap)
    out_running = running_output(out_median, out_sigma, out_cap)
    if w.trace is not None:  # workload fields were already filled from the trace (cli.file_cmds)
        tw = cached_trace_workload(w.trace)
        curve, exponent, session_s = np.asarray(tw.hit_curve, dtype=f), tw.hit_pool_exponent, tw.session_s
    else:  # the bundled Claude Code replay at this scenario's context; sessions idle for think_time_s
        curve, exponent = scenario_table(in_mean + out_mean, float(w.sessions.turns))
        curve = curve.astype(f)
        session_s = w.sessions.turns * w.sessions.think_time_s
    return Load(
        in_median=f(in_median), in_sigma=f(in_sigma), in_cap=f(in_cap),
        in_mean=f(in_mean),
        out_median=f(out_median), out_sigma=f(out_sigma), out_cap=f(out_cap),
        out_mean=f(out_mean), out_running=f(out_running),
        arrival_rps=f(w.arrival_rate_rps), prefix_reuse=f(w.sessions.prefix_reuse),
        turns=f(w.sessions.turns), think_time_s=f(w.sessions.think_time_s),
        util_max=f(scenario.serving.utilization_max), hbm_fraction=f(scenario.serving.hbm_fraction),
        ttft_slo_s=f(scenario.slo.ttft_p95_s), tpot_slo_s=f(scenario.slo.tpot_p95_ms / 1e3),
        hours_per_month=f(scenario.serving.hours_per_month),
        dram_usd_per_gb_hour=f(catalog.host_tiers.dram.usd_per_gb_hour),
        nvme_usd_per_gb_hour=f(catalog.host_tiers.nvme.usd_per_gb_hour),
        hit_curve=curve, hit_pool_exponent=f(exponent), session_s=f(session_s),
        route_random=f(1.0 if w.sessions.routing == "random" else 0.0),
        idle_power_fraction=f(scenario.cost.idle_power_fraction),
        uncached_scv=f(w.sessions.uncached_scv or 0.0),
    )


def chips_for(acc: Accelerator, model: ModelSpec, weight_dtypes: list[str], hbm_fraction: float,
              default: list[int]) -> list[int]:
    """Chip counts to try: the scenario's list, or for SRAM-only chips the powers of two from the
    smallest count whose SRAM holds the weights in the smallest searched dtype."""
    if acc.hbm_gb > 0:
        return sorted(default)
    counts = param_counts(model)
    smallest = min(WEIGHT_BYTES[d] for d in weight_dtypes)
    weights = ((counts.total - counts.embed - counts.lm_head) * smallest + counts.embed * 2.0
               + counts.lm_head * smallest_head_bytes(model, weight_dtypes))
    needed = max(1, math.ceil(weights / (acc.memory_bytes * hbm_fraction)))
    start = 2 ** math.ceil(math.log2(needed))
    return [start * 2**i for i in range(len(default))]


def build_grid(scenario: Scenario, catalog: Catalog, hardware: list[Accelerator] | None = None) -> Grid:
    catalog = for_scenario(catalog, scenario)
    model = catalog.model(scenario.model.id)
    s = scenario.search
    if hardware is None:
        ids = sorted(catalog.hardware) if s.hardware == "all" else list(dict.fromkeys(s.hardware))
        hardware = [catalog.accelerator(i) for i in ids]
    notes = [n for n in (tco.excluded_note(scenario, hardware), tco.unused_prices_note(scenario, hardware)) if n]
    if scenario.cost.mode == "own":
        hardware = ownable(hardware)
    methods, spec_notes = searched_methods(catalog, model, scenario.speculative, list(s.spec_method))
    notes += spec_notes
    options = speculation_options(methods, s.spec_k, lookahead_caps(model, scenario.speculative, methods))
    spec_k = [k for _, k in options]
    tiers = sorted({(d, n) for d in s.dram_fraction for n in s.nvme_fraction if d + n <= 1.0})
    weight_dtypes, kv_dtypes = list(dict.fromkeys(s.weight_dtype)), list(dict.fromkeys(s.kv_dtype))
    batch = sorted(set(s.batch))
    # a prefix cache is searched where prompts share a prefix; with nothing reusable it changes
    # nothing but read as a "97% hit" (of a reusable share of 0) at the bill of a plan without it
    reuse = ((scenario.workload.sessions.turns > 1 or scenario.workload.trace is not None)
             and scenario.workload.sessions.prefix_reuse > 0)
    # the cache on first: of equal bills the search keeps the first in grid order (as argmin does),
    # and at an equal bill a prefix cache only shortens prefills (it held an 8k-prompt plan's cache
    # off at 0.36 s TTFT p95 where the same bill with it read 0.19 s)
    prefix = sorted(set(s.prefix_cache), reverse=True) if reuse else [False]
    attention = list(dict.fromkeys(s.attention))

    published = model.weight_dtype_published  # exempt from the weight floor: it is the model itself
    if published is not None and "weight_dtype" not in s.model_fields_set and published not in weight_dtypes:
        weight_dtypes.append(published)  # the default list lacks the model's own format (NVFP4 checkpoints)
        notes.append(f"search.weight_dtype: {published} added to the default list: {model.id} is published in it")
    notes += quality.excluded(scenario, published)  # a floor that leaves an axis empty is bad input
    # dtypes below the quality floors leave the axes (not merely masked): they are not searched
    weight_dtypes = [d for d in weight_dtypes if quality.weight_ok(scenario, d, published)]
    kv_dtypes = [d for d in kv_dtypes if quality.kv_ok(scenario, d)]
    h_real = len(hardware)
    h_pad = max(HW_PAD, -(-h_real // HW_PAD) * HW_PAD)
    padded = hardware + [hardware[0]] * (h_pad - h_real)
    arch = model_arrays(model)
    counts_of_model = param_counts(model)
    head_bytes = smallest_head_bytes(model, weight_dtypes)
    slots: list[list[tuple[int, Layout]]] = []
    for acc in padded:
        counts = chips_for(acc, model, weight_dtypes, scenario.serving.hbm_fraction, s.chips)
        row = [(n, lay) for n in counts
               for lay in layouts_for(n, acc.scale_up_domain, arch, solve_replicas(n, counts), acc.family)
               + (_pipeline_only(n, arch) if "tp" not in s.parallelism else [])]
        fit = [(n, lay) for n, lay in row if allowed(lay, s.parallelism)
               and weights_fit(lay, acc, counts_of_model, weight_dtypes, scenario.serving.hbm_fraction, head_bytes)]
        # a hardware on which nothing fits keeps its first layout, so the answer can say why it fails
        slots.append(list(dict.fromkeys(fit or [(n, lay) for n, lay in row if allowed(lay, s.parallelism)][:1])))
    width = max(LAYOUT_PAD, -(-max(len(x) for x in slots) // LAYOUT_PAD) * LAYOUT_PAD)
    slot_valid = np.array([[k < len(x) for k in range(width)] for x in slots])
    slots = [x + [x[0] if x else (1, Layout())] * (width - len(x)) for x in slots]
    chips = np.asarray([[n for n, _ in x] for x in slots], dtype=np.float32)
    layouts = [[lay for _, lay in x] for x in slots]
    n_configs = int(slot_valid[:h_real].sum()) * math.prod((len(batch), len(weight_dtypes), len(kv_dtypes),
                                                            len(tiers), len(spec_k), len(prefix), len(attention)))
    if n_configs > MAX_CONFIGS:
        sizes = {"hardware": h_real, "chips x layouts": width, "batch": len(batch),
                 "weight_dtype": len(weight_dtypes), "kv_dtype": len(kv_dtypes), "dram x nvme tiers": len(tiers),
                 "spec_k": len(spec_k), "prefix_cache": len(prefix), "attention": len(attention)}
        axes = " x ".join(f"{n} {name}" for name, n in sizes.items())
        largest = ", ".join(name for name, _ in sorted(sizes.items(), key=lambda kv: -kv[1])[:2])
        raise GridTooLargeError(
            f"search grid has {n_configs:,} configurations (limit {MAX_CONFIGS:,}): {axes}; narrow [search] "
            f"(fewer values on the largest axes: {largest}), e.g. search.batch = [1, 8, 64]")

    hw = tco.priced(hardware_arrays(padded, catalog, scenario.search.risk), padded, scenario)
    hw = Hw(*(np.asarray(x).reshape((h_pad,) + (1,) * (len(AXES) - 1)) for x in hw))
    spec, draft_bytes, draft_ids = speculation_arrays(catalog, model, scenario.speculative, options, weight_dtypes)
    per_slot = (h_pad, width) + (1,) * (len(AXES) - 2)

    def slot_axis(field: str) -> np.ndarray:
        return np.asarray([[getattr(lay, field) for lay in row] for row in layouts], np.float32).reshape(per_slot)

    dense_dtypes = [dense_weight_dtype(model, d) for d in weight_dtypes]  # the non-expert matrices' (lowering)
    cfg = Config(
        chips=slot_axis("instance_chips"),
        batch=_axis(batch, "batch"),
        weight_bytes=_axis([WEIGHT_BYTES[d] for d in weight_dtypes], "weight_dtype"),
        gemm_flops_sel=_axis([GEMM_SELECT[d] for d in weight_dtypes], "weight_dtype"),
        dense_weight_bytes=_axis([WEIGHT_BYTES[d] for d in dense_dtypes], "weight_dtype"),
        dense_gemm_sel=_axis([GEMM_SELECT[d] for d in dense_dtypes], "weight_dtype"),
        head_weight_bytes=_axis([WEIGHT_BYTES[head_weight_dtype(model, d)] for d in weight_dtypes], "weight_dtype"),
        kv_bytes=_axis([KV_BYTES[d] for d in kv_dtypes], "kv_dtype"),
        dram_frac=_axis([t[0] for t in tiers], "tier"),
        nvme_frac=_axis([t[1] for t in tiers], "tier"),
        spec_k=_axis(spec_k, "spec_k"),
        prefix_cache=_axis([1.0 if p else 0.0 for p in prefix], "prefix_cache"),
        flash=_axis([1.0 if a == "flash" else 0.0 for a in attention], "attention"),
        tp=slot_axis("tp"), pp=slot_axis("pp"), ep=slot_axis("ep"), dp_attn=slot_axis("dp_attention"),
        cp=slot_axis("cp"), replicas=slot_axis("replicas_per_system"),
        expert_imbalance=np.float32(scenario.serving.expert_imbalance),
    )
    hw_valid = np.array([i < h_real for i in range(h_pad)])
    dtype_ok = np.array([[supports_weight_dtype(acc, d) and quality.weight_ok(scenario, d, published) for d in weight_dtypes]
                         for acc in padded])
    kv_ok = np.array([quality.kv_ok(scenario, d) for d in kv_dtypes])
    valid = (hw_valid[:, None, None] & slot_valid[:, :, None] & dtype_ok[:, None, :])
    valid = valid[..., None] & kv_ok[None, None, None, :]
    w_axis, k_axis = AXES.index("weight_dtype"), AXES.index("kv_dtype")
    assert k_axis == w_axis + 1  # the mask's last two axes are (weight dtype, KV dtype), adjacent in AXES
    view = [1] * len(AXES)
    view[0], view[1], view[w_axis], view[k_axis] = h_pad, width, len(weight_dtypes), len(kv_dtypes)
    valid = valid.reshape(view)
    return Grid(scenario=scenario, model=model, hardware=hardware, chips=chips, layouts=layouts,
                slot_valid=slot_valid, batch=batch,
                weight_dtype=weight_dtypes, kv_dtype=kv_dtypes, tiers=tiers, spec_k=spec_k,
                prefix_cache=prefix, attention=attention, hw=hw, arch=arch, cfg=cfg,
                spec=spec, load=load_arrays(scenario, model, catalog), draft_weight_bytes=draft_bytes,
                valid=valid, search_notes=tuple(notes), spec_method=tuple(m for m, _ in options),
                draft_ids=draft_ids)


def with_load_of(grid: Grid, scenario: Scenario, catalog: Catalog) -> Grid | None:
    """`grid` re-aimed at `scenario` when the two differ only in the SLOs and the arrival rate, which
    enter the search through `Load` alone (its scalars; no axis, mask or hardware field reads them);
    None otherwise. An interactive edit of those fields then skips `build_grid` (20-50 ms of the TUI's
    edit -> table); the kernel sees the same shapes, so nothing recompiles."""
    old = grid.scenario
    aligned = scenario.model_copy(update={
        "slo": old.slo,
        "workload": scenario.workload.model_copy(update={"arrival_rate_rps": old.workload.arrival_rate_rps}),
    })
    if aligned != old:
        return None
    # the catalog as build_grid reads it (the scenario's own catalog files and prices); same model
    return replace(grid, scenario=scenario, load=load_arrays(scenario, grid.model, for_scenario(catalog, scenario)))


def speculation_options(methods: list[str], spec_k: list[int],
                        caps: dict[str, int] | None = None) -> list[tuple[str, int]]:
    """(method, k) along the speculation axis: k = 0 once (when searched, or when nothing drafts)
    and every method with every k > 0 (at most its cap: a larger k is searched as the cap)."""
    ks = sorted(set(spec_k))
    positive = [k for k in ks if k > 0]
    options = [("none", 0)] if 0 in ks or not methods or not positive else []
    caps = caps or {}
    return options + [(m, k) for m in methods for k in sorted({min(k, caps.get(m, k)) for k in positive})]


def lookahead_caps(model: ModelSpec, speculative, methods: list[str]) -> dict[str, int]:
    """MTP on its published curve drafts at most one token per module: the acceptance was measured for
    the module's own position (DeepSeek-V3: the second token), not for chaining it recursively. With
    the scenario's own acceptance values the searched k stands."""
    own_curve = speculative.custom_curve and speculative.method == "mtp"
    return {"mtp": int(model.mtp_layers or 1)} if "mtp" in methods and not own_curve else {}


def speculation_arrays(catalog: Catalog, model: ModelSpec, speculative, options: list[tuple[str, int]],
                       weight_dtypes: list[str]) -> tuple[Spec, np.ndarray, tuple[str | None, ...]]:
    """`Spec` along the speculation axis (`spec_k`; the acceptance tables keep a trailing axis) and the
    drafter weights in memory per weight dtype and option."""
    from planner.speculative_methods import drafter, off

    made = {m: (off() if m == "none" else drafter(m, catalog, model, speculative)) for m in dict.fromkeys(m for m, _ in options)}
    rows = [made[m] for m, _ in options]
    s_ax, w_ax = AXES.index("spec_k"), AXES.index("weight_dtype")
    shape = [1] * len(AXES)
    shape[s_ax] = len(options)

    def field(name: str) -> np.ndarray:
        values = np.stack([np.asarray(getattr(d.spec, name), np.float32) for d in rows])
        return values.reshape(tuple(shape) + values.shape[1:])

    spec = Spec(**{name: field(name) for name in Spec._fields})
    draft_bytes = np.asarray([[d.weight_bytes(WEIGHT_BYTES[w], WEIGHT_BYTES[head_weight_dtype(model, w)]) for d in rows]
                              for w in weight_dtypes], np.float32)
    if w_ax > s_ax:  # lay the [weight dtype, option] table out in grid axis order
        draft_bytes = draft_bytes.T
    view = [1] * len(AXES)
    view[w_ax], view[s_ax] = len(weight_dtypes), len(options)
    return spec, draft_bytes.reshape(view), tuple(d.draft_id for d in rows)


def gather_spec(grid: Grid, idx: tuple[np.ndarray, ...]) -> tuple[Spec, np.ndarray]:
    """Per-configuration drafter parameters and weight bytes for unravelled grid indices (pass 2)."""
    s_ax, w_ax = AXES.index("spec_k"), AXES.index("weight_dtype")
    s, w = idx[s_ax], idx[w_ax]
    at_s = tuple(s if i == s_ax else 0 for i in range(len(AXES)))
    at_sw = tuple(s if i == s_ax else w if i == w_ax else 0 for i in range(len(AXES)))
    return (Spec(*(np.asarray(x)[at_s] for x in grid.spec)), np.asarray(grid.draft_weight_bytes)[at_sw])


def gather(grid: Grid, flat_indices: np.ndarray):
    """Per-configuration arrays (shape [K]) for the given flat grid indices: pass 2 of the search."""
    idx = np.unravel_index(np.asarray(flat_indices, dtype=np.int64), grid.shape)

    def pick(arr):
        arr = np.broadcast_to(np.asarray(arr), grid.shape)
        return arr[idx]

    hw = Hw(*(pick(x) for x in grid.hw))
    cfg = Config(*(pick(x) for x in grid.cfg))
    valid = pick(grid.valid)
    return hw, cfg, valid, idx
