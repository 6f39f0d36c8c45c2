"""Disaggregated serving: a prefill pool, a decode pool, and the KV transfer between them.

Production stacks (NVIDIA Dynamo, SGLang and vLLM prefill/decode disaggregation, Mooncake) run the two
phases on separate instances, each sized for its own SLO. The physics is the aggregated model's
(prefill.py, decode.py, speculative.py, queueing.py, tiers.py), split in two:

Prefill pool (one prompt at a time per instance, as chunked prefill schedules it; the prefix cache
lives here: in each instance's HBM left over, then host DRAM, then NVMe, as in serving.py, or in one
pool in the host memory of all prefill instances, see `prefill_pool`):
  service = prefill(uncached tokens) + reload(cached tokens)
  TTFT_q  = wait_q (M/G/1 at the pool's utilisation: Kingman's form with the hit/miss cs^2, as
            serving.py) + service_q + visible KV transfer
  The most load an instance may carry is the smallest of util_max x capacity and the utilisation
  whose p95 wait still fits the TTFT budget left after the transfer, so the pool's feasibility never
  depends on the arrival rate (as in serving.py). No decode runs here, so TPOT is not its concern.
KV transfer (per request, prefill instance -> decode instance):
  bytes   = prompt KV at the decode pool's KV dtype (the prefill pool writes it in that format)
  seconds = bytes / bandwidth, bandwidth = the slower side's chips x per-chip link: the scale-out
  NICs (InfiniBand/RoCE/EFA), or the scale-up link when both instances sit in one scale-up domain.
  Layer by layer (Mooncake, FAST 2025; Splitwise, ISCA 2024): layer i's KV leaves once layer i is
  computed, so only max(X / layers, X - P (layers - 1) / layers) shows in TTFT; after prefill
  (DistServe, OSDI 2024): all of X.
Decode pool (no prefill interference: TPOT = step / tokens per step, no 1 / (1 - rho) stall):
  capacity = batch x tokens per step / (step x output tokens) requests/s per instance; an instance
  carries at most util_max of it, and no more than keeps 5 % of requests waiting for a slot
  (Erlang C, queueing.slot_load_limit).
The bill is both pools' chips plus the host memory each occupies (prefix cache, offloaded KV).
All functions broadcast, so one call evaluates every option of a pool.
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.layouts import kv_share_per_chip
from planner.model.memory import kv_elems_per_seq, memory_per_chip
from planner.model.queueing import (
    capped_lognormal_moments,
    kingman_service,
    max_rho_for_wait,
    slot_load_limit,
    uncached_scv,
    wait_quantile,
)
from planner.model.serving import (
    GB,
    MIN_PREFILL_LOAD,
    _config_ndim,
    _hit_cells,
    _read,
    hit_axis_table,
    length_quantile_tables,
    longest_held,
    mean_prefill_of,
    mean_prefill_table,
    memory_and_decode,
    prefill_times,
    sessions_held,
)
from planner.model.tiers import reload_seconds_per_byte, tier_hits, tier_shares
from planner.model.types import Arch, Config, Hw, Load, Spec

PREFILL_BINDING = ("ttft", "memory", "host-memory", "utilisation")  # order of a prefill pool's `ratios`
DECODE_BINDING = ("tpot", "memory", "host-memory")  # order of a decode pool's `ratios`


def transfer_bytes(a: Arch, tokens, kv_bytes) -> jnp.ndarray:
    """KV bytes of one prompt of `tokens` tokens at `kv_bytes` per cached element (all layers)."""
    return kv_elems_per_seq(a, tokens) * kv_bytes


def transfer_seconds(a: Arch, tokens, kv_bytes, bandwidth) -> jnp.ndarray:
    """Seconds to move one prompt's KV over `bandwidth` bytes/s (both instances' chips in parallel)."""
    return transfer_bytes(a, tokens, kv_bytes) / jnp.maximum(bandwidth, 1.0)


def visible_transfer(a: Arch, xfer_s, prefill_s, layerwise) -> jnp.ndarray:
    """The part of the transfer that adds to TTFT. Layer by layer, layer i's KV is sent once layer i
    is computed: with per-layer compute P / n and transfer X / n the last layer's KV arrives at
    max(P + X / n, P / n + X), i.e. max(X / n, X - P (n - 1) / n) after prefill ends."""
    n = jnp.maximum(a.layers, 1.0)
    overlapped = jnp.maximum(xfer_s / n, xfer_s - prefill_s * (n - 1.0) / n)
    return jnp.where(layerwise > 0, overlapped, xfer_s)


def _service_at(seconds, cached, hit, reload_per_token) -> jnp.ndarray:
    """A prefill service quantile (no queueing) from serving.py's table of the hit/miss length
    quantile over HIT_TABLE (its prefill `seconds` and `cached` tokens), read at this hit rate, plus
    the reload of the cached tokens there."""
    cells = _hit_cells(hit)
    return _read(seconds, cells) + _read(cached, cells) * reload_per_token


def _location_lengths(ld: Load, qs) -> list:
    """For each quantile of `qs`, the length tables of a pooled cache (the whole reusable prefix)
    and of a prefill instance's own (`prefill_side_reuse`): load fields are scalars, so each table
    is one scenario's."""
    reuses = (ld.prefix_reuse, prefill_side_reuse(ld, False))
    tables = length_quantile_tables(ld, [q for q in qs for _ in reuses], [r for _ in qs for r in reuses])
    return [tables[2 * i:2 * i + 2] for i in range(len(qs))]


def _service_by_location(pooled, seconds, lengths, hit, reload_per_token) -> jnp.ndarray:
    """`_service_at` with the table of the location the cache is in (`_location_lengths`)."""
    (pooled_s, local_s), (pooled_len, local_len) = seconds, lengths
    return jnp.where(pooled, _service_at(pooled_s, pooled_len[1], hit, reload_per_token),
                     _service_at(local_s, local_len[1], hit, reload_per_token))


def service_quantile(a: Arch, hw: Hw, cfg: Config, ld: Load, pooled, hit, reload_per_token, q) -> jnp.ndarray:
    """q-quantile of the prefill service with the share of the prompt each cache location holds
    (`prefill_side_reuse`)."""
    (lengths,) = _location_lengths(ld, (q,))
    ndim = _config_ndim(hw, cfg)
    seconds = prefill_times(a, hw, cfg, tuple(hit_axis_table(x, ndim) for x in lengths))
    return _service_by_location(pooled, seconds, lengths, hit, reload_per_token)


def prefill_side_reuse(ld: Load, pooled) -> jnp.ndarray:
    """Share of a prompt the prefill pool's cache can hold. A turn's reusable prefix ends with the
    previous turn's reply, whose KV the decode pool computed: prefill instances cache only what they
    prefilled (SGLang and vLLM prefill/decode disaggregation), so the reply (out_mean tokens of an
    in_mean prompt) is prefilled again; a shared host pool also receives the decode pool's KV
    (LMCache `save_decode_cache`, Mooncake Store), so it holds the whole reusable prefix."""
    local = jnp.maximum(ld.prefix_reuse - ld.out_mean / jnp.maximum(ld.in_mean, 1.0), 0.0)
    return jnp.where(pooled, ld.prefix_reuse, local)


def _as_prefill(cfg: Config) -> Config:
    """A prefill instance holds one prompt at a time, keeps its KV in HBM and does not speculate."""
    zero = 0.0 * cfg.chips
    return cfg._replace(batch=1.0 + zero, dram_frac=zero, nvme_frac=zero, spec_k=zero)


def prefill_pool(a: Arch, hw: Hw, cfg: Config, ld: Load, shared=0.0) -> dict[str, jnp.ndarray]:
    """What a prefill instance does independently of the transfer: memory, prefix cache, service
    times (mean, p50, p95) and cost per chip-hour of the host memory its cache occupies.

    Where the prefix cache lives (`shared`, broadcasts): 0 = in each prefill instance (HBM left
    over, then its host DRAM and NVMe), sessions routed to their instance as in serving.py; 1 = one
    pool in the host memory of all prefill instances (Mooncake Store, LMCache): every session in
    flight shares the whole pool, whichever instance a turn lands on, and a hit held by another
    instance's host crosses the scale-out network (1 - 1 / instances of them). A hit saves prefill
    compute in this pool; the decode pool still receives the whole prompt's KV either way. Each
    location caches its own share of the prompt (`prefill_side_reuse`)."""
    one = _as_prefill(cfg)
    mem = memory_per_chip(a, hw, one, longest_held(ld, output=False), 0.0, 0.0)  # one prompt at a time
    hbm_cap = hw.mem_bytes * ld.hbm_fraction
    used = mem["weights"] + mem["kv_hbm"] + mem["activations"] + mem["attn_scores"]

    # prefix cache (serving.py's fixed-point step): the ideal hit sets the load per instance, hence
    # the instances and the sessions each sees, which with the capacity set the hit the cache delivers
    session = ld.in_mean + ld.out_mean
    kv_token_chip = kv_elems_per_seq(a, session) / session * one.kv_bytes * kv_share_per_chip(a, hw, one)
    hbm_free = jnp.maximum(hbm_cap - used, 0.0)
    pooled = shared > 0
    reuse = prefill_side_reuse(ld, pooled)
    # mean prefill of a hit (at each cache location's share) and of a miss (serving.mean_prefill),
    # and the service quantiles' tables at each location: one prefill evaluation
    ndim = _config_ndim(hw, one)
    means, weights = mean_prefill_table(ld, (ld.prefix_reuse, prefill_side_reuse(ld, False), 0.0), ndim)
    lengths50, lengths95 = _location_lengths(ld, (0.5, 0.95))
    mean_s, *quantile_s = prefill_times(a, hw, one, (means, *(hit_axis_table(x, ndim) for x in (*lengths50, *lengths95))))
    pooled_hit, local_hit, miss = mean_prefill_of(mean_s, weights)
    prefill_hit = jnp.where(pooled, pooled_hit, local_hit)
    hit = jnp.where(one.prefix_cache > 0, ld.hit_curve[-1], 0.0)
    lam_ideal = ld.util_max / (hit * prefill_hit + (1.0 - hit) * miss)
    instances = jnp.maximum(ld.arrival_rps / jnp.maximum(lam_ideal, 1e-12), 1.0)
    spread = jnp.where(ld.route_random > 0, instances, 1.0)
    own_flight = lam_ideal * ld.session_s / ld.turns * spread
    pool_flight = ld.arrival_rps * ld.session_s / ld.turns
    in_flight = jnp.where(pooled, pool_flight, own_flight)
    local_hbm = jnp.where(pooled, 0.0, hbm_free)  # a host-memory pool leaves HBM to the running prefill
    scale = jnp.where(pooled, instances, 1.0) / jnp.maximum(kv_token_chip, 1e-30)  # bytes per chip -> tokens
    curve_hit, from_hbm, from_dram, from_nvme = tier_hits(ld.hit_curve, ld.hit_pool_exponent, local_hbm * scale,
                                                          (local_hbm + hw.dram_bytes) * scale,
                                                          (local_hbm + hw.dram_bytes + hw.nvme_bytes) * scale, in_flight)
    hit = jnp.where(one.prefix_cache > 0, jnp.where(pooled, curve_hit, curve_hit / spread), 0.0)
    # bytes per chip the cache would like to hold (a pool: this instance's share of it)
    working_set = in_flight * session * kv_token_chip / jnp.where(pooled, instances, 1.0)
    local = reload_seconds_per_byte(from_hbm, from_dram, from_nvme, hw.host_bw, hw.host_link_eff, hw.dram_bw, hw.nvme_bw)
    remote = reload_seconds_per_byte(from_hbm, from_dram, from_nvme, jnp.minimum(hw.host_bw, hw.scale_out_bw),
                                     hw.host_link_eff, hw.dram_bw, hw.nvme_bw)
    per_byte = jnp.where(pooled, local / instances + remote * (1.0 - 1.0 / instances), local)
    reload_per_token = kv_token_chip * per_byte
    cached_mean = reuse * ld.in_mean * hit
    service = hit * prefill_hit + (1.0 - hit) * miss + cached_mean * reload_per_token
    m1, m2 = capped_lognormal_moments(ld.in_median, ld.in_sigma, ld.in_cap)
    return {
        "service_s": service,
        "service_scv": uncached_scv(m1, m2, hit, reuse, ld.uncached_scv),
        "service50_s": _service_by_location(pooled, quantile_s[:2], lengths50, hit, reload_per_token),
        "service95_s": _service_by_location(pooled, quantile_s[2:], lengths95, hit, reload_per_token),
        "reuse": reuse,
        "mem_ratio": used / hbm_cap,
        "host_ratio": 0.0 * used,  # the cache takes only what is free; the pool offloads no active KV
        # the cache's bytes per chip at the sessions per instance assumed above (`sessions`), for
        # `host_usd_per_chip_hour` to bill at the sessions an instance really holds
        "working_set": jnp.where(one.prefix_cache > 0, working_set, 0.0),
        "sessions": in_flight / jnp.where(pooled, instances, 1.0),
        "local_hbm": local_hbm,
        "pooled": jnp.where(pooled, 1.0, 0.0),
        "prefix_hit_rate": hit,
        "reload_s_per_token": reload_per_token,
        "prefix_cache_gb": working_set * hit / GB,
        "weights_gb": mem["weights"] / GB,
        "kv_hbm_gb": mem["kv_hbm"] / GB,
        "activations_gb": (mem["activations"] + mem["attn_scores"]) / GB,
    }


def host_usd_per_chip_hour(hw: Hw, ld: Load, pre: dict[str, jnp.ndarray], replicas) -> jnp.ndarray:
    """Host memory the prefix cache of one prefill chip occupies, $/h, at the sessions an instance of
    a pool of `replicas` really holds: its share of a shared pool, the sessions routed to it (sticky),
    or every session (random routing). `prefill_pool` sized the cache at the load one instance could
    take; billing that would charge a lone instance for sessions that do not exist, and made a longer
    prompt (fewer such sessions) bill less host memory than a shorter one."""
    sessions = sessions_held(ld, replicas, pre["pooled"])
    working_set = pre["working_set"] * sessions / jnp.maximum(pre["sessions"], 1e-30)
    _, in_dram, in_nvme = tier_shares(working_set, pre["local_hbm"], hw.dram_bytes, hw.nvme_bytes)
    return working_set / GB * (in_dram * ld.dram_usd_per_gb_hour + in_nvme * ld.nvme_usd_per_gb_hour)


def prefill_fleet(a: Arch, hw: Hw, cfg: Config, ld: Load, pre: dict[str, jnp.ndarray], xfer50_s, xfer95_s,
                  layerwise, valid) -> dict[str, jnp.ndarray]:
    """The prefill pool once the transfer is known: the TTFT budget left, the replicas the load
    needs, TTFT p50/p95 and the pool's bill. `xfer*_s` broadcast against `pre` (one column per
    transfer class)."""
    service = pre["service_s"]
    vis50 = visible_transfer(a, xfer50_s, pre["service50_s"], layerwise)
    vis95 = visible_transfer(a, xfer95_s, pre["service95_s"], layerwise)
    zero_load95 = pre["service95_s"] + vis95
    waits_like = kingman_service(service, pre["service_scv"])  # M/G/1 in the M/M/1 form (queueing.py)
    rho_cap = max_rho_for_wait(ld.ttft_slo_s - zero_load95, waits_like, 0.95)
    mu = 1.0 / service
    lam_max = jnp.minimum(ld.util_max * mu, jnp.maximum(rho_cap, 0.0) / service)
    headroom = rho_cap >= MIN_PREFILL_LOAD
    replicas = jnp.maximum(jnp.ceil(ld.arrival_rps / jnp.maximum(lam_max, 1e-12)), 1.0)
    replicas = jnp.ceil(replicas / cfg.replicas) * cfg.replicas
    replicas = jnp.where(headroom, replicas, jnp.inf)
    rho = ld.arrival_rps / replicas * service
    ttft50 = wait_quantile(rho, waits_like, 0.5) + pre["service50_s"] + vis50
    ttft95 = jnp.where(headroom, wait_quantile(rho, waits_like, 0.95) + zero_load95, zero_load95)
    draw = ld.idle_power_fraction + (1.0 - ld.idle_power_fraction) * jnp.clip(rho, 0.0, 1.0)
    host_usd = host_usd_per_chip_hour(hw, ld, pre, jnp.where(jnp.isfinite(replicas), replicas, 1.0))
    inst_usd_h = cfg.chips * (hw.usd_per_hour + hw.power_usd_per_hour * draw + host_usd)
    fleet_usd_h = replicas * inst_usd_h
    ttft_ratio = ttft95 / ld.ttft_slo_s
    short = jnp.where(ttft_ratio >= 1.0, 1.0, 1.0 + MIN_PREFILL_LOAD - jnp.clip(rho_cap, 0.0, MIN_PREFILL_LOAD))
    util = jnp.where(headroom, rho / ld.util_max, short)
    ratios = jnp.stack(jnp.broadcast_arrays(ttft_ratio, pre["mem_ratio"], pre["host_ratio"], util), axis=-1)
    worst = jnp.max(ratios, axis=-1)
    feasible = valid & (worst <= 1.0) & jnp.isfinite(fleet_usd_h)
    return {
        "feasible": feasible,
        "monthly_usd": jnp.where(feasible, fleet_usd_h * ld.hours_per_month, jnp.inf),
        "fleet_usd_per_hour": fleet_usd_h,
        "usd_per_hour": inst_usd_h,
        "host_usd_per_hour": replicas * cfg.chips * host_usd,  # the prefix cache's host memory in that bill
        "replicas": replicas,
        "sized_rps": jnp.where(headroom, replicas * lam_max, 0.0),  # the pool's rate with TTFT and utilisation held
        "ttft_p50_s": ttft50,
        "ttft_p95_s": ttft95,
        "transfer_visible_p95_s": vis95,
        "busy": rho,
        "power_draw": draw,
        "worst_ratio": worst,
        "binding": jnp.argmax(ratios, axis=-1),
        "ratios": ratios,
    }


def decode_pool(a: Arch, hw: Hw, cfg: Config, spec: Spec, ld: Load, draft_weight_bytes, valid,
                md=None) -> dict[str, jnp.ndarray]:
    """A decode instance fed by the prefill pool: memory and decode step as an aggregated instance
    has them (`serving.memory_and_decode`, or `md` when the caller computed it for both), TPOT
    without prefill stalls, replicas for the load, and the pool's bill."""
    if md is None:
        md = memory_and_decode(a, hw, cfg, spec, ld, draft_weight_bytes)
    batch = cfg.batch
    mem, used, hbm_cap, host_ratio = md["mem"], md["used"], md["hbm_cap"], md["host_ratio"]
    step50, tok50, step95, tok95 = md["step50"], md["tok50"], md["step95"], md["tok95"]
    tpot50, tpot95 = step50 / tok50, step95 / tok95
    mu = batch * tok50 / (step50 * ld.out_mean)
    # busy slots at most where 5 % of requests wait for one (Erlang C, as aggregated serving)
    lam_slots = slot_load_limit(batch) * tok50 / (step50 * ld.out_mean)
    lam_max = jnp.minimum(ld.util_max * mu, lam_slots)
    replicas = jnp.maximum(jnp.ceil(ld.arrival_rps / lam_max), 1.0)
    replicas = jnp.ceil(replicas / cfg.replicas) * cfg.replicas
    occupancy = ld.arrival_rps / replicas / mu
    draw = ld.idle_power_fraction + (1.0 - ld.idle_power_fraction) * jnp.clip(occupancy, 0.0, 1.0)
    inst_usd_h = cfg.chips * (hw.usd_per_hour + hw.power_usd_per_hour * draw
                              + mem["kv_dram"] / GB * ld.dram_usd_per_gb_hour + mem["kv_nvme"] / GB * ld.nvme_usd_per_gb_hour)
    fleet_usd_h = replicas * inst_usd_h
    ratios = jnp.stack(jnp.broadcast_arrays(tpot95 / ld.tpot_slo_s, used / hbm_cap, host_ratio), axis=-1)
    worst = jnp.max(ratios, axis=-1)
    feasible = valid & (worst <= 1.0) & jnp.isfinite(fleet_usd_h)
    return {
        "feasible": feasible,
        "monthly_usd": jnp.where(feasible, fleet_usd_h * ld.hours_per_month, jnp.inf),
        "fleet_usd_per_hour": fleet_usd_h,
        "usd_per_hour": inst_usd_h,
        # the offloaded KV's host memory in that bill
        "host_usd_per_hour": replicas * cfg.chips * (mem["kv_dram"] / GB * ld.dram_usd_per_gb_hour
                                                     + mem["kv_nvme"] / GB * ld.nvme_usd_per_gb_hour),
        "replicas": replicas,
        "sized_rps": replicas * lam_max,  # the pool's rate with utilisation and slot waits held
        "tpot_p50_s": tpot50,
        "tpot_p95_s": tpot95,
        "tokens_per_step": tok50,
        "step_s": step50,
        "capacity_rps": mu,
        "occupancy": occupancy,
        "power_draw": draw,
        "weights_gb": mem["weights"] / GB,
        "kv_hbm_gb": mem["kv_hbm"] / GB,
        "kv_dram_gb": mem["kv_dram"] / GB,
        "kv_nvme_gb": mem["kv_nvme"] / GB,
        "activations_gb": (mem["activations"] + mem["attn_scores"]) / GB,
        "worst_ratio": worst,
        "binding": jnp.argmax(ratios, axis=-1),
        "ratios": ratios,
    }
