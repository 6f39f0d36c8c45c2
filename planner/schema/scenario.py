"""Scenario schema: the model, the workload, the SLOs and the search space of one planning question.

Dotted paths into this schema (`workload.input_tokens.median`, `slo.tpot_p95_ms`, ...) are a public
contract: `planner solve --set KEY=VALUE` and other tools address fields by them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from planner.schema.common import KebabId, KvDtype, Strict, WeightDtype

MAX_TOKENS = 10_000_000  # no model serves a 10M-token context; larger numbers are typos


class ModelRef(Strict):
    id: KebabId = Field(description="Model catalog ID, e.g. 'llama-3.3-70b'")


class LengthDistribution(Strict):
    """Token lengths as a log-normal fitted to the median and p90 (p90 = median means fixed)."""

    median: int = Field(ge=1, le=MAX_TOKENS, description="Median length, tokens")
    p90: int | None = Field(None, ge=1, le=MAX_TOKENS, description="90th percentile, tokens")
    max: int | None = Field(None, ge=1, le=MAX_TOKENS, description="Hard cap (e.g. the context window), tokens")

    @model_validator(mode="after")
    def _ordered(self) -> LengthDistribution:
        if self.p90 is not None and self.p90 < self.median:
            raise ValueError("p90 must be >= median")
        if self.max is not None and self.max < self.median:
            raise ValueError("max must be >= median")
        return self


class Sessions(Strict):
    """Multi-turn agent sessions: each turn resends the conversation so far as a prefix."""

    turns: int = Field(1, ge=1, le=10_000, description="Turns (requests) per session")
    prefix_reuse: float = Field(
        0.0, ge=0, le=0.999, description="Fraction of a turn's prompt that is the previous turn's context"
    )
    think_time_s: float = Field(
        0.0, ge=0, le=86_400, description="Idle time between a reply and the next turn (tool calls, user)"
    )


class Workload(Strict):
    arrival_rate_rps: float = Field(gt=0, le=1e6, description="Requests per second across the fleet")
    input_tokens: LengthDistribution = Field(description="Prompt length distribution")
    output_tokens: LengthDistribution = Field(description="Generated length distribution")
    sessions: Sessions = Field(default_factory=Sessions, description="Agent-session structure")


class Slo(Strict):
    ttft_p95_s: float = Field(gt=0, le=3600, description="95th-percentile time to first token, s")
    tpot_p95_ms: float = Field(gt=0, le=60_000, description="95th-percentile time per output token, ms")


class Speculative(Strict):
    """Speculative decoding; per-token acceptance falls with context length.

    alpha(c) = acceptance_long + (acceptance_short - acceptance_long) * exp(-c / acceptance_context_tokens)
    """

    method: Literal["none", "draft", "mtp"] = Field("none", description="Drafter kind")
    draft_model: KebabId | None = Field(None, description="Catalog ID of the draft model (method = 'draft')")
    acceptance_short: float = Field(0.8, gt=0, lt=1, description="Per-token acceptance at short context")
    acceptance_long: float = Field(0.6, gt=0, lt=1, description="Acceptance as context grows without bound")
    acceptance_context_tokens: float = Field(
        32_768, gt=0, description="Context length over which acceptance decays (e-folding), tokens"
    )
    mtp_cost_fraction: float = Field(
        0.05, ge=0, le=1, description="Cost of one MTP/EAGLE head step as a fraction of a target step"
    )

    @model_validator(mode="after")
    def _draft(self) -> Speculative:
        if self.method == "draft" and self.draft_model is None:
            raise ValueError("method = 'draft' needs draft_model")
        if self.acceptance_long > self.acceptance_short:
            raise ValueError("acceptance_long must be <= acceptance_short (acceptance falls with context)")
        return self


class Serving(Strict):
    utilization_max: float = Field(0.8, gt=0, lt=1, description="Planned utilisation ceiling per instance")
    hbm_fraction: float = Field(0.9, gt=0, le=1, description="Share of device memory the engine may use")
    hours_per_month: float = Field(730.0, gt=0, le=744, description="Hours billed per month")


class Search(Strict):
    """The grid `planner solve` searches exhaustively. Unsupported combinations are masked."""

    hardware: Literal["all"] | list[KebabId] = Field("all", description="Hardware IDs, or 'all'")
    chips: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32, 64],
        description="Chips per replica to try (SRAM-only chips add the count they need)",
    )
    batch: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512],
        description="Concurrent sequences per replica",
    )
    weight_dtype: list[WeightDtype] = Field(default_factory=lambda: ["bf16", "fp8", "int4"])
    kv_dtype: list[KvDtype] = Field(default_factory=lambda: ["bf16", "fp8", "int8", "int4"])
    dram_fraction: list[float] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75], description="Share of active KV kept in host DRAM"
    )
    nvme_fraction: list[float] = Field(
        default_factory=lambda: [0.0, 0.25], description="Share of active KV kept on NVMe"
    )
    spec_k: list[int] = Field(default_factory=lambda: [0, 2, 4], description="Speculative lookahead (0 = off)")
    prefix_cache: list[bool] = Field(default_factory=lambda: [False, True], description="Prefix cache on/off")
    attention: list[Literal["flash", "naive"]] = Field(default_factory=lambda: ["flash", "naive"])

    @model_validator(mode="after")
    def _ranges(self) -> Search:
        for name, values, lo, hi in (
            ("chips", self.chips, 1, 4096),
            ("batch", self.batch, 1, 65_536),
            ("spec_k", self.spec_k, 0, 16),
        ):
            if not values:
                raise ValueError(f"{name} needs at least one value")
            if any(v < lo or v > hi for v in values):
                raise ValueError(f"{name} values must be in [{lo}, {hi}]")
        for name in ("dram_fraction", "nvme_fraction"):
            values = getattr(self, name)
            if not values or any(not 0 <= v <= 1 for v in values):
                raise ValueError(f"{name} needs values in [0, 1]")
        return self


class Scenario(Strict):
    name: str = Field(description="Short name shown in reports")
    description: str = Field("", description="What question this scenario asks")
    model: ModelRef
    workload: Workload
    slo: Slo
    speculative: Speculative = Field(default_factory=Speculative)
    serving: Serving = Field(default_factory=Serving)
    search: Search = Field(default_factory=Search)
