"""Prefix cache across agent turns: which share of a turn's prompt is reloaded instead of recomputed.

A session's next turn resends its whole context; `prefix_reuse` of the prompt is reusable. With the
cache on, KV of sessions between turns is kept (HBM left over first, then host DRAM, then NVMe).
How much of the reusable prefix an LRU cache of a given size still holds is read off a hit-rate
curve replayed from real traces (planner/traces): from the scenario's own trace, or the bundled
Claude Code curve rescaled to the scenario's context (planner/data/hit_curves.toml). The earlier
closed form `(turns-1)/turns x min(1, capacity / working set)` is gone: replays hit far more at a
small cache (LRU keeps the sessions that come back soonest; see the README's comparison).
A hit reloads the cached tokens over the tier's link instead of recomputing them.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

HIT_CURVE_POINTS = 33
HIT_CURVE_TOKENS = np.logspace(2.0, 8.0, HIT_CURVE_POINTS)
"""Cache capacity per session in flight (tokens) at which a hit-rate curve is tabulated, for a pool of
HIT_CURVE_REF_SESSIONS sessions: 100 tokens to 100 M on a log grid (about 1.54x apart)."""
HIT_CURVE_SESSIONS = np.array([4.0, 16.0, 64.0, 256.0])
"""Sessions in flight sharing one cache at which traces are replayed (planner/traces/curve.py)."""
HIT_CURVE_REF_SESSIONS = 16.0
_LOG_LO, _LOG_STEP = 2.0, 6.0 / (HIT_CURVE_POINTS - 1)
_LOG_REF = float(np.log10(HIT_CURVE_REF_SESSIONS))


def curve_hit_rate(curve, pool_exponent, capacity_tokens, sessions):
    """Share of the reusable prompt tokens an LRU prefix cache of `capacity_tokens` serves to
    `sessions` sessions in flight. At the same capacity per session a larger pool hits more (sessions
    differ in size, and LRU lends one's space to another): replays at 4..256 sessions collapse onto
    one curve when capacity per session is scaled by (sessions / 16)^pool_exponent (fitted per trace,
    ~0.3). So the model reads a 1-D table at log10(capacity / sessions) + pool_exponent x
    log10(sessions / 16): one gather of a (value, next value) pair per configuration (a 2-D bilinear
    read cost 4x as much). Below the grid the curve falls to 0 over one grid step (65 tokens per session)."""
    return _curve_reader(curve, pool_exponent, sessions)(capacity_tokens)


def _curve_reader(curve, pool_exponent, sessions):
    """`curve_hit_rate` at any capacity for these sessions: the sessions' terms and the table of
    neighbouring pairs are computed once for every capacity read (`tier_hits` reads three)."""
    log_sessions = jnp.log10(jnp.maximum(sessions, 1e-6))
    pool_term = pool_exponent * (log_sessions - _LOG_REF)
    pairs = jnp.stack([curve[:-1], curve[1:]], axis=-1)  # [cells, 2]: one gather reads both ends

    def read(capacity_tokens):
        u = jnp.log10(jnp.maximum(capacity_tokens, 1e-30)) - log_sessions + pool_term
        pos = (u - _LOG_LO) / _LOG_STEP
        cell = jnp.clip(jnp.floor(pos), 0, HIT_CURVE_POINTS - 2)
        ends = pairs[cell.astype(jnp.int32)]
        lo = ends[..., 0]
        inside = lo + jnp.clip(pos - cell, 0.0, 1.0) * (ends[..., 1] - lo)
        below = curve[0] * jnp.clip(pos + 1.0, 0.0, 1.0)  # to 0 one grid step below the table (no power)
        return jnp.where(pos < 0.0, below, inside)

    return read


def tier_shares(working_set_bytes, hbm_free, dram_free, nvme_free):
    """Fractions of the cached working set held in HBM, DRAM and NVMe (filled in that order)."""
    ws = jnp.maximum(working_set_bytes, 1.0)
    in_hbm = jnp.minimum(1.0, hbm_free / ws)
    in_dram = jnp.minimum(1.0 - in_hbm, dram_free / ws)
    in_nvme = jnp.minimum(1.0 - in_hbm - in_dram, nvme_free / ws)
    return in_hbm, in_dram, in_nvme


def tier_hits(curve, pool_exponent, hbm_tokens, fast_tokens, all_tokens, sessions):
    """(hit rate of the whole cache, and the shares of its hits served from HBM, DRAM and NVMe), for
    capacities in tokens: HBM, HBM + DRAM (`fast_tokens`) and all three (`all_tokens`). An LRU
    hierarchy keeps the most recently used sessions in the fastest tier and demotes the coldest
    (HiCache, LMCache; planner/simulate/prefix_cache.py replays exactly that), so a tier serves the
    hits its capacity adds on top of the faster tiers' (the hit curve's increments in that order),
    not a share of the hits in proportion to the bytes it holds: NVMe added behind DRAM only adds
    hits (the slowest) and never slows the ones DRAM already served."""
    read = _curve_reader(curve, pool_exponent, sessions)
    h_hbm, h_fast, h_all = read(hbm_tokens), read(fast_tokens), read(all_tokens)
    total = jnp.maximum(h_all, 1e-12)
    return h_all, h_hbm / total, jnp.maximum(h_fast - h_hbm, 0.0) / total, jnp.maximum(h_all - h_fast, 0.0) / total


def reload_seconds_per_byte(in_hbm, in_dram, in_nvme, host_bw, host_link_eff, dram_bw, nvme_bw):
    """Average seconds per cached byte moved back to HBM (HBM-resident hits cost nothing): over the
    host link at its fitted DMA efficiency, as `offline.reload_seconds` times one request's reload
    (what `planner eval` and the simulator charge; the screen had taken the link's peak, 1.48x faster
    on Hopper), and no faster than the tier the bytes come from."""
    held = jnp.maximum(in_hbm + in_dram + in_nvme, 1e-9)
    link = host_bw * host_link_eff
    per_dram_byte = 1.0 / jnp.maximum(jnp.minimum(link, dram_bw), 1.0)
    per_nvme_byte = 1.0 / jnp.maximum(jnp.minimum(link, nvme_bw), 1.0)
    return (in_dram * per_dram_byte + in_nvme * per_nvme_byte) / held
