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
