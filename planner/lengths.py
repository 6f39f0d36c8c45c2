"""Token-length distributions: the capped log-normal a scenario's `median` and `p90` (or `mean`) describe.

Every consumer (the screen's load arrays, the truncation warning, the synthetic simulator, the trace
note) takes the shape `sigma` from here, so a length written with a mean is the same distribution
everywhere. Pure functions of scenario numbers; no JAX.

A mean is what operators usually know (tokens billed / requests); the screen sizes prefill work,
decode work, slot occupancy and $/Mtok by it. Fitted through the median and p90, a heavy-tailed
trace's mean can be missed (Claude Code outputs: 401 against 440 tokens).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from planner.errors import InputFileError

Z90 = NormalDist().inv_cdf(0.9)
SIGMA_MAX = 6.0  # a shape beyond this (p99/p50 > 10^6) describes no real length distribution
_SCAN = 600  # sigma steps searched for the first one whose capped mean reaches the target


class LengthFitError(InputFileError):
    """A mean no log-normal with that median and cap can have (bad input: exit 2, one line)."""


def lognormal_sigma(median: float, p90: float | None) -> float:
    """Shape through the median and p90 (0: every length is the median)."""
    return 0.0 if p90 is None or p90 <= median else math.log(p90 / median) / Z90


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def lognormal_mean(median: float, sigma: float, cap: float) -> float:
    """Mean of a log-normal truncated at `cap` (mass above the cap sits at the cap)."""
    if sigma == 0.0:
        return min(median, cap)
    mu = math.log(median)
    z = (math.log(cap) - mu) / sigma
    below = math.exp(mu + sigma**2 / 2.0) * _phi(z - sigma)
    return below + cap * (1.0 - _phi(z))


def lognormal_second_moment(median: float, sigma: float, cap: float) -> float:
    """E[min(X, cap)^2] of a log-normal truncated at `cap` (mass above the cap sits at the cap)."""
    if sigma == 0.0:
        return min(median, cap) ** 2
    mu = math.log(median)
    z = (math.log(cap) - mu) / sigma
    below = math.exp(2.0 * mu + 2.0 * sigma**2) * _phi(z - 2.0 * sigma)
    return below + cap**2 * (1.0 - _phi(z))


def running_output(median: float, sigma: float, cap: float) -> float:
    """Tokens a running sequence has generated, on average over the sequences in flight. A request
    stays in the batch for as many steps as it generates, so the batch holds long replies in
    proportion to their length (length-biased sampling, the inspection paradox): a running
    sequence is at a uniform point of a reply drawn with weight o, E[o^2] / (2 E[o]) tokens in, not
    E[o] / 2. For reasoning replies (median 8,000, p90 20,000, cap 32,768) that is 7,550 tokens, not
    5,020; for a fixed length both are o / 2."""
    mean = lognormal_mean(median, sigma, cap)
    return lognormal_second_moment(median, sigma, cap) / (2.0 * mean) if mean > 0 else 0.0


def sigma_for_mean(median: float, mean: float, cap: float) -> float:
    """The smallest shape whose log-normal, capped at `cap`, has this mean. The capped mean grows
    with sigma from the median, peaks, then falls towards cap / 2 as the mass splits between ~0
    and the cap, so the first crossing is taken (scan, then bisection). Raises LengthFitError when
    the mean is below the median or beyond the largest capped mean."""
    median, cap = float(median), float(max(cap, median))
    if mean <= median:
        if mean < median:
            raise LengthFitError(f"mean {mean:,.0f} is below the median {median:,.0f}; a log-normal's mean is at "
                                 "least its median (give p90 instead, or a mean >= median)")
        return 0.0
    lo, best = 0.0, median
    for i in range(1, _SCAN + 1):
        hi = SIGMA_MAX * i / _SCAN
        m = lognormal_mean(median, hi, cap)
        if m >= mean:
            for _ in range(50):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if lognormal_mean(median, mid, cap) < mean else (lo, mid)
            return hi
        best = max(best, m)
        lo = hi
    raise LengthFitError(f"mean {mean:,.0f} is beyond what a log-normal with median {median:,.0f} capped at "
                         f"{cap:,.0f} tokens can reach (at most {best:,.0f}); lower the mean or raise max")


def served_cap(max_tokens: int | None, window: int | float) -> float:
    """The longest length served: the scenario's `max`, never beyond the model's context window."""
    return float(min(max_tokens or window, window))


def length_sigma(median: float, p90: float | None, mean: float | None, cap: float, field: str = "") -> float:
    """The shape of a length written with a p90 or a mean (the schema allows one of them); an
    unreachable mean names `field` (e.g. `workload.output_tokens.mean`)."""
    if mean is None:
        return lognormal_sigma(median, p90)
    try:
        return sigma_for_mean(median, mean, cap)
    except LengthFitError as exc:
        raise LengthFitError(f"{field}: {exc}" if field else str(exc)) from None


LENGTH_TABLES = ("workload.input_tokens", "workload.output_tokens")
SHAPES = ("p90", "mean")


def other_shape(path: str) -> str | None:
    """For a dotted path that sets one length's p90 (or mean), the path of the other shape field,
    which an edit of this one replaces (a log-normal has one shape: `--set ...mean=440` on a file
    with a p90 means the mean now shapes it). None for any other path."""
    table, _, name = path.rpartition(".")
    if table in LENGTH_TABLES and name in SHAPES:
        return f"{table}.{SHAPES[1 - SHAPES.index(name)]}"
    return None
