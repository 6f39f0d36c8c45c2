"""What a board's power limit lets its matrix units sustain of their rated peak.

Plain Python, not JAX: it is applied once per chip when the catalog becomes arrays
(`planner.lowering`), not inside the kernels, and `planner hardware show` prints it without
importing JAX."""

from __future__ import annotations


def sustained_clock_fraction(power_w: float, full_clock_power_w: float, exponent: float) -> float:
    """Fraction of its rated peak a chip's matrix units sustain under its board power limit.

    A vendor that rates several boards of one die at one peak (AMD: MI300X at 750 W and MI325X at
    1,000 W, both 304 CUs at the same 1,307 dense BF16 TFLOP/s) states the clock the die reaches, not
    the clock a lower-power board holds through dense GEMMs: dynamic power is C V^2 f, so a board
    capped below the power its die draws at the rated clock runs at f / f_rated = (P / P_full)^g,
    with g = 1 where the voltage already sits at its floor and g = 1/3 where it scales with f.
    `full_clock_power_w` = 0 means the chip's own rated peak holds (vendors that rate each board at
    its own clock, as NVIDIA does for H100 SXM / NVL / PCIe)."""
    if full_clock_power_w <= 0:
        return 1.0
    return min(power_w / full_clock_power_w, 1.0) ** exponent


def sustained_peak_fraction(power_w: object, family: object) -> float:
    """The fraction for one catalog chip: 1.0 where its power is unknown or its family states no
    full-clock power (`full_clock_power_w` = 0)."""
    if not isinstance(power_w, int | float):
        return 1.0
    return sustained_clock_fraction(float(power_w), family.full_clock_power_w, family.power_clock_exponent)
