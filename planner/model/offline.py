"""Fixed-shape evaluation: what `planner eval` reports and the fidelity tests check.

A run serves requests of exactly `input` prompt and `output` generated tokens at a fixed batch
(continuous batching keeps `batch` sequences in flight). In steady state a cohort of `batch`
requests costs one batched prefill plus `output / E` decode steps at the mean context
input + output / 2 (step time is linear in context, so the mean is exact for the KV term).

Engine limits of offline benchmarks: `max_batch` caps the sequences in flight, `max_num_tokens`
caps the tokens of one forward pass (decode batch and prefill chunk), and a finite run of
`requests` never has more than that many in flight. `cached_tokens` of each prompt are reloaded
from a tier (0 HBM, 1 host DRAM, 2 NVMe) instead of recomputed.
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.memory import kv_capacity, kv_elems_per_seq, kv_share_per_chip, memory_per_chip
from planner.model.prefill import prefill_time
from planner.model.serving import prefill_budget, prefill_steps
from planner.model.speculative import speculative_step
from planner.model.tiers import reload_seconds_per_byte
from planner.model.types import Arch, Config, Hw, Spec

MAX_BATCH = 4096.0  # engine limit on sequences in flight (TRT-LLM/vLLM max_num_seqs order of magnitude)
GB = 1e9
TIER_HBM, TIER_DRAM, TIER_NVME = 0.0, 1.0, 2.0


def reload_seconds(a: Arch, hw: Hw, cfg: Config, cached, tier) -> jnp.ndarray:
    """Seconds to copy `cached` tokens of one sequence's KV into HBM from `tier`: HBM hits cost
    nothing; DRAM crosses the host link (DMA at `host_link_eff` of its peak), no faster than the
    host memory itself (GB200's 250 GB/s of LPDDR5X per GPU behind a 450 GB/s C2C link); NVMe is
    bounded by the drives. Every chip of the instance loads its share in parallel. The rate per byte
    is the search's (`tiers.reload_seconds_per_byte`), with the whole prefix in one tier."""
    kv_chip = kv_elems_per_seq(a, cached) * cfg.kv_bytes * kv_share_per_chip(a, hw, cfg)
    in_hbm = jnp.where(tier <= TIER_HBM, 1.0, 0.0)
    in_nvme = jnp.where(tier >= TIER_NVME, 1.0, 0.0)
    per_byte = reload_seconds_per_byte(in_hbm, 1.0 - in_hbm - in_nvme, in_nvme, hw.host_bw, hw.host_link_eff,
                                       hw.dram_bw, hw.nvme_bw)
    return kv_chip * per_byte


def evaluate_offline(a: Arch, hw: Hw, cfg: Config, spec: Spec, input_tokens, output_tokens,
                     hbm_fraction, draft_weight_bytes=0.0, cached_tokens=0.0, cache_tier=0.0,
                     max_batch=jnp.inf, max_num_tokens=jnp.inf, requests=jnp.inf):
    """Metrics for one fixed request shape. `cfg.batch <= 0` means the largest batch that fits."""
    seq_len = input_tokens + output_tokens
    cap_instance, fit_batch = kv_capacity(a, hw, cfg, hbm_fraction, seq_len, draft_weight_bytes,
                                          spec.draft_kv_elems, spec.draft_context)
    limit = jnp.minimum(jnp.minimum(MAX_BATCH, max_batch), jnp.minimum(max_num_tokens, requests))
    batch_max = jnp.clip(fit_batch, 0.0, limit)
    batch = jnp.where(cfg.batch > 0, jnp.minimum(cfg.batch, requests), batch_max)
    run_batch = jnp.maximum(batch, 1.0)
    cfg = cfg._replace(batch=run_batch)

    mem = memory_per_chip(a, hw, cfg, seq_len, draft_weight_bytes, spec.draft_kv_elems, spec.draft_context)
    used = mem["weights"] + mem["kv_hbm"] + mem["activations"] + mem["attn_scores"]
    fits = (used <= hw.mem_bytes * hbm_fraction) & (batch >= 1.0)

    cached = jnp.clip(cached_tokens, 0.0, jnp.maximum(input_tokens - 1.0, 0.0))  # the last token is recomputed
    new = input_tokens - cached
    reload = reload_seconds(a, hw, cfg, cached, cache_tier)
    chunk = jnp.where(jnp.isfinite(max_num_tokens), max_num_tokens, 0.0)
    chunk_arg = jnp.where(chunk > 0, chunk, jnp.inf)
    ttft = prefill_time(a, hw, cfg, new, cached, chunk_tokens=chunk_arg) + reload
    # joining a running batch, the prompt's chunks ride in that many steps of its decode
    prompt_budget = prefill_budget(a, hw, cfg, chunk_arg)
    t_prefill_cohort = prefill_time(a, hw, cfg, new, cached, seqs=run_batch, chunk_tokens=chunk_arg) + run_batch * reload
    mean_ctx = input_tokens + output_tokens / 2.0
    step, per_step = speculative_step(a, hw, cfg, spec, run_batch, mean_ctx)
    t_decode_cohort = output_tokens / per_step * step
    throughput = run_batch * output_tokens / (t_prefill_cohort + t_decode_cohort)
    cost = cfg.chips * hw.usd_per_hour
    return {
        "ttft_s": ttft,
        "tpot_s": step / per_step,
        "prefill_tok_s": run_batch * input_tokens / t_prefill_cohort,
        "decode_tok_s": run_batch * per_step / step,
        "throughput_tok_s": throughput,
        "batch": batch,
        "slots": batch_max,
        "kv_capacity_tokens": cap_instance,
        "memory_gb_per_chip": used / GB,
        "weights_gb_per_chip": mem["weights"] / GB,
        "kv_gb_per_chip": mem["kv_hbm"] / GB,
        "fits": fits,
        "cost_per_hour": cost,
        "usd_per_mtok_output": cost / (throughput * 3600.0) * 1e6,
        "tokens_per_step": per_step,
        "step_s": step,
        "prefill_cohort_s": t_prefill_cohort,
        "prompt_steps": prefill_steps(new, prompt_budget),
        "prompt_queue_steps": new / prompt_budget,
    }
