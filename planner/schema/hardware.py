"""Hardware catalog schema: one `[[accelerator]]` per chip, numbers with sources.

Units are in the field names. `_gbps` is gigaBYTES per second (1e9 B/s), per direction, per chip.
FLOP figures are DENSE peak (no 2:4 sparsity). A figure not found publicly is "unknown"; a precision
the chip cannot run natively is "unsupported".
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from planner.schema.common import KebabId, Strict, Unknown, Unsupported, check_sources, unique_ids

Tflops = float | Unknown | Unsupported
Number = float | Unknown

# Numeric fields that must cite a source whenever they are present.
SOURCED_FIELDS = (
    "sram_mb",
    "sram_gbps",
    "hbm_gb",
    "hbm_gbps",
    "bf16_tflops",
    "fp8_tflops",
    "int8_tops",
    "fp4_tflops",
    "scale_up_gbps",
    "scale_up_domain",
    "host_link_gbps",
    "scale_out_gbps",
    "allreduce_latency_us",
    "host_dram_gb_per_chip",
    "host_dram_gbps_per_chip",
    "nvme_gb_per_chip",
    "nvme_gbps_per_chip",
    "power_w",
    "usd_per_hour",
    "capex_usd",
)


# The largest plausible value of each numeric field, far above any chip announced: bigger numbers are
# typos or unit mistakes (TB for GB), and they would overflow the float32 cost model. Positive values
# must also be at least SMALLEST_POSITIVE (0 is allowed where the field allows it).
LIMITS: dict[str, float] = {
    "sram_mb": 1e6,
    "sram_gbps": 1e9,
    "hbm_gb": 1e5,
    "hbm_gbps": 1e6,
    "bf16_tflops": 1e7,
    "fp8_tflops": 1e7,
    "int8_tops": 1e7,
    "fp4_tflops": 1e7,
    "scale_up_gbps": 1e6,
    "scale_up_domain": 1e6,
    "host_link_gbps": 1e5,
    "scale_out_gbps": 1e5,
    "allreduce_latency_us": 1e6,
    "host_dram_gb_per_chip": 1e6,
    "host_dram_gbps_per_chip": 1e5,
    "nvme_gb_per_chip": 1e7,
    "nvme_gbps_per_chip": 1e5,
    "power_w": 1e6,
    "usd_per_hour": 1e5,
    "capex_usd": 1e8,
}
API_PRICE_LIMIT = 1e6
SMALLEST_POSITIVE = 1e-6


def _check_range(owner: str, name: str, value: object, limit: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return  # "unknown", "unsupported" or absent
    if value < 0:
        raise ValueError(f"{owner}{name} = {value!r} is negative (allowed: >= 0, or \"unknown\")")
    if value > limit:
        raise ValueError(f"{owner}{name} = {value!r} is implausibly large (allowed: at most {limit:,.0f}; "
                         "check the unit in the field name)")
    if 0 < value < SMALLEST_POSITIVE:
        raise ValueError(f"{owner}{name} = {value!r} is implausibly small (allowed: 0, or at least "
                         f"{SMALLEST_POSITIVE:g})")


def _both_or_neither(a_name: str, a: object, b_name: str, b: object) -> None:
    """Capacity and bandwidth of one memory tier: both 0 (no such tier) or both positive."""
    if isinstance(a, int | float) and isinstance(b, int | float) and (a == 0) != (b == 0):
        raise ValueError(f"{a_name} = {a:g} and {b_name} = {b:g} are inconsistent: a memory tier has both "
                         "a capacity and a bandwidth (both positive), or neither (both 0)")


class ApiPrice(Strict):
    """A published token-API price and speed, kept for reference next to API-only chips."""

    model: str = Field(description="Model as named by the provider")
    usd_per_mtok_input: Number = Field(description="$ per 1M input tokens")
    usd_per_mtok_output: Number = Field(description="$ per 1M output tokens")
    usd_per_mtok_cached_input: Number | None = Field(None, description="$ per 1M cached input tokens")
    tokens_per_s: Number | None = Field(None, description="Published output speed per stream")
    source: str = Field(description="Source key from the file's [sources] table")


SPECIALIST_KINDS = ("lpu", "wafer", "rdu")
"""SRAM/dataflow specialist chips (Groq, Cerebras, SambaNova), served only by their vendors' own stacks."""


class Accelerator(Strict):
    id: KebabId = Field(description="Catalog ID, lowercase kebab-case (e.g. 'h100-sxm')")
    name: str = Field(description="Marketing name")
    vendor: str = Field(description="Vendor, e.g. 'nvidia', 'amd', 'google'")
    kind: Literal["gpu", "tpu", "asic", "lpu", "wafer", "rdu"] = Field(description="Architecture class")
    family: KebabId = Field(description="Calibration family in hardware/calibration.toml")
    # memory tiers on the device
    sram_mb: Number | None = Field(None, description="On-chip SRAM, MB")
    sram_gbps: Number | None = Field(None, description="On-chip SRAM bandwidth, GB/s")
    hbm_gb: float = Field(ge=0, description="Device memory (HBM/GDDR) usable capacity, GB; 0 if none")
    hbm_gbps: float = Field(ge=0, description="Device memory bandwidth, GB/s; 0 if none")
    # dense peak compute
    bf16_tflops: float = Field(gt=0, description="Dense BF16/FP16 tensor peak, TFLOP/s")
    fp8_tflops: Tflops = Field(description="Dense FP8 tensor peak, TFLOP/s")
    int8_tops: Tflops = Field(description="Dense INT8 tensor peak, TOP/s")
    fp4_tflops: Tflops = Field(description="Dense FP4 tensor peak, TFLOP/s")
    # interconnect
    scale_up_gbps: float | Unknown = Field(description="Scale-up link bandwidth per chip, GB/s per direction")
    scale_up_domain: int = Field(ge=1, description="Chips in one scale-up (NVLink/ICI/xGMI) domain")
    scale_up_kind: str = Field(description="Interconnect name, e.g. 'NVLink 4'")
    host_link_gbps: float | Unknown = Field(description="Chip <-> host link, GB/s per direction")
    host_link_kind: str = Field(description="Host link name, e.g. 'PCIe Gen5 x16', 'NVLink-C2C'")
    host_cpu: KebabId = Field("x86", description="Host CPU class that runs the engine's scheduler, sampling and "
                              "detokenisation ('x86', or 'grace' on GH200/GB200/GB300); its per-request time per "
                              "step is in hardware/calibration.toml [[host_cpu]]")
    scale_out_gbps: Number | None = Field(
        None, description="Scale-out (between scale-up domains) bandwidth per chip, GB/s per direction: the NICs "
        "of the priced instance (InfiniBand, RoCE, EFA, DCN) divided by its chips; \"unknown\" or absent: the "
        "planner assumes one 400 Gb/s port per chip and says so in every plan that crosses domains")
    scale_out_kind: str = Field("unknown", description="Scale-out network, e.g. '8x 400 Gb/s InfiniBand NDR per node'")
    allreduce_latency_us: Number | None = Field(
        None, description="Latency of one small all-reduce over the scale-up domain (the bytes-independent part), "
        "microseconds, as measured; \"unknown\" or absent: the family's calibrated collective_latency_us")
    # host tiers reachable from one chip
    host_dram_gb_per_chip: Number | None = Field(None, description="Host DRAM per chip in a typical node, GB")
    host_dram_gbps_per_chip: Number | None = Field(None, description="Host DRAM bandwidth share per chip, GB/s")
    nvme_gb_per_chip: Number | None = Field(None, description="Local NVMe capacity per chip, GB")
    nvme_gbps_per_chip: Number | None = Field(None, description="Local NVMe read bandwidth per chip, GB/s")
    # power and price
    power_w: Number = Field(description="Board power (TDP/TBP), W")
    usd_per_hour: float = Field(gt=0, description="On-demand (or estimated) $ per chip-hour")
    price_kind: Literal["on-demand", "estimate", "reserved", "spot", "user"] = Field(
        description="Listed on-demand price, an estimate, or a price the user set (reserved, spot or plain)")
    price_provider: str = Field(description="Who charges that price")
    price_date: str = Field(description="Date of the price (YYYY-MM or YYYY-MM-DD)")
    price_method: str | None = Field(None, description="How an estimated price was derived")
    capex_usd: Number | None = Field(None, description="Purchase price per chip, $ (street, MSRP or estimate)")
    capex_kind: Literal["street", "msrp", "estimate"] | None = Field(None, description="What capex_usd is")
    capex_date: str | None = Field(None, description="Date of the purchase price (YYYY-MM)")
    capex_method: str | None = Field(None, description="How an estimated purchase price was derived")
    capex_includes_host: bool = Field(False, description="capex_usd is a whole system's share (host and network included)")
    api_prices: list[ApiPrice] = Field(default_factory=list, description="Published token-API prices")
    sources: dict[str, str] = Field(description="Field name -> source key in the file's [sources]")
    notes: str = Field("", description="Caveats worth knowing")

    @field_validator("price_date")
    @classmethod
    def _date(cls, value: str) -> str:
        import re

        if not re.match(r"^\d{4}-\d{2}(-\d{2})?$", value):
            raise ValueError("price_date is YYYY-MM or YYYY-MM-DD")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Accelerator:
        if self.price_kind == "estimate" and not self.price_method:
            raise ValueError("an estimated price needs price_method saying how it was derived")
        if isinstance(self.capex_usd, int | float) and (self.capex_kind is None or self.capex_date is None):
            raise ValueError("capex_usd needs capex_kind and capex_date")
        if self.capex_kind == "estimate" and not self.capex_method:
            raise ValueError("an estimated capex needs capex_method saying how it was derived")
        if (self.hbm_gb == 0) != (self.hbm_gbps == 0):
            raise ValueError("hbm_gb and hbm_gbps must both be 0 (no HBM) or both positive")
        if self.hbm_gb == 0 and not isinstance(self.sram_mb, float | int):
            raise ValueError("a chip without HBM must give sram_mb (its weights live in SRAM)")
        for name in ("scale_up_gbps", "host_link_gbps"):
            value = getattr(self, name)
            if isinstance(value, float | int) and value < 0:
                raise ValueError(f"{name} must be >= 0 or \"unknown\"")
        if self.hbm_gb == 0 and not isinstance(self.sram_gbps, float | int):
            raise ValueError("a chip without HBM must give sram_gbps")
        return self

    @model_validator(mode="after")
    def _plausible(self) -> Accelerator:
        """Numbers in range, and memory tiers that hang together (see LIMITS)."""
        for name, limit in LIMITS.items():
            _check_range("", name, getattr(self, name), limit)
        if self.hbm_gb == 0 and isinstance(self.sram_mb, int | float) and self.sram_mb <= 0:
            raise ValueError(f"a chip without HBM needs sram_mb > 0 (got {self.sram_mb:g})")
        _both_or_neither("sram_mb", self.sram_mb, "sram_gbps", self.sram_gbps)
        _both_or_neither("host_dram_gb_per_chip", self.host_dram_gb_per_chip,
                         "host_dram_gbps_per_chip", self.host_dram_gbps_per_chip)
        _both_or_neither("nvme_gb_per_chip", self.nvme_gb_per_chip, "nvme_gbps_per_chip", self.nvme_gbps_per_chip)
        host_tiers = [n for n in ("host_dram_gb_per_chip", "nvme_gb_per_chip")
                      if isinstance(getattr(self, n), int | float) and getattr(self, n) > 0]
        if host_tiers and self.host_link_gbps == 0:
            raise ValueError(f"{host_tiers[0]} > 0 but host_link_gbps = 0: host tiers are reached over the "
                             "host link, so give its bandwidth (or \"unknown\")")
        if self.scale_up_domain > 1 and self.scale_up_gbps == 0:
            raise ValueError(f"scale_up_domain = {self.scale_up_domain} chips but scale_up_gbps = 0: a "
                             "multi-chip domain needs link bandwidth (or scale_up_domain = 1)")
        for i, api in enumerate(self.api_prices):
            for name in ("usd_per_mtok_input", "usd_per_mtok_output", "usd_per_mtok_cached_input", "tokens_per_s"):
                _check_range(f"api_prices[{i}].", name, getattr(api, name), API_PRICE_LIMIT)
        return self

    @property
    def memory_gb(self) -> float:
        """Capacity that holds weights and KV: HBM, or on-chip SRAM on SRAM-only chips."""
        if self.hbm_gb > 0:
            return self.hbm_gb
        return float(self.sram_mb) / 1000.0  # type: ignore[arg-type]

    @property
    def memory_bytes(self) -> float:
        """Device memory in bytes. HBM "GB" on spec sheets is binary: an "80 GB" H100 reports
        81,559 MiB in nvidia-smi (stacks are built from 2^n-bit dies), so HBM counts 2^30 bytes per GB.
        On-chip SRAM "MB" is taken as 1e6 bytes."""
        if self.hbm_gb > 0:
            return self.hbm_gb * 2.0**30
        return float(self.sram_mb) * 1e6  # type: ignore[arg-type]

    @property
    def memory_gbps(self) -> float:
        if self.hbm_gb > 0:
            return self.hbm_gbps
        return float(self.sram_gbps)  # type: ignore[arg-type]

    def peak_tflops(self, dtype: str) -> float | None:
        """Dense peak for a compute precision, or None if unsupported/unknown."""
        value = {"bf16": self.bf16_tflops, "fp8": self.fp8_tflops, "int8": self.int8_tops,
                 "fp4": self.fp4_tflops}[dtype]
        return float(value) if isinstance(value, float | int) else None


class HardwareFile(Strict):
    """One TOML file in hardware/: a source table and the accelerators it describes."""

    sources: dict[str, str] = Field(description="Source key -> citation (document title and/or URL)")
    accelerator: list[Accelerator] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sources_resolve(self) -> HardwareFile:
        unique_ids("accelerator", [acc.id for acc in self.accelerator])
        for i, acc in enumerate(self.accelerator):
            values = {name: getattr(acc, name) for name in SOURCED_FIELDS}
            check_sources(f"accelerator.{i} ({acc.id})", values, acc.sources, self.sources)
            for api in acc.api_prices:
                if api.source not in self.sources:
                    raise ValueError(f"accelerator.{i} ({acc.id}): api_prices source '{api.source}' is not in "
                                     "[sources]")
        return self


class TierPrice(Strict):
    usd_per_gb_hour: float = Field(gt=0, description="$ per GB-hour of capacity")
    source: str = Field(description="Source key")
    method: str = Field(description="How the figure was derived")

    @model_validator(mode="after")
    def _plausible(self) -> TierPrice:
        if not 1e-9 <= self.usd_per_gb_hour <= 100:
            raise ValueError(f"usd_per_gb_hour = {self.usd_per_gb_hour!r} is out of range (allowed: 1e-09 to 100)")
        return self


class CalibrationFamily(Strict):
    """Achieved fractions of peak for one hardware family, fitted to public measurements."""

    id: KebabId
    prefill_mfu: float = Field(gt=0, le=1, description="Achieved fraction of dense peak in prefill GEMMs")
    prefill_mfu_lowp: float | None = Field(
        None, gt=0, le=1, description="Achieved fraction of the FP8/INT8/FP4 peak in prefill GEMMs on quantised "
        "activations (low-precision GEMMs reach less of their doubled peak); unset = as prefill_mfu"
    )
    decode_mfu: float = Field(gt=0, le=1, description="Achieved fraction of dense peak in batched decode GEMMs")
    hbm_efficiency: float = Field(gt=0, le=1, description="Achieved fraction of memory bandwidth (weights)")
    attention_efficiency: float = Field(gt=0, le=1, description="Achieved fraction of bandwidth in decode attention")
    prefill_attention_mfu: float = Field(
        gt=0, le=1, description="Achieved fraction of the BF16 peak in fused (flash) prefill attention"
    )
    moe_efficiency: float = Field(
        gt=0, le=1, description="Efficiency of grouped expert GEMMs relative to dense GEMMs (MoE only)"
    )
    moe_quant_overhead: float = Field(
        0.0, ge=0, le=4, description="Part of a grouped expert GEMM on 8-bit quantised activations (W8A8 FP8/INT8 "
        "on native tensor cores) that the faster peak does not shorten (quantising every routed token, block "
        "scales, few rows per expert in a larger tile), in units of the BF16 kernel's time: such a GEMM reaches "
        "1 / (1/moe_efficiency + overhead x low-precision peak / BF16 peak) of its compute roofline (its weight bytes "
        "stream as with moe_efficiency alone), so FP8 experts gain less than 2x; 0 = none"
    )
    moe_quant_overhead_fp4: float | None = Field(
        None, ge=0, le=4, description="The same for W4A4 FP4 experts (16-element block scales, newer grouped "
        "kernels), which may be fitted apart from the 8-bit value: FP4 experts gain less than 4x; unset = as "
        "moe_quant_overhead"
    )
    prefill_attention_mfu_fp8: float | None = Field(
        None, gt=0, le=2, description="Achieved fraction of the BF16 peak in FP8 prefill attention (FP8 KV on a "
        "chip with FP8 tensor cores); unset = as prefill_attention_mfu"
    )
    attention_efficiency_lowp: float | None = Field(
        None, gt=0, le=1, description="Achieved fraction of bandwidth in decode attention over a quantised "
        "(fp8/int8/int4) KV cache: dequantising kernels reach less of the bandwidth; unset = as attention_efficiency"
    )
    expert_width_knee: float = Field(
        0.0, ge=0, le=65536, description="Expert FFN width at which grouped expert GEMMs lose half their "
        "efficiency (short inner loops of narrow experts), elements; 0 = no width effect"
    )
    activation_passes: float = Field(
        0.0, ge=0, le=64, description="Non-GEMM memory traffic per token and layer, in 16-bit passes over "
        "(hidden + active FFN width): norms, RoPE, residuals, SwiGLU, activation (de)quantisation"
    )
    step_overhead_ms: float = Field(ge=0, description="Fixed per-step launch/scheduling overhead, ms")
    collective_latency_us: float = Field(ge=0, description="Latency of one all-reduce hop, microseconds")
    layer_latency_us: float = Field(
        0.0, ge=0, le=1000, description="Fixed time per layer per forward pass, microseconds: on GPUs the "
        "kernel launches and minimum kernel durations of a layer; on dataflow chips (Groq, Cerebras) the time a "
        "token takes to cross each layer's chips or cores, which dominates at small batch"
    )
    moe_layer_latency_us: float = Field(
        0.0, ge=0, le=1000, description="Extra fixed time per MoE layer per forward pass, microseconds: routing, "
        "top-k, token permutation, two grouped GEMMs and the weighted combine launch several kernels a dense MLP "
        "does not"
    )
    quant_layer_latency_us: float = Field(
        0.0, ge=0, le=1000, description="Extra fixed time per layer when GEMMs run on quantised activations "
        "(FP8/INT8/FP4: quantisation kernels before each GEMM), microseconds"
    )
    link_efficiency: float = Field(
        0.85, gt=0, le=1, description="Achieved fraction of the scale-up link bandwidth in large all-reduces "
        "(NCCL bus bandwidth over the link's per-direction peak)"
    )
    host_link_efficiency: float = Field(
        0.8, gt=0, le=1, description="Achieved fraction of the chip-host link in bulk KV copies (DMA)"
    )
    full_clock_power_w: float = Field(
        0.0, ge=0, le=1e5, description="Board power at which the family's die holds its rated clock through dense "
        "GEMMs; a board rated lower sustains (power_w / full_clock_power_w)^power_clock_exponent of its peak "
        "(planner.model.power.sustained_clock_fraction). 0 = every board's rated peak holds"
    )
    power_clock_exponent: float = Field(
        1.0, ge=0, le=1, description="Exponent g of the sustained clock f / f_rated = (P / P_full)^g: 1 with the "
        "voltage at its floor (P ~ f), 1/3 where the voltage scales with the clock (P ~ f^3)"
    )
    admission_interval_steps: float = Field(
        1.0, ge=1, le=64, description="Engine steps between the scheduler's admissions of new prompts while a batch "
        "runs: a request arriving at a random moment waits half an interval for its prefill to start (1: every "
        "step, as vLLM V1, SGLang and TensorRT-LLM schedule by default; vLLM V0's --num-scheduler-steps N runs N)"
    )
    first_token_steps: float = Field(
        0.0, ge=0, le=4, description="Decode (token-generation) steps a request's first token waits for after "
        "its prefill: 0 where the prefill pass emits and streams it (vLLM, SGLang, TensorRT-LLM); 1 where the "
        "engine's first token reaches the client only after the first token-generation step (the AWS Neuron "
        "benchmark tables: their batch-1 TTFT is the context encoding plus about one TPOT)"
    )
    calibrated_from: str = Field(description="Measurements the values were fitted to, or 'prior: ...'")
    prior_from: KebabId | None = Field(
        None, description="Family whose values fill every knob this one does not set: all of them for a family "
        "without measurements, the unfitted ones for a family whose few cases cannot pin every knob; the "
        "priors then follow that family's refits"
    )
    fitted: list[str] = Field(default_factory=list, description="Knobs fitted to this family's measurements "
                              "(`python -m planner.calibrate FAMILY`); the rest are priors. Empty: uncalibrated")

    @model_validator(mode="before")
    @classmethod
    def _replaced_knobs(cls, data: object) -> object:
        """A calibration file written before `moe_quant_overhead` gets its conversion, not just "extra key"."""
        if isinstance(data, dict) and "moe_efficiency_lowp" in data:
            raise ValueError(f"family '{data.get('id')}': moe_efficiency_lowp was replaced by moe_quant_overhead: "
                             "set moe_quant_overhead = "
                             "(1 / moe_efficiency_lowp - 1 / moe_efficiency) / (low-precision peak / BF16 peak) "
                             "for the precision it was fitted at (4 for FP4 on Blackwell)")
        return data

    @model_validator(mode="after")
    def _plausible(self) -> CalibrationFamily:
        """Fractions below 0.001 and overheads above 10 s are typos (and break float32 arithmetic)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "fitted":
                unknown = sorted(set(value) - set(type(self).model_fields) - {"id"})
                if unknown:
                    raise ValueError(f"fitted: '{unknown[0]}' is not a calibration knob")
                continue
            if name.endswith(("_mfu", "_efficiency", "_scale")) and isinstance(value, float) and value < 1e-3:
                raise ValueError(f"{name} = {value!r} is out of range (allowed: 0.001 to 1)")
        if self.step_overhead_ms > 1e4:
            raise ValueError(f"step_overhead_ms = {self.step_overhead_ms!r} is out of range (allowed: 0 to 10000)")
        if self.collective_latency_us > 1e7:
            raise ValueError(f"collective_latency_us = {self.collective_latency_us!r} is out of range "
                             "(allowed: 0 to 1e7)")
        return self


class HostTiersFile(Strict):
    """Prices of the host tiers (DRAM, NVMe), so tiering has a cost."""

    sources: dict[str, str]
    dram: TierPrice
    nvme: TierPrice

    @model_validator(mode="after")
    def _sources_resolve(self) -> HostTiersFile:
        for name in ("dram", "nvme"):
            if getattr(self, name).source not in self.sources:
                raise ValueError(f"{name}.source is not in [sources]")
        return self


class HostCpu(Strict):
    """Host time per running request per engine step on one class of host CPU."""

    id: KebabId
    us_per_request: float = Field(ge=0, le=1000, description="Host CPU time per running request per engine "
                                  "step (scheduling, sampling, detokenisation, input preparation), microseconds")
    source: str = Field(description="The public measurement the figure is derived from, and how")


_NOT_INHERITED = ("id", "calibrated_from", "fitted", "prior_from")


def inherit_priors(raw: object) -> object:
    """calibration.toml with every `prior_from` family completed from the family it names: the values
    it does not set itself are that family's, so a family without measurements (Ampere, Ada, CDNA 4),
    or one whose few cases cannot pin every knob (Blackwell), runs on its nearest well-measured
    family's current values, mechanisms included, rather than on a copy that a refit leaves behind.
    A family that takes priors cannot be named itself (no chains)."""
    families = raw.get("family") if isinstance(raw, dict) else None
    if not isinstance(families, list):
        return raw
    by_id = {f.get("id"): f for f in families if isinstance(f, dict)}
    resolved = []
    for fam in families:
        parent_id = fam.get("prior_from") if isinstance(fam, dict) else None
        if parent_id is None:
            resolved.append(fam)
            continue
        parent = by_id.get(parent_id)
        where = f"family '{fam.get('id')}'.prior_from"
        if not isinstance(parent, dict):
            known = ", ".join(sorted(str(k) for k in by_id))
            raise ValueError(f"{where}: no family '{parent_id}' (known: {known})")
        if parent.get("prior_from") is not None:
            raise ValueError(f"{where}: '{parent_id}' itself takes its priors from '{parent['prior_from']}'; "
                             f"name that family instead")
        resolved.append({**{k: v for k, v in parent.items() if k not in _NOT_INHERITED}, **fam})
    return {**raw, "family": resolved}


class CalibrationFile(Strict):
    family: list[CalibrationFamily]
    host_cpu: list[HostCpu] = Field(default_factory=list, description="Per-request host time by host CPU class")

    _inherit_priors = model_validator(mode="before")(inherit_priors)
