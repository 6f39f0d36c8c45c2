"""Queueing and length distributions.

Lengths are log-normal, fitted to a median and a p90 (sigma = ln(p90 / median) / z90), capped at a
maximum. Prefill is a single server per instance (one prefill at a time, as chunked-prefill engines
schedule it); its waiting time is taken from M/M/1: P(W > t) = rho * exp(-(1 - rho) t / S), so the
q-quantile wait is S * ln(rho / (1 - q)) / (1 - rho) when rho > 1 - q, else 0.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import ndtri

Z90 = 1.2815515655446004


def lognormal_quantile(median, sigma, cap, q):
    return jnp.minimum(median * jnp.exp(sigma * ndtri(q)), cap)


def wait_quantile(rho, service_s, q):
    """q-quantile of the M/M/1 waiting time; infinite when the server is saturated."""
    tail = 1.0 - q
    rho_c = jnp.clip(rho, 1e-9, 0.999999)
    wait = service_s * jnp.log(jnp.maximum(rho_c / tail, 1.0)) / (1.0 - rho_c)
    return jnp.where(rho >= 1.0, jnp.inf, wait)


def max_rho_for_wait(budget_s, service_s, q, iterations: int = 14):
    """Largest server utilisation whose q-quantile wait stays within `budget_s` (bisection on the
    increasing M/M/1 wait quantile). 0 when even an idle server misses the budget."""
    tail = 1.0 - q
    target = budget_s / jnp.maximum(service_s, 1e-12)  # wait budget in units of the service time
    lo = jnp.full(jnp.shape(target), tail)
    hi = jnp.ones_like(lo)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        ok = jnp.log(mid / tail) / (1.0 - mid) <= target
        lo = jnp.where(ok, mid, lo)
        hi = jnp.where(ok, hi, mid)
    return jnp.where(budget_s >= 0.0, lo, 0.0)
