"""Array pytrees the cost model consumes and produces.

Every field is a scalar or an array; fields broadcast against each other, so one call can evaluate
a single configuration or a whole search grid (hardware on one axis, batch on another, ...).
NamedTuples are JAX pytrees, so these pass through `jit` and `vmap` unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

Array = jnp.ndarray


class Hw(NamedTuple):
    """One row per accelerator (per chip figures, SI units: bytes, bytes/s, FLOP/s, $)."""

    mem_bytes: Array  # HBM, or on-chip SRAM for SRAM-only chips
    mem_bw: Array  # bytes/s
    flops_bf16: Array  # dense FLOP/s
    flops_fp8: Array  # 0 where unsupported
    flops_int8: Array
    flops_fp4: Array
    link_bw: Array  # scale-up, bytes/s per direction
    domain: Array  # chips per scale-up domain
    scale_out_bw: Array  # between scale-up domains (the instance's NICs), bytes/s per direction per chip
    allreduce_latency_s: Array  # one small all-reduce (or message) over the scale-up link
    host_bw: Array  # chip <-> host link, bytes/s per direction
    dram_bytes: Array  # host DRAM per chip
    dram_bw: Array  # host DRAM bandwidth share per chip
    nvme_bytes: Array
    nvme_bw: Array
    usd_per_hour: Array
    power_usd_per_hour: Array  # owned hardware: energy $ per chip-hour at full power (0 when renting)
    sram_only: Array  # 1.0 for chips whose weights live in on-chip SRAM
    # calibrated efficiencies of the hardware family
    prefill_mfu: Array  # prefill GEMMs at the BF16 peak
    prefill_mfu_lowp: Array  # prefill GEMMs on quantised activations, fraction of their (FP8/INT8/FP4) peak
    decode_mfu: Array
    hbm_eff: Array
    attn_eff: Array  # decode attention, fraction of HBM bandwidth with a 16-bit KV cache
    attn_eff_lowp: Array  # same with a quantised (fp8/int8/int4) KV cache (dequantising kernels)
    attn_prefill_mfu: Array  # fused prefill attention, fraction of the BF16 peak
    attn_prefill_mfu_fp8: Array  # FP8 prefill attention (FP8 KV on FP8 chips), fraction of the BF16 peak
    moe_eff: Array  # grouped expert GEMMs relative to dense GEMMs (wide experts, full tiles)
    moe_quant_overhead: Array  # expert-GEMM time on 8-bit quantised activations (W8A8 FP8/INT8) that their
    # faster peak does not shorten (quantising routed tokens, block scales), per FLOP, in BF16-peak FLOP times
    moe_quant_overhead_fp4: Array  # the same for W4A4 FP4 experts (16-element block scales)
    expert_width_knee: Array  # expert width at which grouped GEMMs lose half their efficiency
    act_passes: Array  # 16-bit passes over (hidden + active FFN width) per token per layer (non-GEMM kernels)
    step_overhead_s: Array
    admission_steps: Array  # steps between admissions of new prompts while a batch runs (1: every step)
    first_token_steps: Array  # decode steps a first token waits for after its prefill (0: the prefill emits it)
    collective_latency_s: Array
    layer_latency_s: Array  # fixed kernel time per layer per forward pass (launches, minimum durations)
    moe_layer_latency_s: Array  # extra per MoE layer: router, top-k, permute, grouped GEMMs, combine
    quant_layer_latency_s: Array  # extra per layer when GEMMs quantise activations (FP8/INT8/FP4)
    host_s_per_req: Array  # host CPU time per running request per engine step
    link_eff: Array  # achieved fraction of the scale-up link in large all-reduces
    host_link_eff: Array  # achieved fraction of the host link in bulk KV copies


class Arch(NamedTuple):
    """Model architecture reduced to the numbers the physics needs (derived in `arch.py`)."""

    layers: Array
    hidden: Array
    heads: Array
    kv_heads: Array
    vocab: Array
    # parameter groups (counts, not bytes)
    params_embed: Array  # input embedding stored apart from the LM head (0 when tied)
    params_lm_head: Array  # output projection vocab x hidden (read every decode step)
    params_dense: Array  # non-expert weights in the blocks: attention, dense MLPs, norms, router, shared experts
    params_wider: Array  # those a mixed-precision checkpoint keeps wider (`arch.params_kept_wider`)
    params_expert: Array  # one routed expert (all MoE layers together, per expert)
    experts_routed: Array  # 0 for dense models
    experts_active: Array
    moe_layers: Array
    expert_width: Array  # routed expert FFN width (moe_intermediate_size); 0 for dense models
    ffn_width_active: Array  # FFN width a token passes through per layer, averaged over layers (k experts + shared)
    # attention by kind (see attention.py): three terms of layers caching the same kind of entries
    main_elems: Array  # full, sparse top-k or sequence-compressed layers
    main_ratio: Array
    main_span: Array
    main_reach: Array
    main_topk: Array
    main_idx_elems: Array
    main_idx_flops: Array
    main_flops_prefill: Array
    main_flops_decode: Array
    main_scores: Array
    local_elems: Array  # sliding-window or chunked local layers
    local_ratio: Array
    local_span: Array
    local_reach: Array
    local_topk: Array
    local_idx_elems: Array
    local_idx_flops: Array
    local_flops_prefill: Array
    local_flops_decode: Array
    local_scores: Array
    aux_elems: Array  # a second global kind (a second compression ratio, or full layers beside sparse ones)
    aux_ratio: Array
    aux_span: Array
    aux_reach: Array
    aux_topk: Array
    aux_idx_elems: Array
    aux_idx_flops: Array
    aux_flops_prefill: Array
    aux_flops_decode: Array
    aux_scores: Array
    state_elems: Array  # fixed per-sequence state of linear-attention / SSM layers
    state_flops: Array  # FLOPs per token of those layers' recurrence
    kv_shardable: Array  # 1 if KV splits across tensor-parallel ranks (GQA), 0 if replicated (MLA)


class Config(NamedTuple):
    """Serving configuration (one value per grid point)."""

    chips: Array  # chips of one instance (a model replica): pp x dp_attn x tp
    batch: Array
    weight_bytes: Array  # bytes per weight incl. quantisation scales
    gemm_flops_sel: Array  # index 0 bf16, 1 fp8, 2 int8, 3 fp4: which peak the GEMMs run at
    # the matrices a published checkpoint keeps wider (`Arch.params_wider`: a MoE's non-expert ones,
    # Kimi-K2.5's BF16 beside INT4 experts; a dense model's attention): as above where it does not
    dense_weight_bytes: Array
    dense_gemm_sel: Array
    # the LM head (output projection): 16-bit, unless the published checkpoint quantises it and its
    # weights are served (NVIDIA's Qwen3.6 NVFP4 exports: W4A16); its GEMM stays 16-bit either way
    head_weight_bytes: Array
    kv_bytes: Array  # bytes per cached element incl. scales
    dram_frac: Array  # share of active KV in host DRAM
    nvme_frac: Array  # share of active KV on NVMe
    spec_k: Array  # speculative lookahead (0 = off)
    prefix_cache: Array  # 1.0 = keep idle sessions' KV for the next turn
    flash: Array  # 1.0 = IO-aware attention, 0.0 = naive (materialised scores)
    # parallel layout of one instance (see layouts.py): chips = pp x dp_attn x tp
    tp: Array  # attention tensor-parallel ranks
    pp: Array  # pipeline stages
    ep: Array  # expert-parallel ranks of MoE layers (1 = experts tensor parallel over the stage)
    dp_attn: Array  # attention data-parallel groups per stage
    cp: Array  # decode context-parallel ranks (KV of one sequence sharded within the tp group)
    replicas: Array  # instances per system (data parallel inside the system's chip count)
    expert_imbalance: Array  # routing skew beyond uniform (1 = as balanced as uniform routing)


class Spec(NamedTuple):
    """Speculative-decoding parameters and the drafter's cost."""

    alpha_short: Array
    alpha_long: Array
    alpha_context: Array
    draft_params: Array  # weights a draft step streams in BF16 (draft model, EAGLE head); 0 for none
    draft_kv_elems: Array  # cached elements per token of the drafter (all its layers)
    draft_layers: Array
    mtp_cost_fraction: Array  # > 0: a head step costs this fraction of a target step (scenario override)
    # added with the speculative methods (speculative_methods.py); defaults keep the v1 behaviour
    curve_ctx: Array = 0.0  # [..., CURVE_POINTS] contexts (tokens) of the tabulated acceptance curve
    curve_alpha: Array = 0.0  # [..., CURVE_POINTS] per-token acceptance there (0 = no table: the exp form)
    draft_params_target: Array = 0.0  # drafter weights at the target's weight dtype (an MTP layer)
    draft_expert_params: Array = 0.0  # one routed expert of the drafter's MoE layer
    draft_experts: Array = 0.0  # routed experts of that layer (0 = dense drafter)
    draft_topk: Array = 0.0  # experts per token there
    draft_context: Array = 1e12  # context the drafter's KV holds (self-speculation: its compressed budget)
    self_draft: Array = 0.0  # 1 = the target drafts for itself (a target step at draft_context)
    host_draft_s: Array = 0.0  # host seconds per drafted token per request (n-gram / suffix matching)
    draft_head_params: Array = 0.0  # the target's LM head a drafter streams for its logits (an MTP module), at Config.head_weight_bytes


class Load(NamedTuple):
    """Workload, SLOs and prices of one scenario (scalars; arrays when sweeping a parameter)."""

    in_median: Array
    in_sigma: Array  # log-normal shape
    in_cap: Array
    in_mean: Array
    out_median: Array
    out_sigma: Array
    out_cap: Array
    out_mean: Array
    out_running: Array  # tokens a running sequence has generated, on average: E[out^2] / (2 E[out]) (lengths.py)
    arrival_rps: Array
    prefix_reuse: Array
    turns: Array
    think_time_s: Array
    util_max: Array
    hbm_fraction: Array
    ttft_slo_s: Array
    tpot_slo_s: Array
    hours_per_month: Array
    dram_usd_per_gb_hour: Array
    nvme_usd_per_gb_hour: Array
    # prefix-cache hit-rate curve replayed from a trace (planner/traces/curve.py). Fixed shape
    # [HIT_CURVE_POINTS] (tiers.py): a new trace or scenario never recompiles.
    hit_curve: Array  # share of the reusable prefix served, vs cache per session (pool of 16 sessions)
    hit_pool_exponent: Array  # capacity per session scales by (sessions / 16)^this (larger pools share better)
    session_s: Array  # mean session duration, s: sessions in flight = session arrivals x this (Little's law)
    route_random: Array  # 1.0 = requests spread at random over replicas, 0.0 = session-sticky routing
    idle_power_fraction: Array  # owned hardware: board power drawn when idle, fraction of full
    uncached_scv: Array = 0.0  # cs^2 of a hit turn's new tokens (0: a fixed share of its prompt; queueing.uncached_scv)

