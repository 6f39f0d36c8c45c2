"""Fixed-shape evaluation: what `planner eval` reports and the fidelity tests check.

A run serves requests of exactly `input` prompt and `output` generated tokens at a fixed batch
(continuous batching keeps `batch` sequences in flight). In steady state a cohort of `batch`
requests costs one batched prefill plus `output / E` decode steps at the mean context
input + output / 2 (step time is linear in context, so the mean is exact for the KV term).
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.memory import kv_capacity, memory_per_chip
from planner.model.prefill import prefill_time
from planner.model.speculative import speculative_step
from planner.model.types import Arch, Config, Hw, Spec

MAX_BATCH = 4096.0  # engine limit on sequences in flight (TRT-LLM/vLLM max_num_seqs order of magnitude)
GB = 1e9


def evaluate_offline(a: Arch, hw: Hw, cfg: Config, spec: Spec, input_tokens, output_tokens,
                     hbm_fraction, draft_weight_bytes=0.0):
    """Metrics for one fixed request shape. `cfg.batch <= 0` means the largest batch that fits."""
    seq_len = input_tokens + output_tokens
    cap_instance, fit_batch = kv_capacity(a, hw, cfg, hbm_fraction, seq_len, draft_weight_bytes,
                                          spec.draft_kv_elems)
    batch_max = jnp.clip(fit_batch, 0.0, MAX_BATCH)
    batch = jnp.where(cfg.batch > 0, cfg.batch, batch_max)
    run_batch = jnp.maximum(batch, 1.0)
    cfg = cfg._replace(batch=run_batch)

    mem = memory_per_chip(a, hw, cfg, seq_len, draft_weight_bytes, spec.draft_kv_elems)
    used = mem["weights"] + mem["kv_hbm"] + mem["activations"] + mem["attn_scores"]
    fits = (used <= hw.mem_bytes * hbm_fraction) & (batch >= 1.0)

    ttft = prefill_time(a, hw, cfg, input_tokens, 0.0)
    t_prefill_cohort = prefill_time(a, hw, cfg, input_tokens, 0.0, seqs=run_batch)
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
        "kv_capacity_tokens": cap_instance,
        "memory_gb_per_chip": used / GB,
        "weights_gb_per_chip": mem["weights"] / GB,
        "kv_gb_per_chip": mem["kv_hbm"] / GB,
        "fits": fits,
        "cost_per_hour": cost,
        "usd_per_mtok_output": cost / (throughput * 3600.0) * 1e6,
        "tokens_per_step": per_step,
        "step_s": step,
    }
