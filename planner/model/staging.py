"""Stages of the cost model that XLA must compute once and store, not recompute per consumer.

XLA fuses cheap elementwise producers into every consumer that reads them and recomputes them
there. That is right for a value read once, and ruinous for one read by many: the replica count
feeds the bill, the TTFT, the TPOT and the binding ratio, so the whole chain behind it (prefix-cache
hit rate, prefill service, the queue's utilisation cap) ran once per output, and the search did 4x
the work it needed (`planner bench`). Neither `optimization_barrier` nor a dynamic-update-slice
stops this fusion; a conditional does: its branches are separate computations whose results are
stored. `computed_once` runs a stage as the taken branch of a conditional whose predicate is always
true (no float is below -inf, NaN included) but a runtime value, so XLA keeps the conditional; the
other branch only returns zeros of the stage's shapes. (Both branches used to be the stage: correct
for any predicate, but XLA compiled every stage twice, four times when nested, and the suite's
~150 kernels took 30+ s each to compile.) The numpy twin (numpy_reference.py) calls the stage directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def computed_once(stage, probe, when=None):
    """`stage()` with its results stored once for all their consumers. `probe` is any traced array
    (its value is irrelevant): the predicate must be a runtime value or XLA folds the conditional away.
    `when` (a traced boolean scalar) makes the predicate real: where it is false the stage is not
    run and its outputs are zeros (the search's pruned layout slots)."""
    first = jnp.ravel(probe)[0]
    # traced once, as the first branch (`lax.switch` traces its branches in order); its outputs
    # give the zeros' types. (Tracing it for a second `stage` branch made nested stages trace 4x;
    # recording it with make_jaxpr and replaying that in the branch traced it twice.)
    traced = []

    def taken():
        out = stage()
        traced.append(out)
        return out

    def unreachable():
        (out,) = traced
        return jax.tree.map(lambda x: _zeros_like(jax.typeof(x)), out)

    run = jnp.logical_not(first < -jnp.inf) if when is None else when
    return lax.switch(jnp.where(run, 0, 1), (taken, unreachable))


def _zeros_like(aval):
    """Zeros of an abstract value, varying over the same manual mesh axes (inside shard_map)."""
    zeros = jnp.zeros(aval.shape, aval.dtype)
    varying = getattr(getattr(aval, "manual_axis_type", None), "varying", frozenset())
    return lax.pcast(zeros, tuple(sorted(varying)), to="varying") if varying else zeros


def stacked(values, ndim: int):
    """`values` (arrays that broadcast together) stacked on a new leading axis in front of at least
    `ndim` configuration axes, so that one traced evaluation of a stage serves each of them
    (`unstacked` takes its results apart). Tracing, lowering and compiling grow with a kernel's
    operations, not its array sizes: the decode step at two contexts and two query counts was four
    copies of ~500 operations, the prefill three (five in a prefill pool) of ~650. Run the stage
    `computed_once`, or XLA fuses it into each slice that reads it and compiles it once per slice
    again. Stacked, the search kernel went from ~8,900 traced operations to ~5,100 and from ~20,900
    optimised HLO lines to ~13,900: it traces in half the time and compiles in 75-90 % of the CPU."""
    parts = jnp.broadcast_arrays(*values)
    shape = jnp.shape(parts[0])
    return jnp.reshape(jnp.stack(parts), (len(parts),) + (1,) * max(ndim - len(shape), 0) + shape)


def unstacked(x, like):
    """The entries of `x` along the leading axis of `like` (a `stacked` argument of the stage that
    gave `x`); `x` may lack that axis where the stage did not depend on the stacked values."""
    x = jnp.reshape(x, (1,) * max(jnp.ndim(like) - jnp.ndim(x), 0) + jnp.shape(x))
    x = jnp.broadcast_to(x, (jnp.shape(like)[0],) + jnp.shape(x)[1:])
    return tuple(x[i] for i in range(jnp.shape(like)[0]))


def repeated(times: int, step, carry):
    """`carry = step(carry)` `times` times, as one loop in the compiled program: unrolled, a
    bisection's 14 steps were ~1,800 HLO instructions of the search kernel, and loading a compiled
    kernel costs time per instruction. For small stages only (scenario scalars): a loop stores its
    carry, so XLA cannot fuse it into per-configuration consumers. The numpy twin runs a Python loop."""
    return lax.fori_loop(0, times, lambda _, value: step(value), carry)
