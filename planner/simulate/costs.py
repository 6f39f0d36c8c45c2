"""Step and prefill times from the cost model itself (one source of truth for the hardware).

The simulator calls the very functions the search calls (`speculative.speculative_step`,
`prefill.prefill_time`, `offline.reload_seconds`, `memory.*`), executed by the model's numpy twin
(`planner/model/numpy_reference.py`: the same source files with `jnp` bound to numpy), so no jit, no
compile, and float64. Calling them once per simulated step would cost ~0.3 ms each; instead:
- the decode (or speculative verify) step depends only on (running sequences b, their mean context
  c), as in the model. It is tabulated once, exactly, for every integer b up to the plan's batch on a
  context grid that contains every kink of the attention terms (window spans, reaches, top-k x ratio),
  and read by linear interpolation in c: the model is piecewise linear in c between those kinks, so
  the table reproduces it (to rounding) wherever the larger of its maxima does not switch inside a cell;
- a request's prefill (`prefill_time(new, cached)` plus the reload of its cached tokens) is one twin
  call per request, vectorised over all requests admitted in a batch of events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.model.numpy_reference import twin
from planner.model.types import Config
from planner.simulate.plan import Pool

GRID_POINTS = 384
TIER_DRAM, TIER_NVME = 1.0, 2.0  # planner.model.offline's tier codes


def _kinks(arch, cap: float) -> list[float]:
    """Contexts where the attention terms change slope (window span, reach, top-k x ratio)."""
    out = []
    for term in ("main", "local", "aux"):
        if float(getattr(arch, f"{term}_elems")) <= 0:
            continue
        ratio = float(getattr(arch, f"{term}_ratio"))
        for value in (float(getattr(arch, f"{term}_span")), float(getattr(arch, f"{term}_reach")),
                      float(getattr(arch, f"{term}_topk")) * ratio):
            if np.isfinite(value) and 1.0 < value < cap:
                out.append(value)
    return out


def context_grid(arch, cap: float, points: int = GRID_POINTS) -> np.ndarray:
    cap = max(float(cap), 2.0)
    grid = np.concatenate([[0.0, 1.0], np.geomspace(1.0, cap, points), _kinks(arch, cap)])
    return np.unique(grid)


@dataclass(frozen=True)
class StepTable:
    """Seconds of one decode/verify step for b running sequences (row b) at mean context (column)."""

    contexts: np.ndarray  # [G]
    seconds: np.ndarray  # [B + 1, G]; row 0 is unused (no decode, no step)

    def step(self, batch: int, context) -> np.ndarray:
        return np.interp(context, self.contexts, self.seconds[batch])


class Costs:
    """The cost model of one pool, as the simulator needs it."""

    def __init__(self, pool: Pool, max_context: float, hbm_fraction: float, reserve_context: float):
        m = twin()
        self.pool = pool
        a, hw, cfg, spec = pool.arch, pool.hw, pool.cfg, pool.spec
        self.batch = int(cfg.batch)
        self.spec_k = int(cfg.spec_k)
        grid = context_grid(a, max_context)
        rows = np.arange(self.batch + 1, dtype=np.float64)[:, None]
        batched = cfg._replace(batch=np.maximum(rows, 1.0))
        seconds, _ = m["speculative"].speculative_step(a, hw, batched, spec, np.maximum(rows, 1.0), grid[None, :])
        self.table = StepTable(grid, np.broadcast_to(seconds, (self.batch + 1, grid.size)).copy())
        self._m = m
        # KV bytes per token on one chip at a typical session length (fixed SSM states amortised), as
        # the analytic prefix cache counts it; the draft model's KV rides along
        chip_share = float(m["layouts"].kv_share_per_chip(a, hw, cfg))
        ctx = max(reserve_context, 1.0)
        per_token = float(m["memory"].kv_elems_per_seq(a, ctx)) / ctx * float(cfg.kv_bytes) * chip_share
        per_token += float(spec.draft_kv_elems) * float(cfg.kv_bytes) / float(cfg.chips)
        self.kv_bytes_per_token_chip = per_token
        mem = m["memory"].memory_per_chip(a, hw, cfg, np.float64(reserve_context), pool.draft_weight_bytes,
                                          spec.draft_kv_elems)
        usable = float(hw.mem_bytes) * hbm_fraction
        self.free_hbm_bytes = max(usable - float(mem["weights"]) - float(mem["activations"])
                                  - float(mem["attn_scores"]), 0.0)
        self.hbm_share = float(np.clip(1.0 - cfg.dram_frac - cfg.nvme_frac, 0.0, 1.0))
        self.kv_tokens_hbm = self.free_hbm_bytes / per_token if per_token > 0 else np.inf
        self.dram_tokens = float(hw.dram_bytes) / per_token if per_token > 0 else 0.0
        self.nvme_tokens = float(hw.nvme_bytes) / per_token if per_token > 0 else 0.0
        self.chunk_tokens = int(m["memory"].prefill_chunk_tokens(a, hw, cfg))

    def acceptance(self, context) -> np.ndarray:
        return self._m["speculative"].acceptance(self.pool.spec, np.asarray(context, dtype=np.float64))

    def prefill_seconds(self, new, cached_hbm, cached_dram, cached_nvme, remote_dram=0.0, remote_nvme=0.0) -> np.ndarray:
        """Seconds to prefill each request (arrays): `prefill_time(new, cached)` after the cached
        prefix, plus reloading the DRAM and NVMe parts of it (HBM hits cost nothing), exactly as
        `planner eval` times a request with `cached_tokens` (planner/model/offline.py). `remote_*`:
        the tokens of those parts held in another instance's host memory (a shared pool), reloaded
        over the slower of the host link and the scale-out network (as model.disagg.prefill_pool)."""
        m, p = self._m, self.pool
        new = np.asarray(new, dtype=np.float64)
        cached = (np.asarray(cached_hbm, dtype=np.float64) + np.asarray(cached_dram, dtype=np.float64)
                  + np.asarray(cached_nvme, dtype=np.float64))
        one: Config = p.cfg._replace(batch=np.float64(1.0))
        t = m["prefill"].prefill_time(p.arch, p.hw, one, new, cached)
        remote_hw = p.hw._replace(host_bw=np.minimum(p.hw.host_bw, p.hw.scale_out_bw))
        for tokens, remote, tier in ((cached_dram, remote_dram, TIER_DRAM), (cached_nvme, remote_nvme, TIER_NVME)):
            tokens = np.asarray(tokens, dtype=np.float64)
            remote = np.minimum(np.asarray(remote, dtype=np.float64), tokens)
            if np.any(tokens > remote):
                t = t + np.where(tokens > remote, m["offline"].reload_seconds(p.arch, p.hw, one, tokens - remote, tier), 0.0)
            if np.any(remote > 0):
                t = t + np.where(remote > 0, m["offline"].reload_seconds(p.arch, remote_hw, one, remote, tier), 0.0)
        return np.broadcast_to(t, np.broadcast_shapes(new.shape, cached.shape)).astype(np.float64)

    def transfer_seconds(self, tokens, prefill_s, transfer) -> tuple[np.ndarray, np.ndarray]:
        """(whole, visible in TTFT) seconds of shipping `tokens` tokens of prompt KV to the decode pool
        (model.disagg: bytes at this pool's KV dtype over the pair's link; layer by layer, only what
        outlasts the prefill shows)."""
        d = self._m["disagg"]
        whole = d.transfer_seconds(self.pool.arch, np.asarray(tokens, dtype=np.float64), self.pool.cfg.kv_bytes,
                                   np.float64(transfer.bandwidth))
        visible = d.visible_transfer(self.pool.arch, whole, np.asarray(prefill_s, dtype=np.float64),
                                     np.float64(1.0 if transfer.layerwise else 0.0))
        return np.asarray(whole, dtype=np.float64), np.asarray(visible, dtype=np.float64)
