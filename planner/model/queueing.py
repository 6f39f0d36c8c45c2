"""Queueing and length distributions.

Lengths are log-normal, fitted to a median and a p90 (sigma = ln(p90 / median) / z90), capped at a
maximum. Prefill is a single server per instance (one prefill at a time, as chunked-prefill engines
schedule it); its waiting time is taken from M/M/1: P(W > t) = rho * exp(-(1 - rho) t / S), so the
q-quantile wait is S * ln(rho / (1 - q)) / (1 - rho) when rho > 1 - q, else 0.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

Z90 = 1.2815515655446004


def lognormal_quantile(median, sigma, cap, q):
    return jnp.minimum(median * jnp.exp(sigma * ndtri(q)), cap)


def wait_quantile(rho, service_s, q):
    """q-quantile of the M/M/1 waiting time; infinite when the server is saturated."""
    tail = 1.0 - q
    rho_c = jnp.clip(rho, 1e-9, 0.999999)
    wait = service_s * jnp.log(jnp.maximum(rho_c / tail, 1.0)) / (1.0 - rho_c)
    return jnp.where(rho >= 1.0, jnp.inf, wait)


def max_rho_for_wait(budget_s, service_s, q, iterations: int = 5):
    """Largest server utilisation whose q-quantile wait stays within `budget_s`. 0 when even an
    idle server misses the budget.

    Solves f(rho) = ln(rho / (1 - q)) - x (1 - rho) = 0 with x = budget / service. f is concave and
    increasing, so Newton's method started at rho = 1 - q (where f <= 0) climbs monotonically to
    the root: every iterate is a feasible (never optimistic) utilisation."""
    tail = 1.0 - q
    x = jnp.maximum(budget_s, 0.0) / jnp.maximum(service_s, 1e-12)
    rho = jnp.full(jnp.shape(x), tail)
    for _ in range(iterations):
        f = jnp.log(rho * (1.0 / tail)) - x * (1.0 - rho)
        rho = jnp.minimum(rho - f * rho / (1.0 + x * rho), 1.0 - 1e-6)  # f / f', f' = 1 / rho + x
    return jnp.where(budget_s >= 0.0, rho, 0.0)


def mixture_log_quantile(mu_a, mu_b, weight_a, sigma, cap_log_a, cap_log_b, q, iterations: int = 14):
    """q-quantile x of a two-component mixture of log-normals (same sigma) in log space, each capped:
    solves w F_a(x) + (1 - w) F_b(x) = q by bisection (F_i = Phi((x - mu_i) / sigma), 1 past its cap)."""
    s = jnp.maximum(sigma, 1e-4)

    def cdf(x):
        fa = jnp.where(x >= cap_log_a, 1.0, ndtr((x - mu_a) / s))
        fb = jnp.where(x >= cap_log_b, 1.0, ndtr((x - mu_b) / s))
        return weight_a * fa + (1.0 - weight_a) * fb

    lo = jnp.minimum(mu_a, mu_b) - 8.0 * s
    hi = jnp.maximum(cap_log_a, cap_log_b)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < q
        lo = jnp.where(below, mid, lo)
        hi = jnp.where(below, hi, mid)
    return hi
