"""Stages of the cost model that XLA must compute once and store, not recompute per consumer.

XLA fuses cheap elementwise producers into every consumer that reads them and recomputes them
there. That is right for a value read once, and ruinous for one read by many: the replica count
feeds the bill, the TTFT, the TPOT and the binding ratio, so the whole chain behind it (prefix-cache
hit rate, prefill service, the queue's utilisation cap) ran once per output, and the search did 4x
the work it needed (`planner bench`). Neither `optimization_barrier` nor a dynamic-update-slice
stops this fusion; a conditional does: its branches are separate computations whose results are
stored. `computed_once` runs a stage as both branches of one conditional, so which branch the
runtime predicate picks does not matter. The numpy twin (numpy_reference.py) calls the stage directly.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def computed_once(stage, probe):
    """`stage()` with its results stored once for all their consumers. `probe` is any traced array
    (its value is irrelevant): the predicate must be a runtime value or XLA folds the conditional away."""
    first = jnp.ravel(probe)[0]
    return lax.cond(first == first, stage, stage)
