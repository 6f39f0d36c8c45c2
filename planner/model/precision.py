"""What a mixed-precision checkpoint adds to its weight bytes: the matrices it keeps wider than the
rest (`Arch.params_wider`) are held and read at `Config.dense_weight_bytes`. One definition for the
three places that count weight bytes (memory, the decode step's reads, the per-chip weight stream)."""

from __future__ import annotations

from planner.model.types import Arch


def wider_extra_bytes(a: Arch, weight_bytes, dense_bytes):
    """Bytes the kept-wider matrices add over pricing every matrix at `weight_bytes`; exactly 0
    where the two dtypes are alike, and 0 without a second dtype (`dense_bytes` None)."""
    return 0.0 if dense_bytes is None else a.params_wider * (dense_bytes - weight_bytes)
