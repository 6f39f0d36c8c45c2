"""Schema objects -> array pytrees: the one place that sees both pydantic and jax-ready arrays."""

from __future__ import annotations

import numpy as np

from planner.catalog import Catalog
from planner.model.arch import arch_arrays
from planner.model.power import sustained_peak_fraction
from planner.model.types import Arch, Config, Hw, Spec
from planner.quality import as_published
from planner.schema import Accelerator, ModelSpec
from planner.schema.scenario import Speculative

# bytes per weight incl. quantisation scales: int4 = group-128 BF16 scale + zero (AWQ/GPTQ style),
# fp4 = NVFP4 with one FP8 scale per 16 values; fp8/int8 per-channel scales are negligible.
WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5 + 4.0 / 128, "fp4": 0.5 + 1.0 / 16}
# which dense peak the GEMMs run at (weight-only int4 runs BF16 GEMMs after dequantisation)
GEMM_SELECT = {"bf16": 0, "fp8": 1, "int8": 2, "int4": 0, "fp4": 3}
# bytes per cached KV element incl. scales: int8 = FP16 scale per 128-element head vector,
# int4 = KIVI-style groups of 64 with FP16 scale and zero point; fp8 uses a per-tensor scale.
KV_BYTES = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0 + 2.0 / 128, "int4": 0.5 + 4.0 / 64}

_F32 = np.float32
UNKNOWN_LINK_GBPS = 64.0
"""Model assumption for a link whose bandwidth the catalog marks "unknown": PCIe Gen5 x16 per
direction, the most common chip link (reference: [R:hugo]). Stated in `planner hardware show`."""
UNKNOWN_SCALE_OUT_GBPS = 50.0
"""Model assumption for a scale-out network the catalog marks "unknown": one 400 Gb/s port per chip
(an InfiniBand NDR port, 50 GB/s per direction; reference: [R:hugo]). Plans that cross scale-up
domains on such hardware name this assumption."""


def _num(value, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) else default


def host_tiers(acc: Accelerator) -> dict[str, float]:
    """Host tiers the model may use. Host DRAM with an unknown bandwidth is taken to run at the
    chip's host link (DRAM outruns any PCIe/C2C link per chip); NVMe with an unknown bandwidth is
    left out (no basis to time it). Unknown capacities mean the tier is not offered."""
    host_bw = _num(acc.host_link_gbps, UNKNOWN_LINK_GBPS) * 1e9
    dram = _num(acc.host_dram_gb_per_chip) * 1e9
    dram_bw = _num(acc.host_dram_gbps_per_chip, host_bw / 1e9) * 1e9 if dram > 0 else 0.0
    nvme_bw = _num(acc.nvme_gbps_per_chip) * 1e9
    nvme = _num(acc.nvme_gb_per_chip) * 1e9 if nvme_bw > 0 else 0.0
    return {"dram_bytes": dram, "dram_bw": dram_bw, "nvme_bytes": nvme, "nvme_bw": nvme_bw}


def scale_out_gbps(acc: Accelerator) -> tuple[float, bool]:
    """(scale-out GB/s per chip the model uses, whether the catalog states it)."""
    known = isinstance(acc.scale_out_gbps, int | float) and acc.scale_out_gbps > 0
    return (float(acc.scale_out_gbps) if known else UNKNOWN_SCALE_OUT_GBPS), known


def hardware_row(acc: Accelerator, catalog: Catalog) -> dict[str, float]:
    fam = catalog.family(acc)
    clock = sustained_peak_fraction(acc.power_w, fam)  # a power-capped board runs below its rated clock
    return {
        "mem_bytes": acc.memory_bytes,
        "mem_bw": acc.memory_gbps * 1e9,
        "flops_bf16": acc.bf16_tflops * 1e12 * clock,
        "flops_fp8": _num(acc.fp8_tflops) * 1e12 * clock,
        "flops_int8": _num(acc.int8_tops) * 1e12 * clock,
        "flops_fp4": _num(acc.fp4_tflops) * 1e12 * clock,
        "link_bw": _num(acc.scale_up_gbps, UNKNOWN_LINK_GBPS) * 1e9,
        "domain": float(acc.scale_up_domain),
        "scale_out_bw": scale_out_gbps(acc)[0] * 1e9,
        # measured all-reduce latency where the catalog has one, else the family's calibrated figure
        "allreduce_latency_s": _num(acc.allreduce_latency_us, fam.collective_latency_us) * 1e-6,
        "host_bw": _num(acc.host_link_gbps, UNKNOWN_LINK_GBPS) * 1e9,
        **host_tiers(acc),
        "usd_per_hour": acc.usd_per_hour,
        "power_usd_per_hour": 0.0,  # renting: energy is in the price (planner.tco.priced for owning)
        "sram_only": 1.0 if acc.hbm_gb == 0 else 0.0,
        "prefill_mfu": fam.prefill_mfu,
        "prefill_mfu_lowp": _or(fam.prefill_mfu_lowp, fam.prefill_mfu),
        "decode_mfu": fam.decode_mfu,
        "hbm_eff": fam.hbm_efficiency,
        "attn_eff": fam.attention_efficiency,
        "attn_eff_lowp": _or(fam.attention_efficiency_lowp, fam.attention_efficiency),
        "attn_prefill_mfu": fam.prefill_attention_mfu,
        "attn_prefill_mfu_fp8": _or(fam.prefill_attention_mfu_fp8, fam.prefill_attention_mfu),
        "moe_eff": fam.moe_efficiency,
        "moe_quant_overhead": fam.moe_quant_overhead,
        "moe_quant_overhead_fp4": _or(fam.moe_quant_overhead_fp4, fam.moe_quant_overhead),
        "expert_width_knee": fam.expert_width_knee,
        "act_passes": fam.activation_passes,
        "step_overhead_s": fam.step_overhead_ms * 1e-3,
        "admission_steps": fam.admission_interval_steps,
        "first_token_steps": fam.first_token_steps,
        "collective_latency_s": fam.collective_latency_us * 1e-6,
        "layer_latency_s": fam.layer_latency_us * 1e-6,
        "quant_layer_latency_s": fam.quant_layer_latency_us * 1e-6,
        "moe_layer_latency_s": fam.moe_layer_latency_us * 1e-6,
        "host_s_per_req": catalog.host_cpus[acc.host_cpu].us_per_request * 1e-6 if catalog.host_cpus else 0.0,
        "link_eff": fam.link_efficiency,
        "host_link_eff": fam.host_link_efficiency,
    }


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


RATE_FIELDS = ("mem_bw", "flops_bf16", "flops_fp8", "flops_int8", "flops_fp4", "link_bw", "host_bw", "dram_bw",
               "nvme_bw", "scale_out_bw")
LATENCY_FIELDS = ("step_overhead_s", "collective_latency_s", "allreduce_latency_s", "layer_latency_s",
                  "quant_layer_latency_s", "moe_layer_latency_s", "host_s_per_req")


def scaled_times(row: dict[str, float], scale: float) -> dict[str, float]:
    """The same hardware with every time multiplied by `scale`: every time in the model is a sum or
    max of bytes / bandwidth, FLOPs / peak and latencies, so dividing the rates and multiplying the
    latencies scales each of them exactly (capacities are untouched)."""
    out = dict(row)
    for name in RATE_FIELDS:
        out[name] = row[name] / scale
    for name in LATENCY_FIELDS:
        out[name] = row[name] * scale
    return out


def hardware_arrays(accs: list[Accelerator], catalog: Catalog, risk: str = "central") -> Hw:
    """Per-chip arrays; with `risk = "p90"` each family's times sit at the pessimistic edge of its
    uncertainty band (planner/uncertainty.py)."""
    rows = [hardware_row(acc, catalog) for acc in accs]
    if risk == "p90":
        from planner.uncertainty import band_for

        rows = [scaled_times(r, band_for(acc.family).high) for r, acc in zip(rows, accs, strict=True)]
    return Hw(**{name: np.array([r[name] for r in rows], dtype=_F32) for name in Hw._fields})


def model_arrays(spec: ModelSpec) -> Arch:
    return arch_arrays(spec)


def supports_weight_dtype(acc: Accelerator, dtype: str) -> bool:
    """FP4 weights need FP4 tensor cores (NVFP4/MXFP4 W4A4); other formats have a BF16 fallback."""
    if dtype == "fp4":
        return acc.peak_tflops("fp4") is not None
    return True


def draft_arrays(catalog: Catalog, target: ModelSpec, spec: Speculative,
                 weight_dtype: str = "bf16") -> tuple[Spec, float]:
    """Speculative parameters of the scenario's method and the drafter's weight bytes in memory
    (planner/speculative_methods.py; an MTP layer is held at the model's `weight_dtype`)."""
    from planner.speculative_methods import drafter, off

    if spec.method != "none":
        d = drafter(spec.method, catalog, target, spec)
        return d.spec, d.weight_bytes(WEIGHT_BYTES[weight_dtype], WEIGHT_BYTES[head_weight_dtype(target, weight_dtype)])
    arrays = off().spec
    if spec.custom_curve:  # nothing drafts, but the curve is still the scenario's (read by analyses and tests)
        arrays = arrays._replace(alpha_short=_F32(spec.acceptance_short), alpha_long=_F32(spec.acceptance_long),
                                 alpha_context=_F32(spec.acceptance_context_tokens))
    return arrays, 0.0


def dense_weight_dtype(model: ModelSpec, weight_dtype: str) -> str:
    """The dtype of the matrices a model's checkpoint may keep wider (`arch.params_kept_wider`: a MoE's
    non-expert matrices, a dense model's attention) at this weight dtype: where the weights are the
    published checkpoint's (`quality.as_published`) and it keeps those wider
    (`ModelSpec.weight_dtype_dense_published`), that; else the weight dtype itself (a quantisation
    the planner applies covers every linear layer)."""
    dense = model.weight_dtype_dense_published
    return dense if dense is not None and as_published(weight_dtype, model.weight_dtype_published) else weight_dtype


def head_weight_dtype(model: ModelSpec, weight_dtype: str) -> str:
    """The dtype of a model's LM head at this weight dtype: the published checkpoint's
    (`ModelSpec.lm_head_dtype_published`) where its weights are served (`quality.as_published`) and
    it quantises the head; else bf16, which is what engines keep when they quantise a checkpoint
    themselves (vLLM's and SGLang's online FP8 leave the LM head out)."""
    head = model.lm_head_dtype_published
    return head if head is not None and as_published(weight_dtype, model.weight_dtype_published) else "bf16"


def config_arrays(*, chips, batch, weight_dtype, kv_dtype, dram_frac=0.0, nvme_frac=0.0, spec_k=0,
                  prefix_cache=0.0, flash=1.0, tp=None, pp=1, ep=1, dp_attn=1, cp=1, replicas=1,
                  expert_imbalance=1.0, dense_dtype=None, head_dtype="bf16") -> Config:
    """Config arrays; without a layout, the chips form one tensor-parallel instance (tp = chips).
    `dense_dtype`: the dtype of the matrices kept wider (`dense_weight_dtype`; default `weight_dtype`);
    `head_dtype`: the LM head's (`head_weight_dtype`)."""
    def arr(x, mapping=None):
        if mapping is not None:
            x = np.vectorize(mapping.__getitem__, otypes=[_F32])(np.asarray(x))
        return np.asarray(x, dtype=_F32)

    return Config(
        chips=arr(chips), batch=arr(batch), weight_bytes=arr(weight_dtype, WEIGHT_BYTES),
        gemm_flops_sel=arr(weight_dtype, GEMM_SELECT),
        dense_weight_bytes=arr(weight_dtype if dense_dtype is None else dense_dtype, WEIGHT_BYTES),
        dense_gemm_sel=arr(weight_dtype if dense_dtype is None else dense_dtype, GEMM_SELECT),
        head_weight_bytes=arr(head_dtype, WEIGHT_BYTES),
        kv_bytes=arr(kv_dtype, KV_BYTES),
        dram_frac=arr(dram_frac), nvme_frac=arr(nvme_frac), spec_k=arr(spec_k),
        prefix_cache=arr(prefix_cache), flash=arr(flash),
        tp=arr(chips if tp is None else tp), pp=arr(pp), ep=arr(ep), dp_attn=arr(dp_attn), cp=arr(cp),
        replicas=arr(replicas), expert_imbalance=arr(expert_imbalance),
    )
