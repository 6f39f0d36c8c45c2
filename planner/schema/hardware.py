"""Hardware catalog schema: one `[[accelerator]]` per chip, numbers with sources.

Units are in the field names. `_gbps` is gigaBYTES per second (1e9 B/s), per direction, per chip.
FLOP figures are DENSE peak (no 2:4 sparsity). A figure not found publicly is "unknown"; a precision
the chip cannot run natively is "unsupported".
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from planner.schema.common import KebabId, Strict, Unknown, Unsupported, check_sources

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
    "host_dram_gb_per_chip",
    "host_dram_gbps_per_chip",
    "nvme_gb_per_chip",
    "nvme_gbps_per_chip",
    "power_w",
    "usd_per_hour",
)


class ApiPrice(Strict):
    """A published token-API price and speed, kept for reference next to API-only chips."""

    model: str = Field(description="Model as named by the provider")
    usd_per_mtok_input: Number = Field(description="$ per 1M input tokens")
    usd_per_mtok_output: Number = Field(description="$ per 1M output tokens")
    usd_per_mtok_cached_input: Number | None = Field(None, description="$ per 1M cached input tokens")
    tokens_per_s: Number | None = Field(None, description="Published output speed per stream")
    source: str = Field(description="Source key from the file's [sources] table")


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
    # host tiers reachable from one chip
    host_dram_gb_per_chip: Number | None = Field(None, description="Host DRAM per chip in a typical node, GB")
    host_dram_gbps_per_chip: Number | None = Field(None, description="Host DRAM bandwidth share per chip, GB/s")
    nvme_gb_per_chip: Number | None = Field(None, description="Local NVMe capacity per chip, GB")
    nvme_gbps_per_chip: Number | None = Field(None, description="Local NVMe read bandwidth per chip, GB/s")
    # power and price
    power_w: Number = Field(description="Board power (TDP/TBP), W")
    usd_per_hour: float = Field(gt=0, description="On-demand (or estimated) $ per chip-hour")
    price_kind: Literal["on-demand", "estimate"] = Field(description="Listed on-demand price, or an estimate")
    price_provider: str = Field(description="Who charges that price")
    price_date: str = Field(description="Date of the price (YYYY-MM or YYYY-MM-DD)")
    price_method: str | None = Field(None, description="How an estimated price was derived")
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
        for acc in self.accelerator:
            values = {name: getattr(acc, name) for name in SOURCED_FIELDS}
            check_sources(acc.id, values, acc.sources, self.sources)
            for api in acc.api_prices:
                if api.source not in self.sources:
                    raise ValueError(f"{acc.id}: api_prices source '{api.source}' is not in [sources]")
        return self


class TierPrice(Strict):
    usd_per_gb_hour: float = Field(gt=0, description="$ per GB-hour of capacity")
    source: str = Field(description="Source key")
    method: str = Field(description="How the figure was derived")


class CalibrationFamily(Strict):
    """Achieved fractions of peak for one hardware family, fitted to public measurements."""

    id: KebabId
    prefill_mfu: float = Field(gt=0, le=1, description="Achieved fraction of dense peak in prefill GEMMs")
    decode_mfu: float = Field(gt=0, le=1, description="Achieved fraction of dense peak in batched decode GEMMs")
    hbm_efficiency: float = Field(gt=0, le=1, description="Achieved fraction of memory bandwidth (weights)")
    attention_efficiency: float = Field(gt=0, le=1, description="Achieved fraction of bandwidth in decode attention")
    prefill_attention_mfu: float = Field(
        gt=0, le=1, description="Achieved fraction of the BF16 peak in fused (flash) prefill attention"
    )
    moe_efficiency: float = Field(
        gt=0, le=1, description="Efficiency of grouped expert GEMMs relative to dense GEMMs (MoE only)"
    )
    fp4_gemm_scale: float = Field(
        1.0, gt=0, le=1, description="Extra efficiency factor when GEMMs run at the FP4 peak (Amdahl: "
        "activation quantisation and non-GEMM work do not speed up with FP4)"
    )
    step_overhead_ms: float = Field(ge=0, description="Fixed per-step launch/scheduling overhead, ms")
    collective_latency_us: float = Field(ge=0, description="Latency of one all-reduce hop, microseconds")
    calibrated_from: str = Field(description="Measurements the values were fitted to, or 'prior: ...'")


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


class CalibrationFile(Strict):
    family: list[CalibrationFamily]
