"""The queueing forms of the serving screen (planner/model/queueing.py) against direct simulation
and exact formulas: M/G/1 waits (Kingman's form) against a Lindley recursion, the slot limit against
Erlang C, and the closed-form roots against the conditions they solve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.model import queueing as q

Z95 = 1.6448536269514722


def lindley_waits(rho: float, service: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Waiting times of a FIFO single-server queue with Poisson arrivals (W' = max(W + S - A, 0))."""
    gaps = rng.exponential(service.mean() / rho, service.size)
    waits = np.empty(service.size)
    w = 0.0
    for i in range(service.size):
        waits[i] = w
        w = max(w + service[i] - gaps[i], 0.0)
    return waits[service.size // 10:]  # drop the start


@pytest.mark.parametrize(("kind", "rho"), [("deterministic", 0.6), ("exponential", 0.6), ("lognormal", 0.5),
                                           ("hit-miss", 0.4)])
def test_kingman_form_matches_a_simulated_mg1_queue(kind: str, rho: float) -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    service = {
        "deterministic": np.ones(n),
        "exponential": rng.exponential(1.0, n),
        "lognormal": rng.lognormal(0.0, 1.0, n),
        # a prefix cache: 90 % of requests compute 4 % of their prompt, the rest all of it
        "hit-miss": np.where(rng.random(n) < 0.9, 0.04, 1.0) * rng.lognormal(0.0, 0.5, n),
    }[kind]
    scv = service.var() / service.mean() ** 2
    waits = lindley_waits(rho, service, rng)
    s_eff = float(q.kingman_service(service.mean(), scv))
    mean_formula = rho * s_eff / (1.0 - rho)  # what wait_quantile's exponential tail integrates to
    assert waits.mean() == pytest.approx(mean_formula, rel=0.1)  # Pollaczek-Khinchine
    p95 = float(q.wait_quantile(rho, s_eff, 0.95))
    assert np.quantile(waits, 0.95) == pytest.approx(p95, rel=0.3)
    if kind == "hit-miss":  # where the M/M/1 form on the mean service is far off
        assert float(q.wait_quantile(rho, service.mean(), 0.95)) < 0.5 * np.quantile(waits, 0.95)


def test_capped_lognormal_moments_match_draws() -> None:
    rng = np.random.default_rng(2)
    median, sigma, cap = 20_000.0, 1.1, 131_072.0
    x = np.minimum(rng.lognormal(math.log(median), sigma, 2_000_000), cap)
    m1, m2 = (float(v) for v in q.capped_lognormal_moments(median, sigma, cap))
    assert m1 == pytest.approx(x.mean(), rel=0.01)
    assert m2 == pytest.approx((x * x).mean(), rel=0.02)


def test_moments_of_an_absurdly_wide_spread_stay_finite_and_bounded() -> None:
    """A median of 1 token with a p90 of 10,000 (sigma 7.2): e^(2 mu + 2 sigma^2) alone overflows."""
    m1, m2 = (float(v) for v in q.capped_lognormal_moments(1.0, math.log(10_000) / 1.2815515655446004, 131_072.0))
    assert 0.0 < m1 <= 131_072.0 and m1 * m1 <= m2 <= 131_072.0**2
    assert math.isfinite(float(q.uncached_scv(m1, m2, 0.5, 0.9)))


def test_uncached_scv_by_hand() -> None:
    # every prompt L: half hit and compute L / 2, half miss: E[U] = 0.75 L, E[U^2] = 0.625 L^2
    assert float(q.uncached_scv(1.0, 1.0, 0.5, 0.5)) == pytest.approx(0.625 / 0.5625 - 1.0)
    # no reuse, or no hit: the prompt lengths' own spread
    assert float(q.uncached_scv(2.0, 5.0, 0.7, 0.0)) == pytest.approx(5.0 / 4.0 - 1.0)
    assert float(q.uncached_scv(2.0, 5.0, 0.0, 0.9)) == pytest.approx(5.0 / 4.0 - 1.0)


def test_a_measured_spread_of_new_tokens_sets_the_hit_turns_cs2() -> None:
    # every turn hits and reuses 90 %: U = the new tokens, whose own cs^2 the trace measured
    assert float(q.uncached_scv(1.0, 1.5, 1.0, 0.9, 28.5)) == pytest.approx(28.5, rel=1e-5)
    # a measured spread narrower than the prompt's never narrows it (N is at least (1 - r) L's spread)
    assert float(q.uncached_scv(1.0, 1.5, 1.0, 0.9, 0.1)) == pytest.approx(0.5, rel=1e-5)
    # half the turns miss (the whole prompt, E[L^2] = 1.5): E[U] = 0.55, E[U^2] = 0.75 + 0.5 x 0.01 x 29.5
    assert float(q.uncached_scv(1.0, 1.5, 0.5, 0.9, 28.5)) == pytest.approx((0.75 + 0.1475) / 0.55**2 - 1, rel=1e-5)


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load a (the Erlang B recursion, then C)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


@pytest.mark.parametrize("slots", [1, 2, 8, 16, 32, 96, 256])
def test_slot_limit_keeps_waiting_for_a_slot_at_5_percent(slots: int) -> None:
    a = float(q.slot_load_limit(float(slots)))
    assert 0.0 < a < slots
    assert erlang_c(slots, a) == pytest.approx(0.05, abs=2e-4)  # exact up to 256 slots (M/M/1: rho = 0.05)


def test_the_slot_table_is_plain_bisections_bit_for_bit() -> None:
    """`exact_slot_load_limits` takes several bisection steps per pass of the Erlang B recursion;
    its table must be exactly the one bisecting one step at a time (48 steps on a in [0, c]) gives."""
    c = np.arange(1, q.EXACT_SLOT_LIMITS + 1, dtype=np.float64)
    lo, hi = np.zeros_like(c), c.copy()
    for _ in range(q.SLOT_LIMIT_BISECTIONS):
        a = 0.5 * (lo + hi)
        b = np.ones_like(c)
        for k in range(1, c.size + 1):
            b = np.where(k <= c, a * b / (k + a * b), b)
        too_busy = b / (1.0 - a / c * (1.0 - b)) > q.SLOT_WAIT_TARGET
        hi, lo = np.where(too_busy, a, hi), np.where(too_busy, lo, a)
    plain = np.concatenate([[0.0], lo]).astype(np.float32)
    assert np.array_equal(q.exact_slot_load_limits(), plain)


@pytest.mark.parametrize("slots", [257, 512, 1024])
def test_above_the_exact_table_the_square_root_rule_stays_near_5_percent(slots: int) -> None:
    a = float(q.slot_load_limit(float(slots)))
    assert 0.05 < erlang_c(slots, a) < 0.056  # Halfin-Whitt is asymptotically exact: 5.6 % at 257


def test_slot_rate_solves_its_condition() -> None:
    max_load, fixed, decode, stall_per_rate = 20.0, 0.5, 8.0, 0.05
    lam = float(q.max_rate_for_slots(max_load, fixed, decode, stall_per_rate))
    assert lam * stall_per_rate < 1.0
    assert lam * (fixed + decode / (1.0 - lam * stall_per_rate)) == pytest.approx(max_load, rel=1e-6)  # float32


def test_tpot_load_limit_is_the_root_of_the_tpot_p95() -> None:
    slo, zero, prefill, scv, steps = 0.050, 0.030, 0.3, 4.0, 300.0
    rho = float(q.max_rho_for_tpot(slo, zero, prefill, scv, steps, Z95))
    assert 0.0 < rho < 1.0 - zero / slo  # the spread leaves less load than the mean alone
    mean = zero / (1.0 - rho)
    assert mean + Z95 * float(q.tpot_tail_sd(rho, mean, prefill, scv, steps)) == pytest.approx(slo, rel=1e-6)
    assert float(q.max_rho_for_tpot(0.020, zero, prefill, scv, steps, Z95)) < 0.0  # missed even idle


def test_tpot_spread_matches_a_compound_poisson_draw() -> None:
    """A request decoding N steps shares them with the prefills arriving in its lifetime."""
    rng = np.random.default_rng(3)
    step, steps, prefill_mean, rho = 0.02, 200, 0.4, 0.3
    lam = rho / prefill_mean
    tpot_mean = step / (1.0 - rho)
    counts = rng.poisson(lam * steps * tpot_mean, 100_000)
    services = rng.lognormal(0.0, 1.0, counts.sum())
    services *= prefill_mean / math.exp(0.5)  # mean prefill_mean, cs^2 = e - 1
    added = np.bincount(np.repeat(np.arange(counts.size), counts), weights=services, minlength=counts.size)
    tpot = step + added / steps
    assert tpot.mean() == pytest.approx(tpot_mean, rel=0.01)
    sd = float(q.tpot_tail_sd(rho, tpot_mean, prefill_mean, math.e - 1.0, steps))
    assert tpot.std() == pytest.approx(sd, rel=0.03)
