"""Plan rows: the user-facing record of one configuration (what `solve` prints and exports)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from planner.grid import AXES, Grid, Layout, gather, gather_spec
from planner.lowering import scale_out_gbps
from planner.model.types import Load
from planner.quality import four_bit_note
from planner.render import figure, spec_words
from planner.schema import Accelerator, ModelSpec, Scenario
from planner.tco import plan_cost_fields
from planner.uncertainty import band_for

# `planner.model.serving.BINDING` (the order of the kernel's `ratios`), restated so that a warm
# solve, which loads its kernels already compiled, need not import the model (an eager jnp op
# at its import costs a compile); tests/test_executables.py checks that the two agree.
BINDING = ("ttft", "tpot", "memory", "host-memory", "utilisation")
MIN_PREFILL_LOAD = 0.01  # planner.model.serving.MIN_PREFILL_LOAD, restated for the same reason


def _clean(x: float, digits: int = 6) -> float | None:
    """Finite floats rounded for output; NaN/inf never reach a table or JSON."""
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def rate_headroom(sized_rps: float | None, rate: float) -> float | None:
    """How far over the scenario's arrival rate a plan was sized (0.06: +6 %); None where unknown."""
    return None if sized_rps is None or rate <= 0 else _clean(float(sized_rps) / rate - 1.0, 4)


def plans_from_indices(grid: Grid, flat: np.ndarray, kernel) -> list[dict[str, Any]]:
    count = len(flat)
    hw, cfg, valid, idx = gather(grid, np.asarray(flat, dtype=np.int64))
    spec, draft_bytes = gather_spec(grid, idx)
    load = Load(*(np.asarray(x, np.float32) for x in grid.load))
    m = kernel(grid.arch, hw, cfg, spec, load, draft_bytes, valid)
    m = {k: np.asarray(v) for k, v in m.items()}
    usable = np.asarray(hw.mem_bytes) * float(load.hbm_fraction) / 1e9
    plans = []
    for i in range(count):
        at = {name: int(ax[i]) for name, ax in zip(AXES, idx, strict=True)}
        h, c, b, w, k = at["hardware"], at["layout"], at["batch"], at["weight_dtype"], at["kv_dtype"]
        t, s, p, a = at["tier"], at["spec_k"], at["prefix_cache"], at["attention"]
        acc = grid.hardware[h]
        dram, nvme = grid.tiers[t]
        ratios = m["ratios"][i]
        lay = grid.layouts[h][c]
        instances = m["replicas"][i]
        systems = int(instances / lay.replicas_per_system) if np.isfinite(instances) else None
        plan = {
            "mode": "aggregated",
            "hardware": acc.id,
            "hardware_name": acc.name,
            "chips": int(grid.chips[h, c]),
            "replicas": systems,
            **layout_fields(lay, acc),
            "batch": grid.batch[b],
            "weight_dtype": grid.weight_dtype[w],
            "kv_dtype": grid.kv_dtype[k],
            "tier_split": {"hbm": round(1.0 - dram - nvme, 4), "dram": dram, "nvme": nvme},
            "memory_kind": "HBM" if acc.hbm_gb > 0 else "SRAM",  # where weights and KV live on the chip
            "spec_k": grid.spec_k[s],
            "spec_method": grid.spec_method[s] if grid.spec_method else "none",
            "prefix_cache": bool(grid.prefix_cache[p]),
            "attention": grid.attention[a],
            "ttft_p50_s": _clean(m["ttft_p50_s"][i], 4),
            "ttft_p95_s": _clean(m["ttft_p95_s"][i], 4),
            "tpot_p50_ms": _clean(m["tpot_p50_s"][i] * 1e3, 3),
            "tpot_p95_ms": _clean(m["tpot_p95_s"][i] * 1e3, 3),
            # per replica (one instance): its output tokens/s and the arrival rate it takes within
            # the SLOs; the fleet's are served_output_tok_s and sized_rps, as usd_per_hour is the fleet's
            "throughput_tok_s": _clean(m["throughput_tok_s"][i], 2),
            "capacity_rps": _clean(m["capacity_rps"][i], 4),
            "served_output_tok_s": _clean(float(load.arrival_rps) * float(load.out_mean), 2),
            "sized_rps": _clean(m["sized_rps"][i], 4),
            "rate_headroom": rate_headroom(m["sized_rps"][i], float(load.arrival_rps)),
            "usd_per_hour": _clean(m["fleet_usd_per_hour"][i], 4),
            "usd_per_hour_per_replica": _clean(m["usd_per_hour"][i], 4),
            "host_memory_usd_month": _clean(m["host_usd_per_hour"][i] * float(load.hours_per_month), 2),
            "usd_per_mtok_input": _clean(m["usd_per_mtok_input"][i], 4),
            "usd_per_mtok_output": _clean(m["usd_per_mtok_output"][i], 4),
            "monthly_usd": _clean(m["fleet_usd_per_hour"][i] * float(load.hours_per_month), 2),
            **_bill_band(m["fleet_usd_per_hour"][i] * float(load.hours_per_month), acc.family, systems,
                         float(m["sized_rps"][i]), float(load.arrival_rps)),
            "quality_note": four_bit_note(grid.weight_dtype[w], grid.kv_dtype[k], grid.model.weight_dtype_published,
                                          grid.model.kept_wider()),
            "feasible": bool(m["feasible"][i]),
            "supported": bool(valid[i]),
            "binding": BINDING[int(m["binding"][i])],
            "slo_ratios": {name: _clean(r, 4) for name, r in zip(BINDING, ratios, strict=True)},
            "prefix_hit_rate": _clean(m["prefix_hit_rate"][i], 4),
            "tokens_per_step": _clean(m["tokens_per_step"][i], 4),
            "prefill_busy": _clean(m["prefill_busy"][i], 4),
            "max_prefill_load": _clean(m["max_prefill_load"][i], 5),
            "memory_gb_per_chip": {
                "weights": _clean(m["weights_gb"][i], 3),
                "kv_hbm": _clean(m["kv_hbm_gb"][i], 3),
                "activations": _clean(m["activations_gb"][i], 3),
                "usable_hbm": _clean(usable[i], 3),
                "kv_dram": _clean(m["kv_dram_gb"][i], 3),
                "kv_nvme": _clean(m["kv_nvme_gb"][i], 3),
                "prefix_cache": _clean(m["prefix_cache_gb"][i], 3),
                "prefix_cache_held": _clean(m["prefix_cache_held_gb"][i], 3),
                "prefix_cache_host": _clean(m["prefix_cache_host_gb"][i], 3),
            },
            "time_per_step_ms": {
                "decode_step": _clean(m["step_s"][i] * 1e3, 3),
                "prefill_mean": _clean(m["prefill_s"][i] * 1e3, 3),
            },
        }
        plan.update(plan_cost_fields(acc, grid.scenario, plan["replicas"], plan["chips"],
                                     _clean(m["power_draw"][i], 4)))
        plans.append(plan)
    return plans


def _bill_band(monthly: float, family: str, systems: int | None = None, sized_rps: float | None = None,
               rate: float | None = None) -> dict[str, Any]:
    """The bill's uncertainty band, in whole systems: if the hardware's times are the family's p10 /
    p90 ratio of the predicted ones, each system sustains that much more / less of the rate it was
    sized for, and the fleet needs ceil(rate x ratio / per-system rate) systems, never fewer than one.
    Scaling the bill by the ratio instead read a one-system pool at p10 below its own rent, and at
    p90 hid that the next step is a second system. Without the sizing (a pool with no rate) the
    bill scales with the ratio."""
    band = band_for(family)
    low, high = monthly * band.low, monthly * band.high
    if systems and sized_rps and rate and np.isfinite(monthly) and sized_rps > 0 and rate > 0:
        per_system = sized_rps / systems

        def needed(ratio: float) -> int:
            return max(1, math.ceil(rate * ratio / per_system - 1e-6))

        base = needed(1.0)
        low, high = monthly * needed(band.low) / base, monthly * needed(band.high) / base
    return {"monthly_usd_low": _clean(low, 2), "monthly_usd_high": _clean(high, 2),
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


def layout_fields(lay: Layout, acc: Accelerator) -> dict[str, Any]:
    """A plan's `layout`, `layout_text` and `scale_out` keys, as every plan row carries them (solve's
    plans, both pools of a disaggregated plan, eval's rows)."""
    return {"layout": layout_record(lay, acc), "layout_text": layout_words(lay, acc),
            "scale_out": scale_out_record(lay, acc)}


def degrees_words(layout: dict[str, int]) -> str:
    """The parallel degrees of a `layout_record`: `tp4 x ep8 (dp-attention 2)`, `2 replicas of tp4`."""
    parts = [f"{name}{layout[name]}" for name in ("tp", "pp", "ep", "cp") if layout[name] > 1]
    text = " x ".join(parts) or "1 chip"
    if layout["dp_attention"] > 1:
        text += f" (dp-attention {layout['dp_attention']})"
    if layout["replicas_per_system"] > 1:
        text = f"{layout['replicas_per_system']} replicas of {text}"
    return text


def layout_words(lay: Layout, acc: Accelerator) -> str:
    """`tp4 x ep8 (dp-attention 2), 1 node` or `pp4 over 4 nodes (400 Gb/s NIC per chip)`."""
    text = degrees_words(layout_record(lay, acc))
    nodes = lay.nodes(acc.scale_up_domain)
    link = scale_out_record(lay, acc)
    if link is None:
        return f"{text}, {nodes} node" + ("s" if nodes > 1 else "")
    assumed = ", assumed" if link["assumed"] else ""
    return f"{text} over {nodes} nodes ({link['gbit_per_chip']:g} Gb/s NIC per chip{assumed})"


def explain_infeasible(plan: dict[str, Any], scenario: Scenario, accelerator: Any = None) -> dict[str, Any]:
    """Why the closest plan on a hardware fails: the most violated constraint, in real units.

    Latencies of a plan without load headroom are its zero-load ones, so a TPOT that no number of
    replicas can reach reads as TPOT, not as utilisation. `margin` is the fractional excess
    (value / limit - 1; for the load floor, 1 - value / limit); `value`, `limit` and `unit` give
    the same in the constraint's own units. `reason` is one sentence naming the closest plan.
    """
    if not plan["supported"]:
        dtypes = ", ".join(scenario.search.weight_dtype)
        return {"hardware": plan["hardware"], "constraint": "unsupported", "margin": None,
                "value": None, "limit": None, "unit": None,
                "reason": f"no searched configuration runs on it (weight dtypes searched: {dtypes}; "
                          "fp4 needs native FP4 support)", "closest": plan}
    ratios = plan["slo_ratios"]
    worst = max(ratios, key=lambda k: ratios[k] if ratios[k] is not None else math.inf)
    ratio = ratios[worst]
    value, limit, unit, reason = _measure(worst, plan, scenario, accelerator)
    if value is not None and limit:
        # how far from the limit, relative to it: above a ceiling, or below the load floor
        margin = 1.0 - value / limit if unit == HEADROOM_UNIT else value / limit - 1.0
    else:
        margin = None if ratio is None else ratio - 1.0
    return {"hardware": plan["hardware"], "constraint": worst,
            "margin": None if margin is None else round(margin, 4),
            "value": value, "limit": limit, "unit": unit,
            "reason": f"{reason} ({closest_words(plan)})", "closest": plan}


HEADROOM_UNIT = "% prefill load"  # the one constraint whose value must stay *above* its limit


def closest_words(plan: dict[str, Any]) -> str:
    """The closest plan in a few words: where it was measured."""
    words = (f"closest: {plan['chips']} chip{'s' if plan['chips'] != 1 else ''}, {plan['weight_dtype']}/"
             f"{plan['kv_dtype']}, speculation {spec_words(plan)}")
    t = plan["tier_split"]
    if t["dram"] or t["nvme"]:
        words += f", KV HBM/DRAM/NVMe {t['hbm']:.0%}/{t['dram']:.0%}/{t['nvme']:.0%}"
    return words


def _measure(worst: str, plan: dict[str, Any], scenario: Scenario, acc: Any
             ) -> tuple[float | None, float | None, str | None, str]:
    """(value, limit, unit, sentence) of the constraint `worst` on `plan`."""
    batch = plan["batch"]
    mem = plan["memory_gb_per_chip"]
    if worst == "tpot":
        v, lim = plan["tpot_p95_ms"], scenario.slo.tpot_p95_ms
        return v, lim, "ms", f"TPOT p95 {_fmt(v, 2)} ms at batch {batch} vs {lim:g} ms"
    if worst == "ttft":
        v, lim = plan["ttft_p95_s"], scenario.slo.ttft_p95_s
        return v, lim, "s", f"TTFT p95 {_fmt(v, 2)} s at batch {batch} vs {lim:g} s"
    if worst == "memory":
        need = (mem["weights"] or 0) + (mem["kv_hbm"] or 0) + (mem["activations"] or 0)
        lim = mem["usable_hbm"]
        return (round(need, 3), lim, "GB/chip",
                f"needs {figure(need)} GB per chip at batch {batch} vs {'n/a' if lim is None else figure(lim)} GB usable")
    if worst == "host-memory":
        dram, nvme = mem["kv_dram"] or 0.0, mem["kv_nvme"] or 0.0
        have_dram = getattr(acc, "host_dram_gb_per_chip", None) or 0.0
        have_nvme = getattr(acc, "nvme_gb_per_chip", None) or 0.0
        dram_r = dram / have_dram if have_dram else (math.inf if dram else 0.0)
        nvme_r = nvme / have_nvme if have_nvme else (math.inf if nvme else 0.0)
        tier, v, lim = ("DRAM", dram, have_dram) if dram_r >= nvme_r else ("NVMe", nvme, have_nvme)
        if not lim:
            return round(v, 3), 0.0, "GB/chip", f"offloaded KV needs {v:.1f} GB of host {tier} per chip; none listed"
        return (round(v, 3), lim, "GB/chip",
                f"offloaded KV needs {v:.1f} GB of host {tier} per chip at batch {batch} vs {lim:g} GB")
    headroom = plan.get("max_prefill_load")
    if plan["replicas"] is None and headroom is not None:
        floor = 100 * MIN_PREFILL_LOAD
        return (round(100 * max(headroom, 0.0), 3), floor, HEADROOM_UNIT,
                f"the SLOs leave {100 * max(headroom, 0.0):.2f}% prefill load per instance at batch {batch} "
                f"(TTFT p95 {_fmt(plan['ttft_p95_s'], 2)} s, TPOT p95 {_fmt(plan['tpot_p95_ms'], 2)} ms at "
                f"zero load) vs the {floor:g}% an instance must carry")
    busy, ceiling = 100 * (plan["prefill_busy"] or 0), 100 * scenario.serving.utilization_max
    return (round(busy, 2), ceiling, "% busy",
            f"prefill keeps the instance {busy:.0f}% busy at batch {batch} vs the {ceiling:.0f}% ceiling")


def _fmt(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def layout(plan: dict[str, Any], model: ModelSpec, domain: int) -> dict[str, int]:
    """The parallel layout of a plan: the plan row's `layout` object when it has one (keys tp, pp,
    ep, dp_attention, cp, replicas_per_system, nodes), else today's rule (planner/model/README.md):
    tp = min(chips, domain, clip(kv_heads, 8, 16)), pp = chips / tp, the others 1."""
    if isinstance(plan.get("layout"), dict):
        return plan["layout"]
    chips = plan["chips"]
    tp = max(1, min(chips, domain, min(max(model.kv_heads, 8), 16)))
    return {"tp": tp, "pp": max(1, chips // tp), "ep": 1, "dp_attention": 1, "cp": 1,
            "replicas_per_system": max(1, domain // chips) if chips <= domain else 1,
            "nodes": -(-chips // domain)}
