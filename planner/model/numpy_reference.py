"""A numpy twin of the cost model: the same source files, executed with `jnp` bound to numpy.

Used as the reference evaluator in `planner bench` (vectorised numpy, no jit) and by the tests that
check the jitted search against it. Because the twin is built from the model's own source, the two
cannot drift apart; only `jnp` (and `ndtr`/`ndtri`) change meaning.
"""

from __future__ import annotations

import sys
import types
from functools import cache
from pathlib import Path
from statistics import NormalDist

import numpy as np

_MODEL_DIR = Path(__file__).resolve().parent
_ORDER = ("types", "precision", "staging", "attention", "layouts", "memory", "compute", "prefill", "decode", "speculative", "queueing", "tiers",
          "serving", "offline", "loaded", "disagg")
_PREFIX = "planner.model._numpy_twin"

_inv_cdf = np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])


def ndtri(q):
    """Inverse standard-normal CDF for numpy inputs (jax.scipy.special.ndtri's twin), keeping the
    input's float width so the twin stays in float32 like the jitted model."""
    q = np.asarray(q)
    out = _inv_cdf(np.clip(q.astype(np.float64), 1e-12, 1 - 1e-12))
    return out.astype(q.dtype if q.dtype.kind == "f" else np.float64)


def ndtr(x):
    """Standard-normal CDF for numpy inputs (jax.scipy.special.ndtr's twin): erf by Abramowitz &
    Stegun 7.1.26 (|error| < 1.5e-7, below float32 resolution), vectorised."""
    x = np.asarray(x)
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    out = 0.5 * (1.0 + np.sign(x) * erf)
    return out.astype(x.dtype if x.dtype.kind == "f" else np.float64)


def agreement(jit_monthly: np.ndarray, ref_monthly: np.ndarray, ref_worst_ratio: np.ndarray,
              jit_slo_ratio: np.ndarray | None = None) -> dict:
    """Compare the jitted bills with the twin's. float32 (jit) and partly-float64 (numpy) arithmetic
    may disagree on configurations sitting exactly on an SLO boundary (worst ratio = 1 +- 1e-4 by
    either side's reading: `jit_slo_ratio`, the jit's own p95 TTFT or TPOT over its SLO, where the
    caller has it; near saturation a queue's 1 / (1 - rho) stretches float32's rounding to 0.1 %),
    which also moves a replica count by one; anything else is a real disagreement."""
    fj, fr = np.isfinite(jit_monthly), np.isfinite(ref_monthly)
    flipped = fj != fr
    on_boundary = np.abs(ref_worst_ratio - 1.0) < 1e-4
    if jit_slo_ratio is not None:
        on_boundary |= np.abs(jit_slo_ratio - 1.0) < 1e-4
    both = fj & fr
    rel = np.abs(jit_monthly[both] / ref_monthly[both] - 1.0)
    differing = int((rel > 1e-4).sum())
    ok = bool(not (flipped & ~on_boundary).any() and differing <= max(1, 1e-3 * both.sum()))
    return {"agrees": ok, "feasibility_flips": int(flipped.sum()), "bills_differing": differing,
            "configs_compared": int(jit_monthly.size)}


def _evaluated(stage, probe):
    return stage()


def _repeated(times, step, carry):
    for _ in range(times):
        carry = step(carry)
    return carry


class _NumpyAsJnp(types.ModuleType):
    """numpy under the name `jnp`; `jnp.ndarray` stays the array type used in annotations."""

    def __getattr__(self, name):
        return getattr(np, name)


@cache
def twin() -> dict[str, types.ModuleType]:
    shim = _NumpyAsJnp("jnp")
    modules: dict[str, types.ModuleType] = {}
    for name in _ORDER:
        source = (_MODEL_DIR / f"{name}.py").read_text()
        source = source.replace("import jax.numpy as jnp", "")
        source = source.replace("from jax.scipy.special import ndtr, ndtri", "")
        source = source.replace("from planner.model.", f"from {_PREFIX}.")
        module = types.ModuleType(f"{_PREFIX}.{name}")
        module.__dict__.update(jnp=shim, ndtr=ndtr, ndtri=ndtri, __file__=str(_MODEL_DIR / f"{name}.py"))
        sys.modules[module.__name__] = module
        exec(compile(source, f"{_MODEL_DIR / name}.py (numpy twin)", "exec"), module.__dict__)
        if name == "staging":  # no conditional or loop in numpy: a stage is simply evaluated
            module.computed_once = _evaluated
            module.repeated = _repeated
        modules[name] = module
    return modules


def evaluate_serving(*args, **kwargs):
    return twin()["serving"].evaluate_serving(*args, **kwargs)


def evaluate_offline(*args, **kwargs):
    return twin()["offline"].evaluate_offline(*args, **kwargs)


def monthly_floor(*args, **kwargs):
    return twin()["serving"].monthly_floor(*args, **kwargs)
