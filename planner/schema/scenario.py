"""Scenario schema: the model, the workload, the SLOs and the search space of one planning question.

Dotted paths into this schema (`workload.input_tokens.median`, `slo.tpot_p95_ms`, ...) are a public
contract: `planner solve --set KEY=VALUE` and other tools address fields by them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from planner.schema.common import KebabId, KvDtype, Strict, WeightDtype, _kebab

MAX_TOKENS = 10_000_000  # no model serves a 10M-token context; larger numbers are typos
MIN_RATE_RPS = 1e-6  # one request every 11.6 days: anything rarer is a typo (and below float32's comfort)


def at_least(value: float, lowest: float, what: str) -> float:
    """Reject positive values too small to mean anything (and to survive float32 arithmetic)."""
    if value < lowest:
        raise ValueError(f"must be at least {lowest:g} {what}".rstrip())
    return value


def _model_ref(value: str) -> str:
    if value.endswith(".json"):
        return value
    return _kebab(value)


class ModelRef(Strict):
    id: Annotated[str, AfterValidator(_model_ref)] = Field(
        description="Model catalog ID, e.g. 'llama-3.3-70b', or a path to a Hugging Face config.json "
                    "(relative to the scenario)")


MAX_CHIP_HOUR_USD = 100_000
"""The most a chip-hour may cost in a price the user sets (`--price`, `[prices]`): beyond is a typo."""


class PriceOverride(Strict):
    usd_per_hour: float = Field(gt=0, le=MAX_CHIP_HOUR_USD, description="$ per chip-hour")
    kind: Literal["reserved", "spot", "user"] = Field("user", description="What kind of price this is")


class LengthDistribution(Strict):
    """Token lengths as a log-normal fitted to the median and either the p90 or the mean (neither
    means every length is the median). The mean is what billing data gives (tokens / requests), and
    work, slot occupancy and $/Mtok follow it; the p90 pins the tail that TTFT p95 and memory read."""

    median: int = Field(ge=1, le=MAX_TOKENS, description="Median length, tokens")
    p90: int | None = Field(None, ge=1, le=MAX_TOKENS, description="90th percentile, tokens (or give mean)")
    mean: float | None = Field(None, ge=1, le=MAX_TOKENS, description="Mean length, tokens, of the lengths as served "
                               "(capped at max and the context window); instead of p90")
    max: int | None = Field(None, ge=1, le=MAX_TOKENS, description="Hard cap (e.g. the context window), tokens")

    @field_validator("mean")
    @classmethod
    def _mean_above_median(cls, mean: float | None, info: ValidationInfo) -> float | None:
        median = info.data.get("median")
        if mean is not None and median is not None and mean < median:
            raise ValueError(f"mean must be >= median {median:,} (a log-normal's mean is at least its median)")
        return mean

    @model_validator(mode="after")
    def _ordered(self) -> LengthDistribution:
        if self.p90 is not None and self.mean is not None:
            raise ValueError("give p90 or mean, not both (a log-normal has one shape to fit)")
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
        0.0, ge=0, le=86_400, description="Mean idle time between a reply and the session's next turn (tool "
        "calls, the user); `planner simulate` draws think times around it with the spread of real agent "
        "sessions (the Claude Code trace: median 0.068 x the mean, a few pauses of hours)"
    )
    uncached_scv: float | None = Field(
        None, ge=0, le=10_000, description="Squared coefficient of variation of a turn's uncached (new) prompt "
        "tokens with a cache that holds every reusable prefix. Unset: new tokens are taken as (1 - prefix_reuse) "
        "of the prompt (their spread is the prompt's). Agent turns add very uneven amounts (a tool result, a new "
        "file): `planner trace stats` measures it over a session's later turns (23.0 on the bundled Claude Code "
        "trace); a trace sets it itself"
    )
    routing: Literal["sticky", "random"] = Field(
        "sticky", description="How requests reach replicas: 'sticky' keeps a session on one replica (its "
        "prefix cache), 'random' spreads them (a turn finds its context only where the last one ran)"
    )


class Workload(Strict):
    arrival_rate_rps: float = Field(gt=0, le=1e6, description="Requests per second across the fleet")
    input_tokens: LengthDistribution = Field(description="Prompt length distribution")
    output_tokens: LengthDistribution = Field(description="Generated length distribution")
    sessions: Sessions = Field(default_factory=Sessions, description="Agent-session structure")
    trace: str | None = Field(
        None, description="Request trace (JSON lines of Mooncake rows or Weka sessions, .gz allowed), relative to "
        "the scenario file: its lengths, session shape and replayed prefix-cache curve replace the fields above"
    )

    @field_validator("arrival_rate_rps")
    @classmethod
    def _rate(cls, value: float) -> float:
        return at_least(value, MIN_RATE_RPS, "requests/s (one request every 11.6 days)")


class Slo(Strict):
    ttft_p95_s: float = Field(gt=0, le=3600, description="95th-percentile time to first token, s")
    tpot_p95_ms: float = Field(gt=0, le=60_000, description="95th-percentile time per output token, ms")

    @field_validator("ttft_p95_s")
    @classmethod
    def _ttft(cls, value: float) -> float:
        return at_least(value, 1e-6, "s")

    @field_validator("tpot_p95_ms")
    @classmethod
    def _tpot(cls, value: float) -> float:
        return at_least(value, 1e-3, "ms")


SpecMethod = Literal["draft", "eagle3", "mtp", "self", "ngram", "suffix"]
SPEC_METHODS: tuple[str, ...] = ("draft", "eagle3", "mtp", "self", "ngram", "suffix")


class Speculative(Strict):
    """Speculative decoding: the drafter, and per-token acceptance as a function of context.

    Each method has a default acceptance-vs-context curve from published measurements
    (planner/data/speculative.toml); `curves` picks other published curves by name. Setting the three
    `acceptance_*` values replaces the curve of `method` (other searched methods keep theirs) by
    alpha(c) = acceptance_long + (acceptance_short - acceptance_long) * exp(-c / acceptance_context_tokens).
    """

    method: Literal["none", "draft", "eagle3", "mtp", "self", "ngram", "suffix"] = Field(
        "none", description="Drafter: draft (a smaller model), eagle3 (an EAGLE-3 head), mtp (the model's own "
        "multi-token-prediction heads), self (the model with a compressed KV cache), ngram / suffix (drafting "
        "from the context on the host), none")
    draft_model: KebabId | None = Field(None, description="Catalog ID of the draft model (method = 'draft')")
    curves: list[str] = Field(default_factory=list, description="Published acceptance curves to use instead of the "
                              "methods' defaults, by name from planner/data/speculative.toml, one per method (e.g. "
                              "'eagle3-long' for an EAGLE-3 head trained on long contexts, 'suffix-chat' for chat traffic)")
    acceptance_short: float | None = Field(None, gt=0, lt=1, description="Per-token acceptance at short context "
                                           "(set all three acceptance values to replace the method's curve)")
    acceptance_long: float | None = Field(None, gt=0, lt=1, description="Acceptance as context grows without bound")
    acceptance_context_tokens: float | None = Field(
        None, gt=0, le=1e9, description="Context length over which acceptance decays (e-folding), tokens"
    )
    mtp_cost_fraction: float | None = Field(
        None, ge=0, le=1, description="Cost of one MTP/EAGLE head step as a fraction of a target step (None: from "
        "the head's own weights and KV)"
    )
    host_draft_us: float | None = Field(
        None, ge=0, le=1e5, description="Host time to draft one token for one request (ngram/suffix matching), "
        "microseconds; None: not counted (no published measurement)")

    @field_validator("acceptance_short", "acceptance_long")
    @classmethod
    def _acceptance(cls, value: float | None) -> float | None:
        # 1 - 1e-12 is < 1 here but exactly 1 in float32, where the geometric series divides by 0.
        if value is not None and not 1e-3 <= value <= 0.999:
            raise ValueError("must be in [0.001, 0.999]")
        return value

    @field_validator("acceptance_context_tokens")
    @classmethod
    def _decay(cls, value: float | None) -> float | None:
        return value if value is None else at_least(value, 1.0, "token")

    @property
    def custom_curve(self) -> bool:
        """True when the scenario gives its own acceptance curve (all three values)."""
        return self.acceptance_short is not None

    @model_validator(mode="after")
    def _draft(self) -> Speculative:
        if self.method == "draft" and self.draft_model is None:
            raise ValueError("method = 'draft' needs draft_model")
        given = [n for n in ("acceptance_short", "acceptance_long", "acceptance_context_tokens")
                 if getattr(self, n) is not None]
        if given and len(given) < 3:
            missing = [n for n in ("acceptance_short", "acceptance_long", "acceptance_context_tokens")
                       if n not in given]
            raise ValueError(f"{', '.join(given)} given without {', '.join(missing)}: set all three to replace the "
                             "method's default acceptance curve, or none")
        if given and self.acceptance_long > self.acceptance_short:
            raise ValueError("acceptance_long must be <= acceptance_short (acceptance falls with context)")
        return self


class Serving(Strict):
    utilization_max: float = Field(0.8, gt=0, lt=1, description="Planned utilisation ceiling per instance")
    hbm_fraction: float = Field(0.9, gt=0, le=1, description="Share of device memory the engine may use")
    hours_per_month: float = Field(730.0, gt=0, le=744, description="Hours billed per month")
    expert_imbalance: float = Field(
        1.0, ge=1, le=16, description="Expert-parallel routing skew: tokens the busiest expert rank receives "
        "relative to uniform routing (the planner already adds uniform routing's own statistical spread). "
        "1 = as balanced as uniform routing, what redundant-expert load balancing (EPLB) aims for: DeepSeek-V3 "
        "technical report, arXiv 2412.19437, section 3.4 ('each GPU processes approximately the same number "
        "of tokens'). Raise it for a router known to be skewed")
    kv_transfer: Literal["layerwise", "after-prefill"] = Field(
        "layerwise", description="Disaggregated serving: how prompt KV moves from the prefill to the decode pool. "
        "layerwise: each layer's KV is sent as soon as that layer is computed, overlapping the rest of prefill "
        "(Mooncake, Qin et al., FAST 2025; Splitwise, Patel et al., ISCA 2024); after-prefill: sent once prefill "
        "ends (DistServe, Zhong et al., OSDI 2024), so all of it adds to TTFT")

    @field_validator("utilization_max", "hbm_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        return at_least(value, 0.01, "")

    @field_validator("hours_per_month")
    @classmethod
    def _hours(cls, value: float) -> float:
        return at_least(value, 1.0, "hour")


class Quality(Strict):
    """Lowest precisions the operator accepts. The planner does not model accuracy, so these are a
    policy; plans that still use 4-bit formats are flagged next to their bill."""

    weight_dtype_min: WeightDtype = Field(
        "int4", description="Lowest acceptable weight precision (bits: bf16 16, fp8/int8 8, int4/fp4 4)")
    kv_dtype_min: KvDtype = Field("int4", description="Lowest acceptable KV-cache precision")
    kv_4bit_long_context: bool = Field(
        False, description="Accept 4-bit KV when the median prompt reaches long_context_tokens")
    long_context_tokens: int = Field(
        32_768, ge=1, le=MAX_TOKENS, description="Median prompt length from which the context counts as long, tokens")


class Cost(Strict):
    """How the fleet is paid for. Renting uses the catalog's $/chip-hour; owning amortises the
    catalog's capex and pays energy at the plan's load. Defaults follow the TCO assumptions quoted
    by aiinframap.com ('H100 vs H200 vs B200 TCO', mid-2026: PUE 1.2, $0.08/kWh) and this catalog's
    est-tco convention (4 years); the idle draw and the host/network share are assumptions."""

    mode: Literal["rent", "own"] = Field("rent", description="rent: catalog $/chip-hour; own: capex + energy")
    amortisation_years: float = Field(4.0, gt=0, le=30, description="Years over which capex is spread")
    pue: float = Field(1.2, ge=1, le=5, description="Power usage effectiveness of the facility")
    usd_per_kwh: float = Field(0.08, ge=0, le=10, description="Electricity price, $ per kWh")
    idle_power_fraction: float = Field(
        0.3, ge=0, le=1, description="Board power drawn by an allocated but idle chip, fraction of power_w (assumption)")
    host_network_fraction: float = Field(
        0.3, ge=0, le=10,
        description="Host servers and network as a fraction of chip capex (assumption; 0 where the catalog price is a whole system)")


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
    spec_method: list[SpecMethod] = Field(
        default_factory=list, description="Further speculative methods the search may choose between (each with "
        "its default curve); speculative.method is always searched. Methods the model cannot use are left out "
        "with a note")
    prefix_cache: list[bool] = Field(default_factory=lambda: [False, True], description="Prefix cache on/off")
    attention: list[Literal["flash", "naive"]] = Field(
        default_factory=lambda: ["flash"],
        description="Attention kernels: flash (IO-aware, what vLLM, SGLang and TensorRT-LLM run) and/or naive "
        "(materialised scores). Naive only adds score traffic and memory, so it never meets the SLOs at a lower "
        "bill than flash (tests/test_model_properties.py) and is searched only when listed; `planner whatif` "
        "prices it (naive-attention)")
    risk: Literal["central", "p90"] = Field(
        "central", description="Plan on the central prediction, or on the pessimistic edge of each hardware "
        "family's uncertainty band (every time x the family's p90 of measured/predicted; planner/data/uncertainty.toml)")
    parallelism: list[Literal["tp", "pp", "ep", "dp_attention", "cp", "replicas"]] = Field(
        default_factory=lambda: ["tp", "pp", "ep", "dp_attention", "cp", "replicas"],
        description="Parallelism kinds the layouts may use (tensor, pipeline, expert, attention data-parallel, "
        "decode context parallel, replicas inside a system); a layout using any other kind is not searched",
    )
    serving_mode: list[Literal["aggregated", "disaggregated"]] = Field(
        default_factory=lambda: ["aggregated", "disaggregated"],
        description="Serving modes searched: aggregated (prefill and decode share every replica) and/or "
        "disaggregated (a prefill pool and a decode pool, each sized for its own SLO, KV shipped between them)")
    mix_hardware: bool = Field(
        True, description="Disaggregated plans may run the prefill and decode pools on different accelerators "
        "(of one vendor unless mix_vendors)")
    mix_vendors: bool = Field(
        False, description="With mix_hardware, the two pools may also run on different vendors' accelerators (e.g. "
        "Gaudi prefill, NVIDIA decode). Off: the pools hand KV over through one engine's PD connector (NIXL, "
        "Mooncake, LMCache) and an engine build runs on one vendor's platform, so the planner knows of no way to "
        "serve such a pair")

    @field_validator("hardware")
    @classmethod
    def _some_hardware(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("needs at least one hardware ID, or \"all\"")
        return value

    @field_validator("weight_dtype", "kv_dtype", "prefix_cache", "attention", "parallelism", "serving_mode")
    @classmethod
    def _not_empty(cls, value: list) -> list:
        if not value:
            raise ValueError("needs at least one value")
        return value

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
        if not any(d + n <= 1.0 for d in self.dram_fraction for n in self.nvme_fraction):
            raise ValueError(
                f"no KV tier split to search: every dram_fraction + nvme_fraction exceeds 1 "
                f"(dram_fraction {self.dram_fraction}, nvme_fraction {self.nvme_fraction}); include 0.0 in either")
        return self


class Scenario(Strict):
    name: str = Field(description="Short name shown in reports")
    description: str = Field("", description="What question this scenario asks")
    catalog: list[str] = Field(default_factory=list, description="User catalog files or folders ([[model]] and/or "
                               "[[accelerator]] tables) to add or override entries, relative to the scenario")
    prices: dict[str, float | PriceOverride] = Field(
        default_factory=dict, description="$ per chip-hour by hardware ID (e.g. h100-sxm = 1.90, or a table with "
                                          "usd_per_hour and kind = 'reserved' or 'spot')")
    model: ModelRef
    workload: Workload
    slo: Slo

    speculative: Speculative = Field(default_factory=Speculative)
    serving: Serving = Field(default_factory=Serving)
    quality: Quality = Field(default_factory=Quality)
    cost: Cost = Field(default_factory=Cost)
    search: Search = Field(default_factory=Search)

    @field_validator("prices", mode="before")
    @classmethod
    def _plain_prices(cls, prices: object) -> object:
        """A plain price is a number of $ per chip-hour in (0, MAX_CHIP_HOUR_USD], as `--price` and a price table's
        usd_per_hour take it: not a string, a boolean, zero, a negative or NaN (each gave a plan)."""
        if isinstance(prices, dict):
            for hw, value in prices.items():
                if isinstance(value, dict):
                    continue
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not number or not 0 < value <= MAX_CHIP_HOUR_USD:  # NaN fails the comparison
                    raise ValueError(f"{hw}: {value!r} is not a price; give $ per chip-hour in (0, {MAX_CHIP_HOUR_USD}] "
                                     f"(e.g. {hw} = 2.5, or {{ usd_per_hour = 2.5, kind = \"reserved\" }})")
        return prices
