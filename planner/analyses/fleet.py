"""A plan's fleet in a few words, for the analyses' tables and JSON (either serving mode)."""

from __future__ import annotations

from typing import Any


def fleet(p: dict[str, Any]) -> str:
    """`3x8 h100-sxm`, or for a disaggregated plan `P 2x2 gb200 + D 1x4 h200-sxm` (prefill + decode pools)."""
    if p.get("mode") == "disaggregated":
        pre, dec = p["prefill"], p["decode"]
        return f"P {pre['replicas']}x{pre['chips']} {pre['hardware']} + D {dec['replicas']}x{dec['chips']} {dec['hardware']}"
    return f"{p['replicas']}x{p['chips']} {p['hardware']}"
