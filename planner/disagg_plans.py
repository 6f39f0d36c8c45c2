"""Plan rows of disaggregated plans: both pools, the KV transfer and the bill, as `solve` prints them.

A chosen pair is re-evaluated with the numpy twin of the cost model (the same source as the jitted
kernels, planner/model/numpy_reference.py), so its detail costs no compile. Every plan row, of
either mode, carries `mode`; a disaggregated row has `prefill`, `decode` and `kv_transfer` objects
and the summary keys a comparison needs (bill and its band, TTFT, TPOT, $/Mtok).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.disagg_search import LOCATION_SHARED, LOCATIONS, Choice, DisaggEval
from planner.grid import AXES, Grid, gather, gather_spec
from planner.model.types import Load
from planner.plans import _bill_band, _clean, layout_fields, rate_headroom
from planner.quality import BITS, four_bit_note
from planner.tco import plan_cost_fields

PREFILL_BINDING = ("ttft", "memory", "host-memory", "utilisation")  # planner.model.disagg.PREFILL_BINDING
DECODE_BINDING = ("tpot", "memory", "host-memory")  # planner.model.disagg.DECODE_BINDING


def _twin():
    return _twin_of("disagg")


def _twin_of(module: str):
    from planner.model.numpy_reference import twin

    return twin()[module]


def _options(grid: Grid, named: list[dict[str, int]]):
    """Per-option arrays of the grid points given by axis name (axes not named: index 0)."""
    idx = np.array([[d.get(a, 0) for a in AXES] for d in named]).T
    hw, cfg, valid, _ = gather(grid, np.ravel_multi_index(idx, grid.shape))
    return hw, cfg, valid


def _memory(m: dict[str, np.ndarray], i: int, usable: float) -> dict[str, float | None]:
    return {"weights": _clean(m["weights_gb"][i], 3), "kv_hbm": _clean(m["kv_hbm_gb"][i], 3),
            "activations": _clean(m["activations_gb"][i], 3), "usable_hbm": _clean(usable, 3)}


def plan_row(ev: DisaggEval, choice: Choice) -> dict[str, Any]:
    """The plan row of one (prefill option, decode option) pair."""
    return plan_rows(ev, [choice])[0]


def _decode_drafters(grid, dec_idx, load):
    """(Spec, load, drafter weight bytes) of each decode option: the drafter varies along the
    speculation axis (method, k) and its weights with the weight dtype (grid.gather_spec)."""
    spec_k = np.array([d[6] for d in dec_idx])
    weight = np.array([d[3] for d in dec_idx])
    idx = tuple(spec_k if name == "spec_k" else weight if name == "weight_dtype" else np.zeros_like(spec_k)
                for name in AXES)
    spec, draft = gather_spec(grid, idx)
    return spec, load, np.asarray(draft, np.float32)


def plan_rows(ev: DisaggEval, choices: list[Choice]) -> list[dict[str, Any]]:
    """Plan rows of (prefill option, decode option) pairs, evaluated together (one vectorised call)."""
    if not choices:
        return []
    grid = ev.grid
    sc = grid.scenario
    twin = _twin()
    load = Load(*(np.asarray(x, np.float32) for x in grid.load))
    pre_idx = [c.prefill for c in choices]
    dec_idx = [c.decode for c in choices]
    p_hw, p_cfg, p_valid = _options(grid, [dict(hardware=hp, layout=kp, weight_dtype=pw, kv_dtype=kv, prefix_cache=pp,
                                                attention=pa) for hp, kp, pw, kv, pp, pa, _, _ in pre_idx])
    shared_cache = np.array([LOCATION_SHARED[c[6]] for c in pre_idx], np.float32)
    d_hw, d_cfg, d_valid = _options(grid, [dict(hardware=hd, layout=kd, batch=b, weight_dtype=w, kv_dtype=kv, tier=t,
                                                spec_k=s, attention=a) for hd, kd, b, w, kv, t, s, a in dec_idx])
    d_cfg = d_cfg._replace(prefix_cache=np.zeros_like(d_cfg.prefix_cache))
    bandwidth = np.array([ev.pair_bw[p[0], p[1], d[0], d[1]] for p, d in zip(pre_idx, dec_idx, strict=True)], np.float32)
    shared = [bool(ev.pair_shared[p[0], p[1], d[0], d[1]]) for p, d in zip(pre_idx, dec_idx, strict=True)]
    layerwise = 1.0 if sc.serving.kv_transfer == "layerwise" else 0.0
    with np.errstate(all="ignore"):
        p_cfg = p_cfg._replace(batch=np.ones_like(p_cfg.batch), spec_k=np.zeros_like(p_cfg.spec_k),
                               dram_frac=np.zeros_like(p_cfg.dram_frac), nvme_frac=np.zeros_like(p_cfg.nvme_frac))
        pre = twin.prefill_pool(grid.arch, p_hw, p_cfg, load, shared_cache)
        in_p95 = np.float32(_twin_of("queueing").lognormal_quantile(load.in_median, load.in_sigma, load.in_cap, 0.95))
        x50 = twin.transfer_seconds(grid.arch, load.in_median, p_cfg.kv_bytes, bandwidth)
        x95 = twin.transfer_seconds(grid.arch, in_p95, p_cfg.kv_bytes, bandwidth)
        pm = twin.prefill_fleet(grid.arch, p_hw, p_cfg, load, pre, x50, x95, layerwise, p_valid)
        dm = twin.decode_pool(grid.arch, d_hw, d_cfg, *_decode_drafters(grid, dec_idx, load), d_valid)
        bytes_mean = twin.transfer_bytes(grid.arch, load.in_mean, p_cfg.kv_bytes)
        bytes_p95 = twin.transfer_bytes(grid.arch, in_p95, p_cfg.kv_bytes)
    hours = float(load.hours_per_month)
    p_usable = np.asarray(p_hw.mem_bytes) * float(load.hbm_fraction) / 1e9
    d_usable = np.asarray(d_hw.mem_bytes) * float(load.hbm_fraction) / 1e9
    rows = []
    for i, ((hp, kp, pw, kv, pp, pa, pl, _), (hd, kd, b, w, _, t, s, a)) in enumerate(zip(pre_idx, dec_idx, strict=True)):
        p_acc, d_acc = grid.hardware[hp], grid.hardware[hd]
        p_lay, d_lay = grid.layouts[hp][kp], grid.layouts[hd][kd]
        p_rep, d_rep = pm["replicas"][i], dm["replicas"][i]
        p_usd, d_usd = float(pm["fleet_usd_per_hour"][i]), float(dm["fleet_usd_per_hour"][i])
        tier = grid.tiers[t]
        prefill = {
            "hardware": p_acc.id, "hardware_name": p_acc.name, "chips": int(grid.chips[hp, kp]),
            "replicas": int(p_rep / p_lay.replicas_per_system) if np.isfinite(p_rep) else None,
            **layout_fields(p_lay, p_acc),
            "weight_dtype": grid.weight_dtype[pw], "kv_dtype": grid.kv_dtype[kv],
            "prefix_cache": bool(grid.prefix_cache[pp]), "attention": grid.attention[pa],
            "prefix_cache_lives": LOCATIONS[pl] if grid.prefix_cache[pp] else "off",
            "prefix_hit_rate": _clean(pre["prefix_hit_rate"][i], 4),
            "ttft_p50_s": _clean(pm["ttft_p50_s"][i], 4), "ttft_p95_s": _clean(pm["ttft_p95_s"][i], 4),
            "prefill_mean_ms": _clean(pre["service_s"][i] * 1e3, 3), "busy": _clean(pm["busy"][i], 4),
            "sized_rps": _clean(pm["sized_rps"][i], 4),
            "usd_per_hour": _clean(p_usd, 4), "monthly_usd": _clean(p_usd * hours, 2),
            "host_memory_usd_month": _clean(pm["host_usd_per_hour"][i] * hours, 2),
            "binding": PREFILL_BINDING[int(pm["binding"][i])],
            "slo_ratios": {n: _clean(r, 4) for n, r in zip(PREFILL_BINDING, pm["ratios"][i], strict=True)},
            "memory_gb_per_chip": {**_memory(pre, i, p_usable[i]), "prefix_cache": _clean(pre["prefix_cache_gb"][i], 3)},
        }
        decode = {
            "hardware": d_acc.id, "hardware_name": d_acc.name, "chips": int(grid.chips[hd, kd]),
            "replicas": int(d_rep / d_lay.replicas_per_system) if np.isfinite(d_rep) else None,
            **layout_fields(d_lay, d_acc),
            "batch": grid.batch[b], "weight_dtype": grid.weight_dtype[w], "kv_dtype": grid.kv_dtype[kv],
            "tier_split": {"hbm": round(1.0 - tier[0] - tier[1], 4), "dram": tier[0], "nvme": tier[1]},
            "memory_kind": "HBM" if d_acc.hbm_gb > 0 else "SRAM",
            "spec_k": grid.spec_k[s], "spec_method": grid.spec_method[s] if grid.spec_method else "none",
            "attention": grid.attention[a],
            "tpot_p50_ms": _clean(dm["tpot_p50_s"][i] * 1e3, 3), "tpot_p95_ms": _clean(dm["tpot_p95_s"][i] * 1e3, 3),
            "tokens_per_step": _clean(dm["tokens_per_step"][i], 4), "occupancy": _clean(dm["occupancy"][i], 4),
            "sized_rps": _clean(dm["sized_rps"][i], 4),
            "usd_per_hour": _clean(d_usd, 4), "monthly_usd": _clean(d_usd * hours, 2),
            "host_memory_usd_month": _clean(dm["host_usd_per_hour"][i] * hours, 2),
            "binding": DECODE_BINDING[int(dm["binding"][i])],
            "slo_ratios": {n: _clean(r, 4) for n, r in zip(DECODE_BINDING, dm["ratios"][i], strict=True)},
            "memory_gb_per_chip": {**_memory(dm, i, d_usable[i]), "kv_dram": _clean(dm["kv_dram_gb"][i], 3),
                                   "kv_nvme": _clean(dm["kv_nvme_gb"][i], 3)},
        }
        for pool, acc, draw in ((prefill, p_acc, pm["power_draw"][i]), (decode, d_acc, dm["power_draw"][i])):
            pool.update(plan_cost_fields(acc, sc, pool["replicas"], pool["chips"], _clean(draw, 4)))
            pool.update(_bill_band(pool["monthly_usd"] if pool["monthly_usd"] is not None else float("inf"), acc.family,
                                   pool["replicas"], pool["sized_rps"], float(grid.load.arrival_rps)))
        pooled = prefill["replicas"] * prefill["chips"] + decode["replicas"] * decode["chips"]
        transfer = {
            "link": "scale-up" if shared[i] else "scale-out",
            # one prefill and one decode instance share a domain, the pools do not: scale-up holds only
            # if each domain is filled with both kinds, so that a router keeps every KV hand-off inside it
            "domains_spanned": -(-pooled // p_acc.scale_up_domain) if shared[i] else None,
            "gbps": _clean(bandwidth[i] / 1e9, 3),
            "bytes_per_request_mean": _clean(np.ravel(bytes_mean)[min(i, np.size(bytes_mean) - 1)], 0),
            "bytes_per_request_p95": _clean(np.ravel(bytes_p95)[min(i, np.size(bytes_p95) - 1)], 0),
            "seconds_p95": _clean(np.ravel(x95)[i], 5), "visible_p95_s": _clean(pm["transfer_visible_p95_s"][i], 5),
            "overlap": sc.serving.kv_transfer,
        }
        rows.append(summary(prefill, decode, transfer, sc, grid))
    return rows


def _add(x: Any, y: Any) -> Any:
    return None if x is None or y is None else round(x + y, 2)


def _min(x: Any, y: Any) -> Any:
    return None if x is None or y is None else min(x, y)


def summary(prefill: dict[str, Any], decode: dict[str, Any], transfer: dict[str, Any], sc: Any,
            grid: Grid) -> dict[str, Any]:
    """The disaggregated plan row: pools, transfer, and the keys every plan row has."""
    usd_h = (prefill["usd_per_hour"] or 0.0) + (decode["usd_per_hour"] or 0.0)
    monthly = _add(prefill["monthly_usd"], decode["monthly_usd"])
    sized = _min(prefill["sized_rps"], decode["sized_rps"])  # the pool that saturates first
    load = grid.load
    in_tok_h = float(load.arrival_rps) * float(load.in_mean) * 3600.0
    out_tok_h = float(load.arrival_rps) * float(load.out_mean) * 3600.0
    same = prefill["hardware"] == decode["hardware"]
    hardware = prefill["hardware"] if same else f"{prefill['hardware']}+{decode['hardware']}"
    published, kept = grid.model.weight_dtype_published, grid.model.kept_wider()
    # one note for the plan: the pools share the KV format, and its weights read at the narrower
    # pool's (two notes, "4-bit KV cache ...; 4-bit weights and KV cache ...", said the KV twice)
    narrower = min((prefill["weight_dtype"], decode["weight_dtype"]), key=lambda d: BITS[d])
    notes = [n for n in (four_bit_note(narrower, decode["kv_dtype"], published, kept),) if n]
    ratios = {"ttft": prefill["slo_ratios"]["ttft"], "tpot": decode["slo_ratios"]["tpot"]}
    feasible = monthly is not None
    binding = max((prefill, decode), key=lambda p: max(r for r in p["slo_ratios"].values() if r is not None))["binding"]
    return {
        "mode": "disaggregated",
        "hardware": hardware,
        "hardware_name": prefill["hardware_name"] if same else f"{prefill['hardware_name']} + {decode['hardware_name']}",
        "mixed_hardware": not same,
        "prefill": prefill,
        "decode": decode,
        "kv_transfer": transfer,
        "kv_dtype": decode["kv_dtype"],  # one format in both pools: the prefill pool writes what decode reads
        "prefix_cache_lives": prefill["prefix_cache_lives"],
        "prefix_hit_rate": prefill["prefix_hit_rate"],  # the cache serves the prefill pool
        "ttft_p50_s": prefill["ttft_p50_s"],
        "ttft_p95_s": prefill["ttft_p95_s"],
        "tpot_p50_ms": decode["tpot_p50_ms"],
        "tpot_p95_ms": decode["tpot_p95_ms"],
        # per decode replica, as an aggregated plan's is per replica; the fleet's is served_output_tok_s
        "throughput_tok_s": _clean(float(load.arrival_rps) * float(load.out_mean)
                                   / (decode["replicas"] * decode["layout"]["replicas_per_system"]), 2)
        if decode["replicas"] else None,
        "served_output_tok_s": _clean(float(load.arrival_rps) * float(load.out_mean), 2),
        "sized_rps": sized,
        "rate_headroom": rate_headroom(sized, float(load.arrival_rps)),
        "usd_per_hour": _clean(usd_h, 4),
        "usd_per_mtok_input": _clean((prefill["usd_per_hour"] or 0.0) / in_tok_h * 1e6, 4),
        "usd_per_mtok_output": _clean((decode["usd_per_hour"] or 0.0) / out_tok_h * 1e6, 4),
        "monthly_usd": monthly,
        "monthly_usd_low": _add(prefill["monthly_usd_low"], decode["monthly_usd_low"]),
        "monthly_usd_high": _add(prefill["monthly_usd_high"], decode["monthly_usd_high"]),
        "host_memory_usd_month": _add(prefill["host_memory_usd_month"], decode["host_memory_usd_month"]),
        "calibration": "uncalibrated" if "uncalibrated" in (prefill["calibration"], decode["calibration"]) else "fitted",
        "quality_note": "; ".join(dict.fromkeys(notes)) or None,
        "feasible": feasible,
        "binding": binding,
        "slo_ratios": ratios,
        "cost_mode": sc.cost.mode,
        "price_set_by_user": bool(prefill.get("price_set_by_user") or decode.get("price_set_by_user")),
        "energy_kwh_month": _add(prefill["energy_kwh_month"], decode["energy_kwh_month"]),
        "energy_usd_month": _add(prefill["energy_usd_month"], decode["energy_usd_month"]),
        "capex_usd": _add(prefill["capex_usd"], decode["capex_usd"]),
    }


def pools_words(plan: dict[str, Any]) -> str:
    """`prefill 3 x 8 h200-sxm (tp8) -> decode 2 x 4 b200 (tp4, batch 64)` in a few words."""
    p, d, x = plan["prefill"], plan["decode"], plan["kv_transfer"]
    return (f"prefill {p['replicas']} x {p['chips']} {p['hardware']} ({p['layout_text']}; {p['weight_dtype']}/"
            f"{p['kv_dtype']}, prefix cache {_lives(p)}) -> decode {d['replicas']} x "
            f"{d['chips']} {d['hardware']} ({d['layout_text']}; batch {d['batch']}, {d['weight_dtype']}/{d['kv_dtype']}, "
            f"k={d['spec_k']}); KV over {x['link']} {x['gbps']:,.0f} GB/s{_placement(x)}")


def _placement(transfer: dict[str, Any]) -> str:
    """What the scale-up link assumes when the pools fill more than one domain."""
    spanned = transfer.get("domains_spanned")
    if not spanned or spanned <= 1:
        return ""
    return f" (pools over {spanned} domains: each must hold prefill and decode instances, hand-offs staying inside)"


def _lives(pool: dict[str, Any]) -> str:
    """`on (prefill instances)`, `on (shared host pool)` or `off`."""
    return f"on ({pool['prefix_cache_lives']})" if pool["prefix_cache"] else "off"
