"""What a mixed-precision checkpoint adds to its weight bytes: the matrices it keeps wider than the
rest (`Arch.params_wider`) are held and read at `Config.dense_weight_bytes`, its LM head at
`Config.head_weight_bytes`. One definition each for the places that count weight bytes (memory,
the prefill and decode steps' reads, the per-chip weight stream)."""

from __future__ import annotations

from planner.model.types import Arch, Config


def wider_extra_bytes(a: Arch, weight_bytes, dense_bytes):
    """Bytes the kept-wider matrices add over pricing every matrix at `weight_bytes`; exactly 0
    where the two dtypes are alike, and 0 without a second dtype (`dense_bytes` None)."""
    return 0.0 if dense_bytes is None else a.params_wider * (dense_bytes - weight_bytes)


def lm_head_bytes(a: Arch, cfg: Config):
    """Bytes of the output projection, held once per replica and read in full by every forward pass
    (logits of every sequence's last position): 16-bit in most checkpoints, which leave it out of
    their quantisation; 4-bit in a few (NVIDIA's Qwen3.6 NVFP4 exports, where it is ~8 % of the
    27B's weights and ~5 % of the 35B-A3B's)."""
    return a.params_lm_head * cfg.head_weight_bytes
