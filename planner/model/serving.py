"""Online serving at a planned load: percentile TTFT/TPOT, replicas, bill and the binding constraint.

Per instance (one replica on `chips` chips, up to `batch` sequences in flight):
- capacity mu (requests/s) = 1 / (E[prefill service] + E[output] * step / (E_tokens * batch));
- the most load one instance may carry is the smallest of: util_max * mu; the load at which 5 % of
  requests wait for a decode slot (Erlang C); the prefill load whose p95 wait still fits the
  TTFT SLO; the one whose TPOT p95 still fits the TPOT SLO. Replicas = ceil(arrival / that load),
  so operators over-provision to meet latency and a configuration's feasibility never depends on
  the arrival rate (the bill is monotone in it);
- prefill queue, M/G/1: the server is held for the prefill and the decode of the chunked steps it
  rides in; its service varies with the uncached tokens (cs^2 of the hit/miss mixture of capped
  log-normal prompts), so the M/M/1 wait is scaled by (1 + cs^2) / 2 (Kingman);
  TTFT_q = wait_q + prefill(length quantile) + (q x N + chunks) decode steps (the residual of the
  scheduler's admission interval, N steps: 1 for engines that admit at every step; then the mixed
  steps the prompt's chunks ride in, the last emitting the token);
- TPOT_q = step(batch, context quantile) / E_tokens / (1 - rho_p) (decode shares steps with
  prefills) + z_q x the spread of that stall across requests (compound Poisson over a request's
  decode steps; queueing.tpot_tail_sd);
- prefix-cache hits (see tiers.py: a replayed hit-rate curve) shorten prefill to the uncached tokens
  plus a reload; the hit rate is read at the load an instance could take, the host memory billed is
  what the sessions routed to it at the planned load occupy (`sessions_held`).
All quantities broadcast, so one call evaluates the whole search grid.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from planner.model.memory import kv_elems_per_seq, kv_share_per_chip, memory_per_chip, prefill_chunk_tokens
from planner.model.prefill import prefill_time
from planner.model.queueing import (
    capped_lognormal_moments,
    kingman_service,
    lognormal_quantile,
    max_rate_for_slots,
    max_rho_for_tpot,
    max_rho_for_wait,
    mixture_log_quantile,
    normal_cdf_abs,
    slot_load_limit,
    tpot_tail_sd,
    uncached_scv,
    wait_quantile,
)
from planner.model.speculative import speculative_step
from planner.model.staging import computed_once, stacked, unstacked
from planner.model.tiers import reload_seconds_per_byte, tier_hits, tier_shares
from planner.model.types import Arch, Config, Hw, Load, Spec

Z95 = 1.6448536269514722
LONGEST_HELD = 0.999
"""Prompt and output length quantile an instance must hold alone. An engine cannot serve a request
whose KV does not fit even with nothing else running (vLLM refuses to start when one
max_model_len-long sequence does not fit; the simulator rejects such requests), so memory is
checked for it besides the batch at its mean context and one p95-long request. With the p95 alone,
reasoning's cheapest prefill pool (DeepSeek-V3 at int4 on 4 H100 NVL, under 1 GB of HBM left for
KV) was feasible on the screen and dropped 1.3 % of requests in simulation. Requests beyond this
quantile (one in a thousand) are left to the engine's max_model_len."""
LENGTH_NODES = 16
_LEGENDRE_X, _LEGENDRE_W = np.polynomial.legendre.leggauss(LENGTH_NODES)
LENGTH_X = tuple(float(x) for x in _LEGENDRE_X)  # Gauss-Legendre nodes on [-1, 1] ...
LENGTH_W = tuple(float(w) for w in _LEGENDRE_W)  # ... and weights (sum 2)
Z_FLOOR, Z_CEILING = -6.0, 8.0  # standard scores of log L the quadrature spans (below the cap)
HIT_STEPS = 128
# hit rates at which the TTFT length quantile is solved exactly; from numpy, because an eager
# `jnp.linspace` at import compiled an XLA program (~0.08 s of every cold solve's critical path)
HIT_TABLE = jnp.asarray(np.linspace(0.0, 1.0, HIT_STEPS + 1))
MIN_PREFILL_LOAD = 0.01
"""A configuration whose SLOs let an instance spend under 1 % of its time in prefill is no plan
(it would need ~100x mostly idle replicas); it is infeasible on 'utilisation'."""
GB = 1e9
BINDING = ("ttft", "tpot", "memory", "host-memory", "utilisation")  # order of the `ratios` stack below


def _hit_cells(hit):
    """(cell index, fraction) of each hit rate on the uniform HIT_TABLE: computed, not searched for
    (a binary search per configuration cost ~10 % of the whole search on CPU). NaN reads cell 0."""
    pos = jnp.clip(hit, 0.0, 1.0) * HIT_STEPS
    pos = jnp.where(pos >= 0.0, pos, 0.0)
    cell = jnp.minimum(jnp.floor(pos), HIT_STEPS - 1)
    return cell.astype(jnp.int32), pos - cell


def _read(table, cells):
    """Linear interpolation of a table tabulated on HIT_TABLE along its leading axis.

    `table` has shape (HIT_STEPS + 1,) + S, where S broadcasts against the configurations (it holds
    only the axes the tabulated quantity depends on); `cells` comes from `_hit_cells`. Each
    configuration reads its two neighbours from the flattened table (two gathers)."""
    cell, frac = cells
    rest = jnp.shape(table)[1:]
    n = 1
    for d in rest:
        n *= d
    flat = jnp.reshape(table, (-1,))
    idx = cell * n + jnp.reshape(jnp.arange(n, dtype=jnp.int32), rest)
    lo = flat[idx]
    return lo + frac * (flat[idx + n] - lo)


def _along_hit(values, ndim: int):
    """A HIT_TABLE-long vector as a leading axis in front of `ndim` configuration axes."""
    return jnp.reshape(values, (HIT_STEPS + 1,) + (1,) * ndim)


def _config_ndim(hw: Hw, cfg: Config) -> int:
    return max(jnp.ndim(x) for x in (*hw, *cfg))


def _length_quantile_table(ld, q):
    """(uncached tokens, cached tokens) of the q-quantile prefill at every hit rate of HIT_TABLE.

    Prefill time is driven by the uncached tokens U: U = L on a miss, (1 - r) L on a hit, so log U
    is a mixture of two log-normals with the same sigma, shifted by ln(1 - r). Its q-quantile u is
    solved by bisection on the mixture CDF; it depends on the configuration only through the hit
    rate, so it is solved on HIT_TABLE (scenario scalars). The cached tokens at u are the hit
    component's share of the density times u r / (1 - r). With r = 0 both components coincide."""
    keep = 1.0 - ld.prefix_reuse
    mu_miss = jnp.log(ld.in_median)
    mu_hit = mu_miss + jnp.log(keep)
    cap_miss = jnp.log(ld.in_cap)
    x = mixture_log_quantile(mu_hit, mu_miss, HIT_TABLE, ld.in_sigma, cap_miss + jnp.log(keep), cap_miss, q)
    s = jnp.maximum(ld.in_sigma, 1e-4)
    dens_hit = HIT_TABLE * jnp.exp(-0.5 * ((x - mu_hit) / s) ** 2)
    dens_miss = (1.0 - HIT_TABLE) * jnp.exp(-0.5 * ((x - mu_miss) / s) ** 2)
    hit_share = dens_hit / jnp.maximum(dens_hit + dens_miss, 1e-30)
    uncached = jnp.exp(x)
    return uncached, hit_share * uncached * ld.prefix_reuse / keep


PREFILL_QUANTILES = (0.5, 0.95)  # the TTFT service quantiles evaluate_serving reads


def length_quantile_tables(ld, qs=PREFILL_QUANTILES, reuses=None):
    """`_length_quantile_table` at each q of `qs` (default PREFILL_QUANTILES), with prefix reuse
    `reuses[i]` where given (else the scenario's): one bisection for all, stacked (a loop each made
    the compiled kernels bigger, not faster). They depend on the scenario alone, so a caller that
    evaluates block after block (the search's loop over layout slots) computes them once, outside
    its loop, and passes them to `evaluate_serving`: XLA does not move loop-invariant work out of
    the staged conditionals, and these bisections ran once per slot, 12 % of the search kernel's
    time on the default scenario (results bit-identical)."""
    n = len(qs)
    q = jnp.reshape(jnp.asarray(qs, dtype=jnp.float32), (n, 1))
    if reuses is not None:
        ld = ld._replace(prefix_reuse=jnp.reshape(jnp.stack([jnp.asarray(r, dtype=jnp.float32) for r in reuses]), (n, 1)))
    tables = [jnp.broadcast_to(x, (n, HIT_STEPS + 1)) for x in _length_quantile_table(ld, q)]
    return tuple((tables[0][i], tables[1][i]) for i in range(n))


def _prefill_quantile_table(a, hw, cfg, ld, q, lengths=None):
    """(prefill seconds, cached tokens, uncached tokens) of the q-quantile TTFT service at every hit
    rate of HIT_TABLE, without queueing or reload (lengths from `_length_quantile_table`, or
    `lengths` when the caller computed that already for this `ld` and `q`).

    Prefill time at those lengths depends on few configuration axes (hardware, layout, dtypes,
    attention kernel, not batch, tiers or speculation), so it is evaluated on the table at that
    reduced shape and interpolated per configuration (`_read`): the search's most expensive term,
    computed ~1,000x less often. Load fields are scalars here (one scenario per call)."""
    uncached, cached = _length_quantile_table(ld, q) if lengths is None else lengths
    (seconds,) = prefill_times(a, hw, cfg, (hit_axis_table((uncached, cached), _config_ndim(hw, cfg)),))
    return seconds, cached, uncached


def hit_axis_table(lengths, ndim: int):
    """A `_length_quantile_table` (uncached, cached) as `prefill_times` takes it: along HIT_TABLE, a
    leading axis in front of `ndim` configuration axes."""
    return tuple(_along_hit(x, ndim) for x in lengths)


def prefill_times(a, hw, cfg, tables):
    """`prefill_time` of each (uncached, cached) table in `tables` (a leading axis of its own in
    front of the configuration axes, where the prompt lengths vary): one evaluation of the prefill
    on the tables joined along that axis (`staging.stacked`). The TTFT quantiles and the mean prefill
    each read prefill at ~30-130 lengths; evaluated one table at a time, the prefill (~650 operations)
    was traced and compiled once per table."""
    sizes = [jnp.shape(new)[0] for new, _ in tables]
    new = jnp.concatenate([new for new, _ in tables])
    cached = jnp.concatenate([cached for _, cached in tables])
    seconds = computed_once(lambda: prefill_time(a, hw, cfg, new, cached), hw.mem_bw)
    seconds = jnp.broadcast_to(seconds, jnp.broadcast_shapes(jnp.shape(seconds), jnp.shape(new)))
    ends = np.cumsum(sizes)
    return tuple(seconds[end - size:end] for size, end in zip(sizes, ends, strict=True))


def first_token_delay(hw: Hw, step_s):
    """What a request's first token waits for after its prefill on an engine that streams it only
    after `Hw.first_token_steps` token-generation steps (0 on most engines: the prefill emits it).
    Written so that a zero count adds exactly 0 even where a step is infinite."""
    return jnp.where(hw.first_token_steps > 0, hw.first_token_steps * step_s, 0.0)


def prefill_steps(uncached, budget):
    """Engine steps a prompt of `uncached` tokens spans when each step gives prefill `budget` tokens
    (chunked prefill): each of them also carries the running batch's decode."""
    return jnp.maximum(jnp.ceil(uncached / budget), 1.0)


def prefill_budget(a, hw, cfg, chunk_tokens=jnp.inf):
    """Prompt tokens per engine step: the chunk (at most `chunk_tokens`, an engine's max_num_tokens)
    less the decode tokens the running batch scores in it (batch x (k + 1), as vLLM's
    max_num_batched_tokens counts them), never under 1/8 of the chunk."""
    chunk = jnp.minimum(prefill_chunk_tokens(a, hw, cfg), chunk_tokens)
    return jnp.maximum(chunk - cfg.batch * (cfg.spec_k + 1.0), chunk / 8.0)


def prompt_length_nodes(ld):
    """(lengths, weights) that average any function of the prompt length over the capped log-normal:
    LENGTH_NODES Gauss-Legendre points in the standard score of log L from Z_FLOOR up to the cap's
    score (weights: the normal density x the rule's weights), then the cap itself, which carries the
    probability P(L >= cap) that capping piles onto it. Splitting at the cap keeps the kink there
    out of the rule (a Gauss-Hermite rule over the uncapped log-normal was off by 4 % with the cap
    at +1.1 sigma). Weights sum to 1 within ~1e-6."""
    s = jnp.maximum(ld.in_sigma, 1e-4)
    mu = jnp.log(ld.in_median)
    z_cap = jnp.clip((jnp.log(ld.in_cap) - mu) / s, Z_FLOOR, Z_CEILING)
    half = (z_cap - Z_FLOOR) / 2.0
    z = Z_FLOOR + half * (jnp.asarray(LENGTH_X) + 1.0)
    weights = half * jnp.asarray(LENGTH_W) * jnp.exp(-0.5 * z * z) * 0.3989422804014327
    lengths = jnp.minimum(jnp.exp(mu + s * z), ld.in_cap)
    cap = jnp.reshape(ld.in_cap, (1,))
    beyond = jnp.reshape(normal_cdf_abs(-z_cap), (1,))  # P(L >= cap)
    return jnp.concatenate([lengths, cap]), jnp.concatenate([weights, beyond])


def mean_prefill(a, hw, cfg, ld, reuses):
    """Mean seconds to prefill a prompt whose first `r` of tokens is cached (reload not included),
    for each share r in `reuses` (0: a miss), over the capped log-normal prompt lengths. The mean
    prefill at hit rate h is h x E[prefill | hit] + (1 - h) x E[prefill | miss].

    Why not the prefill of the mean prompt: attention grows with L^2 and a miss costs ~1 / (1 -
    reuse) times a hit, so prefill is convex in the prompt and in the hit/miss mix. At the agentic
    default (median 104k tokens, sigma 0.63, 96 % reuse) the prefill of the mean blend is 13 % under
    the mean prefill, and the screen under-counted the prefill load by as much (the simulator, which
    draws every prompt, showed it). One prefill_time call at the reduced shape it has (hardware,
    layout, dtypes), LENGTH_NODES + 1 lengths per share (`prompt_length_nodes`)."""
    table, weights = mean_prefill_table(ld, reuses, _config_ndim(hw, cfg))
    (seconds,) = prefill_times(a, hw, cfg, (table,))
    return mean_prefill_of(seconds, weights)


def mean_prefill_table(ld, reuses, ndim: int):
    """((uncached, cached) tokens, weights) at which `mean_prefill` reads the prefill: the
    `prompt_length_nodes` of each share in `reuses`, along a leading axis in front of `ndim`
    configuration axes (`prefill_times` evaluates them with other tables)."""
    lengths, weights = prompt_length_nodes(ld)
    nodes = LENGTH_NODES + 1
    count = len(reuses)
    lead = (count * nodes,) + (1,) * ndim
    length = jnp.reshape(jnp.concatenate([lengths] * count), lead)
    share = jnp.reshape(jnp.stack([jnp.broadcast_to(jnp.asarray(r, dtype=lengths.dtype), (nodes,)) for r in reuses]), lead)
    cached = length * share
    return (length - cached, cached), jnp.reshape(weights, (nodes,) + (1,) * ndim)


def mean_prefill_of(seconds, weights):
    """`mean_prefill`'s means from the prefill seconds at `mean_prefill_table`'s lengths."""
    nodes = jnp.shape(weights)[0]
    seconds = jnp.reshape(seconds, (-1, nodes) + jnp.shape(seconds)[1:])
    return tuple(jnp.sum(weights * seconds[i], axis=0) for i in range(jnp.shape(seconds)[0]))


def _utilisation_ratio(headroom, rho_cap, load_ratio, latency_ratio):
    """The utilisation entry of `ratios`, in units that compare with the others (no sentinels).

    Without headroom the latencies are the zero-load ones (no number of replicas does better). If
    one of them misses its SLO, that latency is the true cause: utilisation reads 1, so the
    latency ratio (>= 1, listed first in BINDING) binds. If they fit but leave under
    MIN_PREFILL_LOAD of prefill load, utilisation binds at 1 + the missing load (1 < r <= 1.01)."""
    short = jnp.where(latency_ratio >= 1.0, 1.0, 1.0 + MIN_PREFILL_LOAD - jnp.clip(rho_cap, 0.0, MIN_PREFILL_LOAD))
    return jnp.where(headroom, load_ratio, short)


def sessions_held(ld: Load, replicas, pooled=0.0):
    """Sessions in flight whose context one of `replicas` instances keeps: those routed to it (sticky
    routing), every session (random routing: any may come back to any instance), or its share of a
    shared host pool (`pooled`)."""
    fleet = ld.arrival_rps * ld.session_s / ld.turns  # sessions in flight, all instances together
    own = jnp.where(ld.route_random > 0, fleet, fleet / replicas)
    return jnp.where(pooled > 0, fleet / replicas, own)


def monthly_floor(hw: Hw, cfg: Config, ld: Load):
    """The least monthly bill any configuration of a layout can have: one whole system (`cfg.replicas`
    instances of `cfg.chips` chips) drawing idle power, with no host memory billed. The bill of
    `evaluate_serving` is replicas x chips x ($/chip-hour + energy x draw + host tiers) x hours, with
    replicas >= cfg.replicas, draw >= the idle fraction and host tiers >= 0, so it is never below
    this: the search skips a layout whose floor is not below the best bill already found on its row."""
    return cfg.replicas * cfg.chips * (hw.usd_per_hour + hw.power_usd_per_hour * ld.idle_power_fraction) * ld.hours_per_month


def running_context(ld: Load):
    """Mean context of a running sequence: E[in] + the tokens it has generated (`Load.out_running`:
    the batch holds long replies in proportion to their length, lengths.running_output)."""
    return ld.in_mean + ld.out_running


def batch_context_quantile(ld: Load, batch, z):
    """The batch-mean context at standard score `z`: the mean of `batch` running requests' contexts
    concentrates as 1 / sqrt(B) around E[in] + the tokens a running sequence has generated
    (`Load.out_running`). Prompts are capped, so their spread is at most the Bhatia-Davis bound
    sqrt(m (cap - m)); the result never exceeds the longest prompt's context that far into a reply."""
    mean_ctx = running_context(ld)
    lognormal_sd = ld.in_mean * jnp.sqrt(jnp.maximum(jnp.expm1(jnp.minimum(ld.in_sigma**2, 80.0)), 0.0))
    in_sd = jnp.minimum(lognormal_sd, jnp.sqrt(jnp.maximum(ld.in_mean * (ld.in_cap - ld.in_mean), 0.0)))
    return jnp.minimum(mean_ctx + z * in_sd / jnp.sqrt(batch), ld.in_cap + ld.out_running)


def longest_held(ld: Load, output: bool = True):
    """Tokens of the longest request an instance must hold alone (`LONGEST_HELD`): its prompt, and
    with `output` its reply (a prefill instance holds the prompt only)."""
    prompt = lognormal_quantile(ld.in_median, ld.in_sigma, ld.in_cap, LONGEST_HELD)
    return prompt + lognormal_quantile(ld.out_median, ld.out_sigma, ld.out_cap, LONGEST_HELD) if output else prompt


def memory_and_decode(a: Arch, hw: Hw, cfg: Config, spec: Spec, ld: Load, draft_weight_bytes):
    """Memory per chip and the decode step at the batch-mean context's p50 and p95, the model's most
    expensive stage: an aggregated instance (`evaluate_serving`) and a disaggregated decode pool
    (`disagg.decode_pool`) share it, so the search computes it once for both (search._row_kernel)."""
    batch = cfg.batch
    mean_ctx = running_context(ld)
    in_p95 = lognormal_quantile(ld.in_median, ld.in_sigma, ld.in_cap, 0.95)
    out_p95 = lognormal_quantile(ld.out_median, ld.out_sigma, ld.out_cap, 0.95)
    # memory: batch sequences at the mean context plus headroom for one p95-long sequence, and at
    # least one LONGEST_HELD-long sequence alone
    reserve_ctx = jnp.maximum(mean_ctx + (in_p95 + out_p95) / batch, longest_held(ld) / batch)
    # stored once: XLA fused its chain into each reader (used, the ratio, the free HBM) and compiled it thrice
    mem = computed_once(lambda: memory_per_chip(a, hw, cfg, reserve_ctx, draft_weight_bytes, spec.draft_kv_elems,
                                                spec.draft_context), hw.mem_bw)
    hbm_cap = hw.mem_bytes * ld.hbm_fraction
    used = mem["weights"] + mem["kv_hbm"] + mem["activations"] + mem["attn_scores"]
    mem_ratio = used / hbm_cap
    host_ratio = jnp.maximum(mem["kv_dram"] / jnp.maximum(hw.dram_bytes, 1.0),
                             mem["kv_nvme"] / jnp.maximum(hw.nvme_bytes, 1.0))
    host_ratio = jnp.where((mem["kv_dram"] > 0) & (hw.dram_bytes <= 0), jnp.inf, host_ratio)
    host_ratio = jnp.where((mem["kv_nvme"] > 0) & (hw.nvme_bytes <= 0), jnp.inf, host_ratio)

    # decode: batch-mean context at p50 and p95
    ctx_p95 = batch_context_quantile(ld, batch, Z95)
    contexts = stacked((mean_ctx, ctx_p95), _config_ndim(hw, cfg))  # one evaluation of the step for both (staging.stacked)
    step, tokens = computed_once(lambda: speculative_step(a, hw, cfg, spec, batch, contexts), hw.mem_bw)
    (step50, step95), (tok50, tok95) = unstacked(step, contexts), unstacked(tokens, contexts)

    # prefix cache: capacity left over in each tier, per instance
    session = ld.in_mean + ld.out_mean  # per token at a session's length (fixed SSM states amortised)
    kv_token_chip = kv_elems_per_seq(a, session) / session * cfg.kv_bytes * kv_share_per_chip(a, hw, cfg)
    hbm_free = jnp.maximum(hbm_cap - used, 0.0)
    dram_free = jnp.maximum(hw.dram_bytes - mem["kv_dram"], 0.0)
    nvme_free = jnp.maximum(hw.nvme_bytes - mem["kv_nvme"], 0.0)
    session_ctx = ld.in_mean + ld.out_mean
    decode_per_req = ld.out_mean * step50 / (tok50 * batch)
    return dict(mem=mem, used=used, hbm_cap=hbm_cap, mem_ratio=mem_ratio, host_ratio=host_ratio,
                step50=step50, tok50=tok50, step95=step95, tok95=tok95, kv_token_chip=kv_token_chip,
                hbm_free=hbm_free, dram_free=dram_free, nvme_free=nvme_free, session_ctx=session_ctx,
                decode_per_req=decode_per_req)


def evaluate_serving(a: Arch, hw: Hw, cfg: Config, spec: Spec, ld: Load, draft_weight_bytes, valid, md=None,
                     lengths=None):
    """Every metric of serving the scenario's load with each configuration. Written as four stages
    (memory and decode steps; prefix cache and prefill service; the load an instance may carry; the
    outcome), each stored once for all its consumers (staging.py). `lengths`: this `ld`'s
    `length_quantile_tables`, when the caller computed them once for many calls."""

    if lengths is None:
        lengths = length_quantile_tables(ld)
    if md is None:  # else the caller computed `memory_and_decode` once for this and a decode pool
        md = computed_once(lambda: memory_and_decode(a, hw, cfg, spec, ld, draft_weight_bytes), hw.mem_bw)
    mem, mem_ratio, host_ratio = md["mem"], md["mem_ratio"], md["host_ratio"]
    step50, tok50, step95, tok95 = md["step50"], md["tok50"], md["step95"], md["tok95"]
    decode_per_req = md["decode_per_req"]

    def prefix_cache_and_prefill():
        kv_token_chip, session_ctx = md["kv_token_chip"], md["session_ctx"]
        hbm_free, dram_free, nvme_free = md["hbm_free"], md["dram_free"], md["nvme_free"]
        # one fixed-point step: capacity at the ideal hit rate sets the load per replica, hence the
        # sessions in flight (Little's law on session arrivals: rate / turns x session duration), which
        # with the cache capacity sets the hit rate the cache really delivers, and which tier serves
        # each hit (tiers.tier_hits: the curve read at each tier's cumulative capacity).
        # Random routing: every replica sees every session and holds a turn's context only 1 time in R.
        # the mean prefill of a hit and of a miss and the TTFT quantiles' tables: one prefill evaluation
        ndim = _config_ndim(hw, cfg)
        means, weights = mean_prefill_table(ld, (ld.prefix_reuse, 0.0), ndim)
        quantiles = tuple(hit_axis_table(table, ndim) for table in lengths)
        mean_seconds, *quantile_seconds = prefill_times(a, hw, cfg, (means, *quantiles))
        prefill_hit, prefill_miss = mean_prefill_of(mean_seconds, weights)
        hit = jnp.where(cfg.prefix_cache > 0, ld.hit_curve[-1], 0.0)
        mu_ideal = 1.0 / (hit * prefill_hit + (1.0 - hit) * prefill_miss + decode_per_req)
        lam_ideal = ld.util_max * mu_ideal
        spread = jnp.where(ld.route_random > 0, jnp.maximum(ld.arrival_rps / jnp.maximum(lam_ideal, 1e-12), 1.0), 1.0)
        in_flight = lam_ideal * ld.session_s / ld.turns * spread
        per_token = 1.0 / jnp.maximum(kv_token_chip, 1e-30)
        curve_hit, from_hbm, from_dram, from_nvme = tier_hits(ld.hit_curve, ld.hit_pool_exponent, hbm_free * per_token,
                                                              (hbm_free + dram_free) * per_token,
                                                              (hbm_free + dram_free + nvme_free) * per_token, in_flight)
        hit = jnp.where(cfg.prefix_cache > 0, curve_hit / spread, 0.0)
        working_set = in_flight * session_ctx * kv_token_chip  # bytes per chip the cache would like to hold
        reload_per_token = kv_token_chip * reload_seconds_per_byte(from_hbm, from_dram, from_nvme, hw.host_bw,
                                                                    hw.host_link_eff, hw.dram_bw, hw.nvme_bw)
        cached_mean = ld.prefix_reuse * ld.in_mean * hit
        cells = _hit_cells(hit)
        (prefill50, (uncached50, cached50)), (prefill95, (uncached95, cached95)) = zip(quantile_seconds, lengths, strict=True)
        s_prefill = hit * prefill_hit + (1.0 - hit) * prefill_miss + cached_mean * reload_per_token
        mu = 1.0 / (s_prefill + decode_per_req)
        # the prefill queue's server works through prompt tokens `budget` per step, each step also
        # carrying the batch's decode (under load prompts share steps, so this is per token); its
        # service varies as the uncached tokens do (hit/miss mixture)
        budget = prefill_budget(a, hw, cfg)
        s_queue = s_prefill + (ld.in_mean - cached_mean) / budget * md["step50"]
        m1, m2 = capped_lognormal_moments(ld.in_median, ld.in_sigma, ld.in_cap)
        scv = uncached_scv(m1, m2, hit, ld.prefix_reuse, ld.uncached_scv)
        return dict(hit=hit, working_set=working_set, in_flight=in_flight,
                    reload_per_token=reload_per_token, cells=cells, prefill50=prefill50, cached50=cached50,
                    prefill95=prefill95, cached95=cached95, uncached50=uncached50, uncached95=uncached95,
                    s_prefill=s_prefill, mu=mu, budget=budget,
                    s_queue=s_queue, scv=scv)

    pc = computed_once(prefix_cache_and_prefill, hw.mem_bw)
    hit, working_set = pc["hit"], pc["working_set"]
    s_prefill, mu = pc["s_prefill"], pc["mu"]
    s_queue, scv = pc["s_queue"], pc["scv"]
    s_wait = kingman_service(s_queue, scv)  # M/G/1 in wait_quantile's M/M/1 form
    decode_steps = ld.out_median / tok50  # of the median request: the TPOT tail's averaging length

    def load_per_instance():
        cells, reload_per_token = pc["cells"], pc["reload_per_token"]
        prefill50, cached50, prefill95, cached95 = pc["prefill50"], pc["cached50"], pc["prefill95"], pc["cached95"]
        # a new request joins at the scheduler's next admission, every `admission_steps` steps (a
        # uniform residual: its q-quantile is q intervals), and its prefill runs in chunks inside the
        # next mixed steps, the last of which emits its first token with the batch's decode:
        # continuous batching adds (q x interval + chunks) steps (and, on an engine that streams the
        # first token after a token-generation step, `first_token_delay` more: added to TTFT below)
        budget = pc["budget"]
        steps50 = prefill_steps(_read(pc["uncached50"], cells), budget)
        steps95 = prefill_steps(_read(pc["uncached95"], cells), budget)
        admit = hw.admission_steps
        service50 = _read(prefill50, cells) + _read(cached50, cells) * reload_per_token + (0.5 * admit + steps50) * step50
        service95 = (_read(prefill95, cells) + _read(cached95, cells) * reload_per_token
                     + (0.95 * admit + steps95) * step95)
        lam_ttft = max_rho_for_wait(ld.ttft_slo_s - service95 - first_token_delay(hw, step95), s_wait, 0.95) / s_queue
        rho_tpot = max_rho_for_tpot(ld.tpot_slo_s, step95 / tok95, s_prefill, scv, decode_steps, Z95)
        rho_cap = jnp.minimum(lam_ttft * s_prefill, rho_tpot)  # the prefill load the SLOs allow
        # decode slots: a request holds one from admission to its last token (not while it waits for
        # a multi-step scheduler's next admission); at most the load at which 5 % of requests wait
        # for one (decode stretched by the prefill stall)
        held_from_admission = service50 - 0.5 * (admit - 1.0) * step50
        lam_slots = max_rate_for_slots(slot_load_limit(cfg.batch), held_from_admission, ld.out_mean * step50 / tok50,
                                       s_prefill)
        lam_max = jnp.minimum(jnp.minimum(ld.util_max * mu, lam_slots), jnp.maximum(rho_cap, 0.0) / s_prefill)
        replicas = jnp.maximum(jnp.ceil(ld.arrival_rps / jnp.maximum(lam_max, 1e-12)), 1.0)
        replicas = jnp.ceil(replicas / cfg.replicas) * cfg.replicas  # whole systems of `cfg.replicas` instances
        headroom = rho_cap >= MIN_PREFILL_LOAD
        replicas = jnp.where(headroom, replicas, jnp.inf)
        lam = ld.arrival_rps / replicas
        rho_p = lam * s_prefill
        return dict(service50=service50, service95=service95, rho_cap=rho_cap, headroom=headroom,
                    replicas=replicas, lam=lam, rho_p=rho_p, lam_max=lam_max)

    inst = computed_once(load_per_instance, hw.mem_bw)
    service50, service95, rho_cap, headroom = inst["service50"], inst["service95"], inst["rho_cap"], inst["headroom"]
    replicas, lam, rho_p = inst["replicas"], inst["lam"], inst["rho_p"]

    rho_queue = lam * s_queue
    ttft50 = wait_quantile(rho_queue, s_wait, 0.5) + service50 + first_token_delay(hw, step50)
    ttft95 = (jnp.where(headroom, wait_quantile(rho_queue, s_wait, 0.95) + service95, service95)
              + first_token_delay(hw, step95))
    stall = 1.0 / jnp.maximum(1.0 - rho_p, 1e-6)
    tpot50 = step50 / tok50 * stall
    tpot95 = step95 / tok95 * stall + Z95 * tpot_tail_sd(rho_p, tpot50, s_prefill, scv, decode_steps)

    # cost: chips plus the host memory the plan occupies (offloaded KV and prefix cache)
    # the prefix cache was sized at the load one instance could take (the hit rate is read there, a
    # conservative figure); it holds, and is billed for, the sessions routed to it at the real load
    held = working_set * sessions_held(ld, replicas) / jnp.maximum(pc["in_flight"], 1e-30)
    _, held_dram, held_nvme = tier_shares(held, md["hbm_free"], md["dram_free"], md["nvme_free"])
    dram_used = mem["kv_dram"] + jnp.where(cfg.prefix_cache > 0, held_dram * held, 0.0)
    nvme_used = mem["kv_nvme"] + jnp.where(cfg.prefix_cache > 0, held_nvme * held, 0.0)
    # owned hardware pays energy: idle draw plus the share of capacity in use (0 when renting)
    draw = ld.idle_power_fraction + (1.0 - ld.idle_power_fraction) * jnp.clip(lam / mu, 0.0, 1.0)
    inst_usd_h = cfg.chips * (hw.usd_per_hour + hw.power_usd_per_hour * draw + dram_used / GB * ld.dram_usd_per_gb_hour
                              + nvme_used / GB * ld.nvme_usd_per_gb_hour)
    fleet_usd_h = replicas * inst_usd_h
    busy_prefill = jnp.clip(rho_p, 0.0, 1.0)
    input_tok_h = ld.arrival_rps * ld.in_mean * 3600.0
    output_tok_h = ld.arrival_rps * ld.out_mean * 3600.0
    usd_in = fleet_usd_h * busy_prefill / input_tok_h * 1e6
    usd_out = fleet_usd_h * (1.0 - busy_prefill) / output_tok_h * 1e6

    ttft_ratio, tpot_ratio = ttft95 / ld.ttft_slo_s, tpot95 / ld.tpot_slo_s
    ratios = jnp.stack(jnp.broadcast_arrays(
        ttft_ratio, tpot_ratio, mem_ratio, host_ratio,
        _utilisation_ratio(headroom, rho_cap, lam / (mu * ld.util_max), jnp.maximum(ttft_ratio, tpot_ratio))),
        axis=-1)
    worst = jnp.max(ratios, axis=-1)
    feasible = valid & (worst <= 1.0) & jnp.isfinite(fleet_usd_h)
    monthly = jnp.where(feasible, fleet_usd_h * ld.hours_per_month, jnp.inf)
    return {
        "feasible": feasible,
        "monthly_usd": monthly,
        "fleet_usd_per_hour": fleet_usd_h,
        "usd_per_hour": inst_usd_h,
        # the host memory (offloaded KV, prefix cache) in that bill: the report names it
        "host_usd_per_hour": replicas * cfg.chips * (dram_used / GB * ld.dram_usd_per_gb_hour
                                                     + nvme_used / GB * ld.nvme_usd_per_gb_hour),
        "replicas": replicas,
        "ttft_p50_s": ttft50,
        "ttft_p95_s": ttft95,
        "tpot_p50_s": tpot50,
        "tpot_p95_s": tpot95,
        "throughput_tok_s": lam * ld.out_mean,
        "capacity_rps": mu,
        # the fleet's arrival rate at which every SLO and limit still holds (what it was sized for)
        "sized_rps": jnp.where(headroom, replicas * inst["lam_max"], 0.0),
        "usd_per_mtok_input": usd_in,
        "usd_per_mtok_output": usd_out,
        "prefix_hit_rate": hit,
        "reload_s_per_token": pc["reload_per_token"],
        "tokens_per_step": tok50,
        "prefill_busy": rho_p,
        "max_prefill_load": rho_cap,
        "power_draw": draw,
        "weights_gb": mem["weights"] / GB,
        "kv_hbm_gb": mem["kv_hbm"] / GB,
        "kv_dram_gb": mem["kv_dram"] / GB,
        "kv_nvme_gb": mem["kv_nvme"] / GB,
        "activations_gb": (mem["activations"] + mem["attn_scores"]) / GB,
        "prefix_cache_gb": held * hit / GB,
        # what the prefix cache holds per chip, and the part of it in host memory (billed above)
        "prefix_cache_held_gb": jnp.where(cfg.prefix_cache > 0, held, 0.0) / GB,
        "prefix_cache_host_gb": jnp.where(cfg.prefix_cache > 0, (held_dram + held_nvme) * held, 0.0) / GB,
        "step_s": step50,
        "prefill_s": s_prefill,
        "prefill_queue_s": s_queue,
        "prefill_scv": scv,
        "worst_ratio": worst,
        "binding": jnp.argmax(ratios, axis=-1),
        "ratios": ratios,
    }
