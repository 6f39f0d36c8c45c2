"""A block-level LRU prefix cache over three tiers: HBM, then host DRAM, then NVMe.

What engines do (vLLM's prefix caching with an offload connector, SGLang HiCache): the KV of a
finished request stays in HBM as reusable blocks keyed by the hash of their prefix; when HBM is
needed the least recently used blocks move down a tier (DRAM, then NVMe) and fall out of the last.
A new request reuses the longest run of its leading blocks found in any tier; blocks found in DRAM or
NVMe are reloaded over the host link (`costs.Costs.prefill_seconds` times that) into HBM. Hit blocks
stay in the cache, shared (concurrent requests of a session, or a system prompt shared by sessions,
use one copy); a running request owns only the KV it computed, which joins the cache when it
finishes. Simplification, stated: blocks in use are not pinned, so under memory pressure LRU could
evict a block a running request reads (it is the most recently used, so this is rare).

A cache may be shared by several instances (a disaggregated plan's host-memory pool: Mooncake
Store, LMCache): each block remembers the instance that wrote it, and `take` counts the DRAM and
NVMe hits another instance holds (`remote`), which cross the scale-out network to be reloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class PrefixCache:
    """LRU over block ids; capacities in blocks (HBM's is set by the engine as active KV grows)."""

    def __init__(self, block_tokens: int, dram_blocks: int = 0, nvme_blocks: int = 0, enabled: bool = True):
        self.block_tokens = int(block_tokens)
        self.enabled = enabled
        self.tiers: tuple[OrderedDict, OrderedDict, OrderedDict] = (OrderedDict(), OrderedDict(), OrderedDict())
        self.capacity = [0, max(int(dram_blocks), 0), max(int(nvme_blocks), 0)]
        self.lookups = 0
        self.hit_blocks = [0, 0, 0]
        self.remote = (0, 0)  # of the last `take`: DRAM and NVMe blocks written by another instance

    @property
    def hbm_blocks(self) -> int:
        return len(self.tiers[0])

    def take(self, prefix: Iterable[int], owner: int = -1) -> tuple[int, int, int]:
        """Blocks of the longest leading run of `prefix` held in the cache, per tier they were found
        in (HBM, DRAM, NVMe). They become the most recently used HBM blocks (DRAM and NVMe hits are
        reloaded into HBM) and stay shared: another request of the session may use them too.
        `owner`: the instance reading; hits written by another one are counted in `remote`."""
        found = [0, 0, 0]
        remote = [0, 0]
        self.lookups += 1
        self.remote = (0, 0)
        if not self.enabled:
            return 0, 0, 0
        hbm, dram, nvme = self.tiers
        for block in prefix:
            if block in hbm:
                hbm.move_to_end(block)
                found[0] += 1
            elif block in dram:
                remote[0] += dram.pop(block) != owner
                hbm[block] = owner
                found[1] += 1
            elif block in nvme:
                remote[1] += nvme.pop(block) != owner
                hbm[block] = owner
                found[2] += 1
            else:
                break
        self.remote = (remote[0], remote[1])
        for i in range(3):
            self.hit_blocks[i] += found[i]
        return found[0], found[1], found[2]

    def put(self, blocks: Iterable[int], owner: int = -1) -> None:
        """A finished request's blocks, most recently used, into HBM (room is made by `fit_hbm`)."""
        if not self.enabled:
            return
        hbm = self.tiers[0]
        for block in blocks:
            hbm[block] = owner
            hbm.move_to_end(block)

    def fit_hbm(self, max_blocks: int) -> None:
        """Shrink HBM to `max_blocks`, demoting its least recently used blocks down the tiers."""
        hbm, dram, nvme = self.tiers
        excess = len(hbm) - max(int(max_blocks), 0)
        for _ in range(max(excess, 0)):
            block, owner = hbm.popitem(last=False)
            if self.capacity[1] > 0:
                dram[block] = owner
            elif self.capacity[2] > 0:
                nvme[block] = owner
        while len(dram) > self.capacity[1]:
            block, owner = dram.popitem(last=False)
            if self.capacity[2] > 0:
                nvme[block] = owner
        while len(nvme) > self.capacity[2]:
            nvme.popitem(last=False)
