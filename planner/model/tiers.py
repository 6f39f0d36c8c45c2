"""Prefix cache across agent turns: which share of a turn's prompt is reloaded instead of recomputed.

A session's next turn resends its whole context; `prefix_reuse` of the prompt is the previous turn's
context. With the cache on, idle sessions' KV is kept (HBM left over first, then host DRAM, then
NVMe). Little's law gives the idle working set: sessions idle at once = turn rate x think time, each
holding its context's KV. Hit rate = (turns - 1) / turns (a session's first turn always misses) x
min(1, capacity / working set). A hit reloads the cached tokens over the tier's link instead of
recomputing them.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

HIT_CURVE_POINTS = 33
HIT_CURVE_TOKENS = np.logspace(2.0, 8.0, HIT_CURVE_POINTS)
"""Cache capacity per concurrent session (tokens) at which a replayed hit-rate curve is tabulated:
100 tokens to 100 M on a log grid (8 points per decade /  ~1.33x apart)."""
_LOG_LO, _LOG_STEP = 2.0, 6.0 / (HIT_CURVE_POINTS - 1)


def curve_hit_rate(curve, capacity_tokens, sessions):
    """Share of prompt tokens an LRU prefix cache of `capacity_tokens` serves to `sessions` concurrent
    sessions, read off a replayed curve by linear interpolation in log capacity per session (the
    cell index is computed, not searched for). Below the grid the curve falls linearly to 0 at 0."""
    per = capacity_tokens / jnp.maximum(sessions, 1e-6)
    pos = (jnp.log10(jnp.maximum(per, 1.0)) - _LOG_LO) / _LOG_STEP
    cell = jnp.clip(jnp.floor(pos), 0, HIT_CURVE_POINTS - 2)
    i = cell.astype(jnp.int32)
    frac = jnp.clip(pos - cell, 0.0, 1.0)
    inside = curve[i] + frac * (curve[i + 1] - curve[i])
    below = curve[0] * jnp.clip(per / HIT_CURVE_TOKENS[0], 0.0, 1.0)
    return jnp.where(pos < 0.0, below, inside)


def prefix_hit_rate(prefix_cache, turns, working_set_bytes, capacity_bytes):
    repeat = (turns - 1.0) / turns
    coverage = jnp.where(working_set_bytes > 0, jnp.minimum(1.0, capacity_bytes / jnp.maximum(working_set_bytes, 1.0)), 1.0)
    return jnp.where(prefix_cache > 0, repeat * coverage, 0.0)


def tier_shares(working_set_bytes, hbm_free, dram_free, nvme_free):
    """Fractions of the cached working set held in HBM, DRAM and NVMe (filled in that order)."""
    ws = jnp.maximum(working_set_bytes, 1.0)
    in_hbm = jnp.minimum(1.0, hbm_free / ws)
    in_dram = jnp.minimum(1.0 - in_hbm, dram_free / ws)
    in_nvme = jnp.minimum(1.0 - in_hbm - in_dram, nvme_free / ws)
    return in_hbm, in_dram, in_nvme


def reload_seconds_per_byte(in_hbm, in_dram, in_nvme, host_bw, dram_bw, nvme_bw):
    """Average seconds per cached byte moved back to HBM (HBM-resident hits cost nothing)."""
    held = jnp.maximum(in_hbm + in_dram + in_nvme, 1e-9)
    per_dram_byte = 1.0 / jnp.maximum(jnp.minimum(host_bw, dram_bw), 1.0)
    per_nvme_byte = 1.0 / jnp.maximum(jnp.minimum(host_bw, nvme_bw), 1.0)
    return (in_dram * per_dram_byte + in_nvme * per_nvme_byte) / held
