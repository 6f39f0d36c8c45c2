"""Plan rows: the user-facing record of one configuration (what `solve` prints and exports)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from planner.grid import Grid, Layout, gather
from planner.lowering import scale_out_gbps
from planner.model.types import Load
from planner.schema import Accelerator, Scenario
from planner.uncertainty import band_for

# `planner.model.serving.BINDING` (the order of the kernel's `ratios`), restated so that a warm
# solve, which loads its kernels already compiled, need not import the model (an eager jnp op
# at its import costs a compile); tests/test_executables.py checks that the two agree.
BINDING = ("ttft", "tpot", "memory", "host-memory", "utilisation")


def _clean(x: float, digits: int = 6) -> float | None:
    """Finite floats rounded for output; NaN/inf never reach a table or JSON."""
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


DETAIL_ROWS = 128
"""Smallest batch of the detail kernel: a solve's best plans, closest misses and both Pareto
frontiers (40 points each) fit, so one compiled shape (~2 s to compile) serves every call."""


def padded(flat: np.ndarray) -> np.ndarray:
    """Indices padded (repeating the first) to DETAIL_ROWS or the next power of two, so the
    detail kernel does not recompile whenever the number of reported plans changes."""
    flat = np.asarray(flat, dtype=np.int64)
    size = max(DETAIL_ROWS, 1 << int(len(flat) - 1).bit_length())
    return np.concatenate([flat, np.full(size - len(flat), flat[0], dtype=np.int64)])


def plans_from_indices(grid: Grid, flat: np.ndarray, kernel) -> list[dict[str, Any]]:
    count = len(flat)
    hw, cfg, valid, idx = gather(grid, padded(flat))
    load = Load(*(np.asarray(x, np.float32) for x in grid.load))
    m = kernel(grid.arch, hw, cfg, grid.spec, load, np.float32(grid.draft_weight_bytes), valid)
    m = {k: np.asarray(v) for k, v in m.items()}
    usable = np.asarray(hw.mem_bytes) * float(load.hbm_fraction) / 1e9
    plans = []
    for i in range(count):
        h, c, b, w, k, t, s, p, a = (int(ax[i]) for ax in idx)
        acc = grid.hardware[h]
        dram, nvme = grid.tiers[t]
        ratios = m["ratios"][i]
        lay = grid.layouts[h][c]
        instances = m["replicas"][i]
        plan = {
            "hardware": acc.id,
            "hardware_name": acc.name,
            "chips": int(grid.chips[h, c]),
            "replicas": int(instances / lay.replicas_per_system) if np.isfinite(instances) else None,
            "layout": layout_record(lay, acc),
            "layout_text": layout_words(lay, acc),
            "scale_out": scale_out_record(lay, acc),
            "batch": grid.batch[b],
            "weight_dtype": grid.weight_dtype[w],
            "kv_dtype": grid.kv_dtype[k],
            "tier_split": {"hbm": round(1.0 - dram - nvme, 4), "dram": dram, "nvme": nvme},
            "spec_k": grid.spec_k[s],
            "prefix_cache": bool(grid.prefix_cache[p]),
            "attention": grid.attention[a],
            "ttft_p50_s": _clean(m["ttft_p50_s"][i], 4),
            "ttft_p95_s": _clean(m["ttft_p95_s"][i], 4),
            "tpot_p50_ms": _clean(m["tpot_p50_s"][i] * 1e3, 3),
            "tpot_p95_ms": _clean(m["tpot_p95_s"][i] * 1e3, 3),
            "throughput_tok_s": _clean(m["throughput_tok_s"][i], 2),
            "capacity_rps": _clean(m["capacity_rps"][i], 4),
            "usd_per_hour": _clean(m["fleet_usd_per_hour"][i], 4),
            "usd_per_hour_per_replica": _clean(m["usd_per_hour"][i], 4),
            "usd_per_mtok_input": _clean(m["usd_per_mtok_input"][i], 4),
            "usd_per_mtok_output": _clean(m["usd_per_mtok_output"][i], 4),
            "monthly_usd": _clean(m["fleet_usd_per_hour"][i] * float(load.hours_per_month), 2),
            **_bill_band(m["fleet_usd_per_hour"][i] * float(load.hours_per_month), acc.family),
            "feasible": bool(m["feasible"][i]),
            "supported": bool(valid[i]),
            "binding": BINDING[int(m["binding"][i])],
            "slo_ratios": {name: _clean(r, 4) for name, r in zip(BINDING, ratios, strict=True)},
            "prefix_hit_rate": _clean(m["prefix_hit_rate"][i], 4),
            "tokens_per_step": _clean(m["tokens_per_step"][i], 4),
            "prefill_busy": _clean(m["prefill_busy"][i], 4),
            "memory_gb_per_chip": {
                "weights": _clean(m["weights_gb"][i], 3),
                "kv_hbm": _clean(m["kv_hbm_gb"][i], 3),
                "activations": _clean(m["activations_gb"][i], 3),
                "usable_hbm": _clean(usable[i], 3),
                "kv_dram": _clean(m["kv_dram_gb"][i], 3),
                "kv_nvme": _clean(m["kv_nvme_gb"][i], 3),
                "prefix_cache": _clean(m["prefix_cache_gb"][i], 3),
            },
            "time_per_step_ms": {
                "decode_step": _clean(m["step_s"][i] * 1e3, 3),
                "prefill_mean": _clean(m["prefill_s"][i] * 1e3, 3),
            },
        }
        plans.append(plan)
    return plans


def _bill_band(monthly: float, family: str) -> dict[str, Any]:
    """The bill's uncertainty band: the fleet, and so the bill, scales with the family's time band."""
    band = band_for(family)
    return {"monthly_usd_low": _clean(monthly * band.low, 2), "monthly_usd_high": _clean(monthly * band.high, 2),
            "calibration": "fitted" if band.calibrated else "uncalibrated"}


def layout_record(lay: Layout, acc: Accelerator) -> dict[str, int]:
    """The `layout` object of a plan (keys are a contract: launch-command export reads them)."""
    return {"tp": lay.tp, "pp": lay.pp, "ep": lay.ep, "dp_attention": lay.dp_attention, "cp": lay.cp,
            "replicas_per_system": lay.replicas_per_system, "nodes": lay.nodes(acc.scale_up_domain)}


def scale_out_record(lay: Layout, acc: Accelerator) -> dict[str, Any] | None:
    """The scale-out link a plan relies on (None when one instance stays inside one scale-up domain)."""
    if -(-lay.instance_chips // acc.scale_up_domain) <= 1:
        return None
    gbps, known = scale_out_gbps(acc)
    return {"gbps_per_chip": gbps, "gbit_per_chip": gbps * 8.0, "kind": acc.scale_out_kind, "assumed": not known}


def layout_words(lay: Layout, acc: Accelerator) -> str:
    """`tp4 x ep8 (dp-attention 2), 1 node` or `pp4 over 4 nodes (400 Gb/s NIC per chip)`."""
    parts = [f"{name}{n}" for name, n in (("tp", lay.tp), ("pp", lay.pp), ("ep", lay.ep), ("cp", lay.cp)) if n > 1]
    text = " x ".join(parts) or "1 chip"
    if lay.dp_attention > 1:
        text += f" (dp-attention {lay.dp_attention})"
    if lay.replicas_per_system > 1:
        text = f"{lay.replicas_per_system} replicas of {text}"
    nodes = lay.nodes(acc.scale_up_domain)
    link = scale_out_record(lay, acc)
    if link is None:
        return f"{text}, {nodes} node" + ("s" if nodes > 1 else "")
    assumed = ", assumed" if link["assumed"] else ""
    return f"{text} over {nodes} nodes ({link['gbit_per_chip']:g} Gb/s NIC per chip{assumed})"


def explain_infeasible(plan: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """Why the closest plan on a hardware fails: the most violated constraint and its margin."""
    if not plan["supported"]:
        dtypes = ", ".join(scenario.search.weight_dtype)
        return {"hardware": plan["hardware"], "constraint": "unsupported", "margin": None,
                "reason": f"no searched configuration runs on it (weight dtypes searched: {dtypes}; "
                          "fp4 needs native FP4 support)", "closest": plan}
    ratios = plan["slo_ratios"]
    worst = max(ratios, key=lambda k: ratios[k] if ratios[k] is not None else math.inf)
    ratio = ratios[worst]
    mem = plan["memory_gb_per_chip"]
    if worst == "tpot":
        reason = f"TPOT p95 {_fmt(plan['tpot_p95_ms'])} ms > {scenario.slo.tpot_p95_ms:g} ms at best"
    elif worst == "ttft":
        reason = f"TTFT p95 {_fmt(plan['ttft_p95_s'])} s > {scenario.slo.ttft_p95_s:g} s at best"
    elif worst == "memory":
        need = (mem["weights"] or 0) + (mem["kv_hbm"] or 0) + (mem["activations"] or 0)
        reason = (f"needs {need:.1f} GB per chip > {mem['usable_hbm']:.1f} GB usable at best "
                  f"({plan['chips']} chips, {plan['weight_dtype']} weights)")
    elif worst == "host-memory":
        reason = "offloaded KV exceeds the host DRAM/NVMe available per chip at best"
    elif plan["replicas"] is None:
        reason = ("the SLOs leave no headroom for load: an instance could spend under 1% of its time "
                  "in prefill at best")
    else:
        reason = (f"prefill keeps the instance {100 * (plan['prefill_busy'] or 0):.0f}% busy > "
                  f"{100 * scenario.serving.utilization_max:.0f}% ceiling at best")
    return {"hardware": plan["hardware"], "constraint": worst,
            "margin": None if ratio is None else round(ratio - 1.0, 4), "reason": reason,
            "closest": plan}


def _fmt(x: float | None) -> str:
    return "inf" if x is None else f"{x:,.1f}"
