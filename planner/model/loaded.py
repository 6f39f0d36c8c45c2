"""One `planner eval` case: the offline evaluation, and latency under a Poisson load when given.

Under load (`arrival_rps` per replica > 0) the same serving model as `planner solve` applies:
prefill is one server per replica (M/M/1: mean wait rho S / (1 - rho), q-quantile from
`wait_quantile`); a new request joins at the scheduler's next admission (every step on most
engines: half a step on average, a whole one at the tail; every N steps where the family's engines
admit every N, `Hw.admission_steps`) and its prefill runs in chunks inside the next mixed steps (one
per per-step prefill budget: the chunk less the batch's decode tokens, as serving.py has it), the
last of which emits the first token with the whole batch's decode; the prefill queue's server is
held for those steps' decode too; decode pauses while prefills run, so TPOT = step / E_tokens /
(1 - rho). `batch` is then the mean number of requests in flight; with `batch = "max"` it follows
from the load instead (Little's law, arrival x slot holding time, at most the slots that fit), and
the decode step is priced at it. A fixed batch above one without a
load is a closed-loop benchmark at that concurrency: a new request joins a running batch, so its
TTFT also includes the step residual and the chunked mixed steps. A closed-loop run
of a finite number of `requests` (a benchmark client with a concurrency limit and every request
ready at the start, as `vllm bench serve --max-concurrency` runs) starts with a wave: its first
`batch` requests arrive together and their prefills queue one behind another (FCFS), so the i-th
waits (i - 1) prefills; later requests arrive one at a time as earlier ones finish (the wave's
stagger persists). Averaged over the run this adds batch / requests x (batch - 1) / 2 prefills.
Under load a request also needs a decode slot: the engine runs at most as many sequences as fit
in HBM (and `max_batch`, its max_num_seqs), and one arriving while all are taken waits for one to
free (vLLM keeps it in its waiting queue; it holds no KV until admitted). Slots are M/M/c servers
(`slot_wait`): with 100k-token prompts an instance may hold a handful of sequences, and that wait,
not the prefill queue, is what TTFT shows as the load nears capacity.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from planner.model.offline import evaluate_offline
from planner.model.queueing import erlang_c, tpot_tail_sd, wait_quantile
from planner.model.serving import first_token_delay
from planner.model.speculative import speculative_step
from planner.model.types import Arch, Config, Hw, Spec

Q_TAIL = 0.99
Z99 = 2.3263478740408408  # the standard normal's 0.99 quantile
RUNNING_BATCH_ROUNDS = 8
"""Fixed-point rounds for the running batch under a load with `batch = "max"`: each prices the step
at the sequences the previous one kept in flight; starting from the full batch they fall toward the
fixed point (a shorter step holds a slot for less time). Eight leave 0.3 % of TPOT to go where three
left 14 % (Llama 3.1 8B, 2k/2k prompts at 3 requests/s on one H100: batch 61 of 255 slots). A
`fori_loop`: unrolled, twenty rounds took three minutes to compile."""


def latency_under_load(prefill_s, step_s, tokens_per_step, arrival_rps, prompt_steps=1.0, queue_steps=0.0,
                       admission_steps=1.0, output_tokens=None):
    """(mean TTFT, p99 TTFT, mean TPOT, p99 TPOT, prefill utilisation) at `arrival_rps` per replica.

    As in serving.py: the prefill queue's server is held for the prefill and for the decode of the
    steps its chunks ride in (`queue_steps` = prompt tokens / per-step budget); the request meets
    the residual of the scheduler's admission interval (`admission_steps` steps), then its
    `prompt_steps` chunked steps, the last emitting its token. A request's TPOT varies with the
    prefills that land in its decode (`queueing.tpot_tail_sd`, prompts of one length: no prefill-time
    spread); its p99 is the mean plus Z99 of that spread over its `output_tokens` (the mean when not
    given: it was always the mean before)."""
    rho = arrival_rps * prefill_s
    s_queue = prefill_s + queue_steps * step_s
    rho_q = arrival_rps * s_queue
    rho_c = jnp.clip(rho, 0.0, 0.999999)
    rho_qc = jnp.clip(rho_q, 0.0, 0.999999)
    saturated = rho_q >= 1.0
    wait_mean = jnp.where(saturated, jnp.inf, rho_qc / (1.0 - rho_qc) * s_queue)
    wait_tail = wait_quantile(rho_q, s_queue, Q_TAIL)
    ttft_mean = wait_mean + prefill_s + (0.5 * admission_steps + prompt_steps) * step_s
    ttft_tail = wait_tail + prefill_s + (Q_TAIL * admission_steps + prompt_steps) * step_s
    stall = jnp.where(rho >= 1.0, jnp.inf, 1.0 / (1.0 - rho_c))
    tpot = step_s / tokens_per_step * stall
    tpot_tail = tpot
    if output_tokens is not None:
        decode_steps = output_tokens / jnp.maximum(tokens_per_step, 1e-9)
        tpot_tail = tpot + Z99 * tpot_tail_sd(rho, tpot, prefill_s, 0.0, decode_steps)
    return ttft_mean, ttft_tail, tpot, tpot_tail, rho_q


def slot_wait(slots, hold_s, arrival_rps):
    """(mean, p99 wait for a decode slot, slot utilisation a / c) with c = `slots` sequences the
    engine can run and a = arrival_rps x hold_s offered load (a request holds its slot from
    admission through its last token). M/M/c: P(W > t) = C e^(-(c - a) t / hold), C from
    `erlang_c`; exponential holding times make the waits somewhat longer than fixed-length
    requests see (M/D/c waits about half as long in heavy traffic), the safe side for planning.
    Infinite once a >= c: the queue of waiting requests grows without bound."""
    c = jnp.maximum(jnp.floor(slots), 1.0)
    load = arrival_rps * hold_s
    wait_prob = erlang_c(c, load)
    spare = jnp.maximum(c - load, 1e-9)
    mean = wait_prob * hold_s / spare
    tail = hold_s / spare * jnp.log(jnp.maximum(wait_prob / (1.0 - Q_TAIL), 1.0))
    saturated = load >= c
    return jnp.where(saturated, jnp.inf, mean), jnp.where(saturated, jnp.inf, tail), load / c


def first_wave_wait(prefill_s, batch, requests):
    """Mean extra TTFT over a closed-loop run of `requests` at concurrency `batch` from its opening
    wave: n = min(batch, requests) requests arrive at once and wait (n - 1) / 2 prefills on average;
    the other requests arrive singly. 0 for an unbounded run."""
    n = jnp.minimum(batch, requests)
    share = jnp.where(jnp.isfinite(requests), n / jnp.maximum(requests, 1.0), 0.0)
    return share * jnp.maximum(n - 1.0, 0.0) / 2.0 * prefill_s


def evaluate_case(a: Arch, hw: Hw, cfg: Config, spec: Spec, input_tokens, output_tokens, hbm_fraction,
                  draft_weight_bytes, cached_tokens, cache_tier, max_batch, max_num_tokens, requests,
                  arrival_rps):
    out = evaluate_offline(a, hw, cfg, spec, input_tokens, output_tokens, hbm_fraction, draft_weight_bytes,
                           cached_tokens, cache_tier, max_batch, max_num_tokens, requests)
    # a closed-loop benchmark at a fixed concurrency above one (pinned, or with `batch = "max"` the
    # largest that fits): each new request joins a running batch, so it meets the same step residual
    # and mixed step as under an open load
    joined = (out["batch"] > 1.0) & (arrival_rps <= 0)
    wave = first_wave_wait(out["ttft_s"], out["batch"], requests)
    joined_ttft = out["ttft_s"] + (0.5 * hw.admission_steps + out["prompt_steps"]) * out["step_s"] + wave
    out["ttft_s"] = jnp.where(joined, joined_ttft, out["ttft_s"])
    loaded = arrival_rps > 0
    # `batch = "max"` under a load: the load, not the memory, sets how many sequences run (Little's
    # law: arrival x the time each holds a slot, at most the slots), and decode steps are priced at
    # that batch; from the full batch down, a few fixed-point rounds settle it
    load_sets_batch = loaded & (cfg.batch <= 0)
    mean_ctx = input_tokens + output_tokens / 2.0

    def under_load(step_s, per_step):
        """Latencies at this step, and how long a request holds its slot: from admission (its
        first prefill chunk) to its last token, not while it waits in the prefill queue."""
        lat = latency_under_load(out["ttft_s"], step_s, per_step, arrival_rps, out["prompt_steps"],
                                 out["prompt_queue_steps"], hw.admission_steps, output_tokens)
        hold = out["ttft_s"] + (0.5 + out["prompt_steps"]) * step_s + output_tokens * lat[2]
        return lat, hold

    def running_batch(hold):
        return jnp.where(load_sets_batch, jnp.clip(arrival_rps * hold, 1.0, jnp.maximum(out["slots"], 1.0)),
                         out["batch"])

    def settle(_, state):
        step_s, per_step = state
        running = running_batch(under_load(step_s, per_step)[1])
        step_r, per_step_r = speculative_step(a, hw, cfg._replace(batch=running), spec, running, mean_ctx)
        return (jnp.where(load_sets_batch, step_r, out["step_s"]),
                jnp.where(load_sets_batch, per_step_r, out["tokens_per_step"]))

    # the loop's carry keeps one shape: every row's step, as the running batch gives them
    start = tuple(jnp.broadcast_arrays(out["step_s"], out["tokens_per_step"], out["batch"])[:2])
    step_s, per_step = lax.fori_loop(0, RUNNING_BATCH_ROUNDS, settle, start)
    (ttft_mean, ttft_tail, tpot_mean, tpot_tail, rho), hold = under_load(step_s, per_step)
    slot_mean, slot_tail, slot_load = slot_wait(out["slots"], hold, arrival_rps)
    out["batch"] = running_batch(hold)
    out["step_s"], out["tokens_per_step"] = step_s, per_step
    out["ttft_s"] = jnp.where(loaded, ttft_mean + slot_mean, out["ttft_s"])
    out["tpot_s"] = jnp.where(loaded, tpot_mean, out["tpot_s"])
    out["ttft_p99_s"] = jnp.where(loaded, ttft_tail + slot_tail, out["ttft_s"])
    out["tpot_p99_s"] = jnp.where(loaded, tpot_tail, out["tpot_s"])
    out["prefill_utilisation"] = jnp.where(loaded, rho, 0.0)
    out["slot_utilisation"] = jnp.where(loaded, slot_load, 0.0)
    saturated = loaded & ((rho >= 1.0) | (slot_load >= 1.0))
    out["fits"] = out["fits"] & ~saturated
    # a saturated queue grows without bound: no latency to report (TTFT is already infinite)
    out["tpot_s"] = jnp.where(saturated, jnp.inf, out["tpot_s"])
    out["tpot_p99_s"] = jnp.where(saturated, jnp.inf, out["tpot_p99_s"])
    # below saturation a replica delivers what arrives, not its capacity (which it keeps when saturated)
    served = jnp.where(loaded & ~saturated, jnp.minimum(out["throughput_tok_s"], arrival_rps * output_tokens),
                       out["throughput_tok_s"])
    out["usd_per_mtok_output"] = out["cost_per_hour"] / (served * 3600.0) * 1e6
    out["throughput_tok_s"] = served
    delay = first_token_delay(hw, out["step_s"])
    out["ttft_s"], out["ttft_p99_s"] = out["ttft_s"] + delay, out["ttft_p99_s"] + delay
    return out
