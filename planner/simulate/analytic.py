"""The analytic screen's figures for one plan, at any percentile, from the same model the search runs.

`evaluate_serving` (planner/model/serving.py) reports p50 and p95; the simulator also shows p99. This
module restates the lines of `evaluate_serving` that depend on the percentile q (TTFT = M/G/1
wait_q + prefill at the length quantile of the hit/miss mixture, read from the model's own table,
+ (q x admission interval + chunks) steps; TPOT = step at the batch-mean context quantile / tokens per step / (1 - rho)
+ z_q x the stall's spread across requests), on
top of the intermediate values evaluate_serving returns. tests/test_simulate.py checks that q = 0.5 and 0.95 reproduce evaluate_serving's p50 and
p95 exactly, so the two cannot drift apart.

A disaggregated plan is restated from model/disagg.py the same way (`prefill_pool` and
`prefill_fleet` for TTFT: M/G/1 wait + service quantile + visible transfer of the prompt-length
quantile; `decode_pool` for TPOT: the step at the batch-mean context quantile, no prefill stall),
at the plan's own replica counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.model.numpy_reference import twin
from planner.simulate.plan import SimPlan

QUANTILES = (0.5, 0.95, 0.99)


def new_tokens_scv(ld) -> float:
    """cs^2 the screen gives a hit turn's new tokens (`queueing.uncached_scv`): the stated
    `uncached_scv`, or the capped prompts' own spread where that is wider (or unset)."""
    q = twin()["queueing"]
    m1, m2 = q.capped_lognormal_moments(ld.in_median, ld.in_sigma, ld.in_cap)
    return float(q.uncached_scv(m1, m2, 1.0, 0.0, ld.uncached_scv))  # every turn a hit (its share: no matter)


def analytic(plan: SimPlan) -> dict[str, Any]:
    """{'ttft_s': {q: value}, 'tpot_s': {q: value}, ...} of the plan at its own replica count."""
    if plan.disaggregated:
        return _disaggregated(plan)
    m = twin()
    pool, ld = plan.serve, plan.load
    a, hw, cfg, spec = pool.arch, pool.hw, pool.cfg, pool.spec
    with np.errstate(invalid="ignore", divide="ignore"):  # a plan the screen gives no headroom: inf x 0 in its bill
        out = m["serving"].evaluate_serving(a, hw, cfg, spec, ld, np.float64(pool.draft_weight_bytes), np.bool_(True))
    # at the plan's replica count (a plan file may carry more replicas than the screen would pick)
    instances = float(pool.instances)
    lam = float(ld.arrival_rps) / instances
    s_prefill = float(out["prefill_s"])
    rho = lam * s_prefill
    scv = float(out["prefill_scv"])
    s_queue = float(out["prefill_queue_s"])
    s_wait = float(m["queueing"].kingman_service(np.float64(s_queue), np.float64(scv)))
    budget = float(m["serving"].prefill_budget(a, hw, cfg))
    hit = float(out["prefix_hit_rate"])
    reload_per_token = float(out["reload_s_per_token"])  # the screen's own (tiers in LRU order)
    mean_ctx = float(m["serving"].running_context(ld))
    q_mod = m["queueing"]
    stall = 1.0 / max(1.0 - rho, 1e-6)
    step50, tok50 = m["speculative"].speculative_step(a, hw, cfg, spec, cfg.batch, np.float64(mean_ctx))
    tpot50 = float(step50) / float(tok50) * stall
    spread = float(q_mod.tpot_tail_sd(np.float64(rho), np.float64(tpot50), np.float64(s_prefill), np.float64(scv),
                                      np.float64(float(ld.out_median) / float(tok50))))
    ttft, tpot = {}, {}
    for q in QUANTILES:
        z = float(q_mod.ndtri(np.float64(q)))
        ctx = mean_ctx if q == 0.5 else float(m["serving"].batch_context_quantile(ld, cfg.batch, np.float64(z)))
        step, tok = m["speculative"].speculative_step(a, hw, cfg, spec, cfg.batch, np.float64(ctx))
        service, uncached = _service(m, plan, hit, reload_per_token, q)
        steps = float(m["serving"].prefill_steps(np.float64(uncached), np.float64(budget)))
        ttft[q] = (float(q_mod.wait_quantile(np.float64(lam * s_queue), np.float64(s_wait), q)) + service
                   + (q * float(hw.admission_steps) + steps) * float(step)
                   + float(m["serving"].first_token_delay(hw, np.float64(step))))
        tpot[q] = float(step) / float(tok) * stall + z * spread
    return {"ttft_s": ttft, "tpot_s": tpot, "prefill_busy": rho, "prefix_hit_rate": hit,
            "prefix_reuse": float(ld.prefix_reuse), "arrival_rps": float(ld.arrival_rps), "replicas": instances, "screen_replicas": float(out["replicas"]),
            "ttft_p95_screen_s": float(out["ttft_p95_s"]), "tpot_p95_screen_s": float(out["tpot_p95_s"]),
            "new_tokens_scv": new_tokens_scv(ld)}


def _service(m, plan: SimPlan, hit: float, reload_per_token: float, q: float) -> tuple[float, float]:
    """(prefill plus reload, uncached tokens) at the q-quantile of the hit/miss mixture of prompt
    lengths, as evaluate_serving reads them (its tables over hit rates, at the plan's hit rate)."""
    pool, ld = plan.serve, plan.load
    s = m["serving"]
    seconds, cached, uncached = s._prefill_quantile_table(pool.arch, pool.hw, pool.cfg, ld, q)
    cells = s._hit_cells(np.float64(hit))
    return (float(s._read(seconds, cells)) + float(s._read(cached, cells)) * reload_per_token,
            float(s._read(uncached, cells)))


def _disaggregated(plan: SimPlan) -> dict[str, Any]:
    """TTFT from the prefill pool and the transfer, TPOT from the decode pool (model/disagg.py)."""
    m = twin()
    d, q_mod = m["disagg"], m["queueing"]
    pre_pool, dec_pool, ld, link = plan.pool("prefill"), plan.pool("decode"), plan.load, plan.transfer
    a, hw = pre_pool.arch, pre_pool.hw
    one = d._as_prefill(pre_pool.cfg)
    with np.errstate(invalid="ignore", divide="ignore"):
        pre = d.prefill_pool(a, hw, one, ld, np.float64(1.0 if link.shared_cache else 0.0))
        dec = d.decode_pool(a, dec_pool.hw, dec_pool.cfg, dec_pool.spec, ld, np.float64(dec_pool.draft_weight_bytes),
                            np.bool_(True))
    service, scv, hit = float(pre["service_s"]), float(pre["service_scv"]), float(pre["prefix_hit_rate"])
    rho = float(ld.arrival_rps) / pre_pool.instances * service
    waits_like = float(q_mod.kingman_service(np.float64(service), np.float64(scv)))
    cfg = dec_pool.cfg
    mean_ctx = float(m["serving"].running_context(ld))
    ttft, tpot = {}, {}
    for q in QUANTILES:
        service_q = float(d.service_quantile(a, hw, one, ld, np.bool_(link.shared_cache), np.float64(hit),
                                             pre["reload_s_per_token"], np.float64(q)))
        tokens_q = q_mod.lognormal_quantile(ld.in_median, ld.in_sigma, ld.in_cap, np.float64(q))
        whole = d.transfer_seconds(a, tokens_q, one.kv_bytes, np.float64(link.bandwidth))
        visible = float(d.visible_transfer(a, whole, np.float64(service_q), np.float64(1.0 if link.layerwise else 0.0)))
        ttft[q] = float(q_mod.wait_quantile(np.float64(rho), np.float64(waits_like), q)) + service_q + visible
        z = float(q_mod.ndtri(np.float64(q)))
        ctx = mean_ctx if q == 0.5 else float(m["serving"].batch_context_quantile(ld, cfg.batch, np.float64(z)))
        step, tok = m["speculative"].speculative_step(a, dec_pool.hw, cfg, dec_pool.spec, cfg.batch, np.float64(ctx))
        tpot[q] = float(step) / float(tok)
    occupancy = float(ld.arrival_rps) / dec_pool.instances / float(dec["capacity_rps"])
    # as the simulator counts it: cached tokens over prefix_reuse x prompts (this location's share)
    reach = float(pre["reuse"]) / float(ld.prefix_reuse) if float(ld.prefix_reuse) > 0 else 0.0
    return {"ttft_s": ttft, "tpot_s": tpot, "prefill_busy": rho, "prefix_hit_rate": hit * reach,
            "prefix_reuse": float(ld.prefix_reuse), "arrival_rps": float(ld.arrival_rps),
            "replicas": float(pre_pool.instances + dec_pool.instances),
            "pools": {"prefill": {"replicas": pre_pool.instances, "busy": rho},
                      "decode": {"replicas": dec_pool.instances, "occupancy": occupancy}},
            "ttft_p95_screen_s": None, "tpot_p95_screen_s": float(dec["tpot_p95_s"]),
            "new_tokens_scv": new_tokens_scv(ld)}
