"""Queueing and length distributions.

Lengths are log-normal, fitted to a median and a p90 (sigma = ln(p90 / median) / z90), capped at a
maximum. Prefill is a single server per instance (one prefill at a time, as chunked-prefill engines
schedule it); its waiting time is taken from M/M/1: P(W > t) = rho * exp(-(1 - rho) t / S), so the
q-quantile wait is S * ln(rho / (1 - q)) / (1 - rho) when rho > 1 - q, else 0.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import ndtr, ndtri

from planner.model.staging import repeated

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


def normal_cdf_abs(x):
    """Phi(x) to an absolute error below 7.5e-8 (erf by Abramowitz & Stegun 7.1.26; float32
    rounding adds ~1e-7), in 15 operations. jax's `ndtr`, exact to float32 deep in the tails,
    expands into ~280 HLO instructions; inside `mixture_log_quantile`'s bisection that was a third
    of the search kernel's program, and loading a compiled kernel costs time per instruction. Use
    it only where absolute accuracy is what matters (a CDF compared with a quantile level)."""
    z = jnp.abs(x) * 0.7071067811865476
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    upper = 0.5 * poly * jnp.exp(-z * z)  # 1 - Phi(|x|)
    return jnp.where(x < 0.0, upper, 1.0 - upper)


def mixture_log_quantile(mu_a, mu_b, weight_a, sigma, cap_log_a, cap_log_b, q, iterations: int = 14):
    """q-quantile x of a two-component mixture of log-normals (same sigma) in log space, each capped:
    solves w F_a(x) + (1 - w) F_b(x) = q by bisection (F_i = Phi((x - mu_i) / sigma), 1 past its cap;
    Phi to ~2e-7, far below the bisection's own resolution)."""
    s = jnp.maximum(sigma, 1e-4)

    def cdf(x):
        fa = jnp.where(x >= cap_log_a, 1.0, normal_cdf_abs((x - mu_a) / s))
        fb = jnp.where(x >= cap_log_b, 1.0, normal_cdf_abs((x - mu_b) / s))
        return weight_a * fa + (1.0 - weight_a) * fb

    def halve(bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < q
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo = jnp.minimum(mu_a, mu_b) - 8.0 * s
    hi = jnp.maximum(cap_log_a, cap_log_b)
    shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in (lo, hi, mu_a, mu_b, weight_a, cap_log_a, cap_log_b, q)))
    bracket = (jnp.broadcast_to(lo, shape).astype(jnp.float32), jnp.broadcast_to(hi, shape).astype(jnp.float32))
    return repeated(iterations, halve, bracket)[1]


# ---- the prefill queue is M/G/1, the decode slots M/G/c, TPOT has a per-request tail ----------------
# Checked against the iteration-level simulator (planner/simulate; README "Simulation"): with the
# M/M/1 forms alone the screen was 20x optimistic on agentic-coding's TTFT p95 and 2.6x on its TPOT p95.

SLOT_WAIT_BETA = 1.7398362717904001
"""Halfin-Whitt: with c slots and offered load a = c - beta sqrt(a), the probability that a request
waits for a slot is (1 + beta Phi(beta) / phi(beta))^-1; this beta makes it 5 %, so slot waits stay
out of the p95 (Halfin & Whitt 1981, Operations Research 29(3); solved with scipy's brentq)."""


def capped_lognormal_moments(median, sigma, cap):
    """(E[X], E[X^2]) of min(X, cap) for a log-normal X: the capped prompt lengths' first two moments."""
    mu = jnp.log(median)
    s = jnp.maximum(sigma, 1e-6)
    z = (jnp.log(cap) - mu) / s
    below = ndtr(z)
    # e^(mu + s^2/2) overflows for very wide spreads while Phi(z - s) underflows: multiply in logs,
    # and never above what the uncapped part can hold (cap^k x P(L < cap))
    tiny = 1.2e-38
    part1 = jnp.exp(jnp.minimum(mu + 0.5 * s * s + jnp.log(jnp.maximum(ndtr(z - s), tiny)), 80.0))
    part2 = jnp.exp(jnp.minimum(2.0 * mu + 2.0 * s * s + jnp.log(jnp.maximum(ndtr(z - 2.0 * s), tiny)), 80.0))
    m1 = jnp.minimum(part1, cap * below) + cap * (1.0 - below)
    m2 = jnp.minimum(part2, cap * cap * below) + cap * cap * (1.0 - below)
    return m1, m2


def uncached_scv(m1, m2, hit, reuse, new_scv=0.0):
    """Squared coefficient of variation of a request's uncached tokens U (prefill time is ~linear in
    them): U = L on a miss; on a hit (probability `hit`) U = N, the turn's new tokens, with mean
    (1 - r) E[L]. N = (1 - r) L when nothing else is known; a trace measures N's own spread
    (`new_scv`, its cs^2 with an unbounded cache), which for agent turns is far wider than the
    prompt's (28.5 vs 0.6 on the Claude Code trace). So E[U] = E[L] (1 - r h) and
    E[U^2] = (1 - h) E[L^2] + h (1 - r)^2 max(E[L^2], (1 + new_scv) E[L]^2)."""
    first = m1 * (1.0 - reuse * hit)
    new_second = jnp.maximum(m2, (1.0 + new_scv) * m1 * m1)
    second = (1.0 - hit) * m2 + hit * (1.0 - reuse) ** 2 * new_second
    return jnp.maximum(second / jnp.maximum(first * first, 1e-30) - 1.0, 0.0)


def kingman_service(service_s, scv):
    """The service time that puts an M/G/1 queue into `wait_quantile`'s M/M/1 form: the
    Pollaczek-Khinchine mean wait is the M/M/1 one times (1 + cs^2) / 2, and the tail keeps the
    exponential shape at that mean (Kingman's heavy-traffic approximation; Tijms, A First Course in
    Stochastic Models, 2003, sec. 2.5). Heavy-tailed prompts (cs^2 ~ 7 for agentic sessions) wait
    ~4x longer than M/M/1 says; near-constant ones (cs^2 ~ 0.25) ~0.6x."""
    return service_s * 0.5 * (1.0 + scv)


ERLANG_MAX_SERVERS = 4096
"""Largest slot count `erlang_c` resolves exactly (offline.MAX_BATCH): beyond it, a request waits as
if there were this many."""


def erlang_c(servers, load):
    """Probability that an arrival waits in M/M/c with c = `servers` (floored, at least 1) and offered
    load a = `load` (arrival rate x holding time): Erlang B by its stable recursion
    B_k = a B_(k-1) / (k + a B_(k-1)), then C = B_c / (1 - (a / c)(1 - B_c)); 1 when a >= c.
    Exact for any c (an agentic instance with 100k-token prompts may have a handful of slots);
    `planner eval` prices slot waits with it. The search's `slot_load_limit` uses a table of its
    inverse instead (`exact_slot_load_limits`): a 4,096-step loop per configuration would not do."""
    c = jnp.clip(jnp.floor(servers), 1.0, ERLANG_MAX_SERVERS)
    a = jnp.maximum(load, 0.0)

    def step(k, b):
        kf = jnp.asarray(k, jnp.float32)
        return jnp.where(kf <= c, a * b / (kf + a * b), b)

    blocking = lax.fori_loop(1, ERLANG_MAX_SERVERS + 1, step, jnp.ones_like(a * c))
    rho = a / c
    waits = blocking / jnp.maximum(1.0 - rho * (1.0 - blocking), 1e-30)
    return jnp.where(rho >= 1.0, 1.0, jnp.clip(waits, 0.0, 1.0))


SLOT_WAIT_TARGET = 0.05
EXACT_SLOT_LIMITS = 256
"""Slot counts up to which `slot_load_limit` inverts Erlang C exactly; beyond, the Halfin-Whitt
form already keeps the wait within 5.6 %."""


SLOT_LIMIT_BISECTIONS = 48
SLOT_LIMIT_LEVELS = 4
"""Bisection steps taken together by `exact_slot_load_limits` (see there)."""


def _erlang_c_waits(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Erlang C for offered loads `a` ([..., C]) on c = 1..C slots ([C]), every c at once: the Erlang B
    recursion's step k applies to the slot counts c >= k (a trailing slice)."""
    b = np.ones_like(a)
    for k in range(1, c.size + 1):
        ab = a[..., k - 1:] * b[..., k - 1:]
        b[..., k - 1:] = ab / (k + ab)
    return b / (1.0 - a / c * (1.0 - b))


@functools.cache
def exact_slot_load_limits(max_slots: int = EXACT_SLOT_LIMITS) -> np.ndarray:
    """a_c for c = 0..max_slots: the offered load at which an M/M/c arrival waits with probability
    SLOT_WAIT_TARGET (Erlang C, by bisection on a in [0, c], every c at once). Entry 0 is 0.

    Computed once per process that evaluates the model: when a kernel is traced (a compiled kernel
    carries the table as a constant), and by the numpy twin that details a solve's plans, where it
    was ~90 ms of a warm `planner solve`. The Erlang B recursion is a Python loop over k, so
    SLOT_LIMIT_LEVELS bisection steps share one pass of it: every midpoint those steps can meet is
    computed first, exactly as plain bisection computes it (half the sum of its interval's ends),
    then each c walks down its path. The table is bit-for-bit plain bisection's (tested), in a quarter
    of the time."""
    c = np.arange(1, max_slots + 1, dtype=np.float64)
    lo, hi = np.zeros_like(c), c.copy()
    columns = np.arange(max_slots)
    for done in range(0, SLOT_LIMIT_BISECTIONS, SLOT_LIMIT_LEVELS):
        levels = min(SLOT_LIMIT_LEVELS, SLOT_LIMIT_BISECTIONS - done)
        # the interval tree of `levels` bisection steps, heap order: node i splits (ends[i]) at mids[i],
        # its children 2i + 1 (lower half) and 2i + 2 (upper half)
        nodes = 2**levels - 1
        ends, mids = [(lo, hi)] + [None] * (nodes - 1), []
        for i in range(nodes):
            low, high = ends[i]
            mids.append(0.5 * (low + high))
            if 2 * i + 2 < nodes:
                ends[2 * i + 1], ends[2 * i + 2] = (low, mids[i]), (mids[i], high)
        a = np.stack(mids)
        too_busy = _erlang_c_waits(a, c) > SLOT_WAIT_TARGET
        node = np.zeros(max_slots, dtype=np.int64)
        for _ in range(levels):
            busy, mid = too_busy[node, columns], a[node, columns]
            hi, lo = np.where(busy, mid, hi), np.where(busy, lo, mid)
            node = np.where(busy, 2 * node + 1, 2 * node + 2)
    return np.concatenate([[0.0], lo]).astype(np.float32)


def slot_load_limit(slots):
    """Largest offered load a (mean busy slots) of `slots` slots whose chance of waiting for a slot
    stays at 5 %: exactly (Erlang C) up to EXACT_SLOT_LIMITS slots, where the square-root rule is
    optimistic (20.7 % of requests would wait with 1 slot, 9.0 % with 8, 7.6 % with 16: the slot
    counts of agentic plans with 100k-token prompts); above it a + beta sqrt(a) = c (Halfin-Whitt
    square-root staffing, solved for a), asymptotically exact. Fractional slot counts floor."""
    root = 0.5 * (-SLOT_WAIT_BETA + jnp.sqrt(SLOT_WAIT_BETA**2 + 4.0 * slots))
    table = jnp.asarray(exact_slot_load_limits())
    index = jnp.clip(jnp.floor(slots), 0, EXACT_SLOT_LIMITS).astype(jnp.int32)
    return jnp.where(slots <= EXACT_SLOT_LIMITS, table[index], root * root)


def max_rate_for_slots(max_load, fixed_s, decode_s, stall_per_rate):
    """Largest arrival rate whose busy slots lambda x lifetime stay within `max_load`, where a
    request holds its slot for fixed_s + decode_s / (1 - lambda x stall_per_rate) (decode stretched
    by the prefills it shares steps with). The smaller root of
    -A lambda^2 + B lambda - max_load = 0, A = fixed_s x stall_per_rate, B = fixed_s + decode_s +
    max_load x stall_per_rate, in the cancellation-free form."""
    a = fixed_s * stall_per_rate
    b = fixed_s + decode_s + max_load * stall_per_rate
    disc = jnp.maximum(b * b - 4.0 * a * max_load, 0.0)
    return 2.0 * max_load / jnp.maximum(b + jnp.sqrt(disc), 1e-30)


def tpot_tail_sd(rho, tpot_mean, prefill_s, scv, decode_steps):
    """Standard deviation of one request's TPOT across requests. A request decoding for N steps
    shares them with the prefills that arrive meanwhile (Poisson, rate lambda, over its lifetime
    N x TPOT); their total time is compound Poisson with variance lambda N TPOT E[S^2], spread
    over N tokens: sd = sqrt(rho TPOT S (1 + cs^2) / N) with rho = lambda S. The mean stall
    1 / (1 - rho) is the screen's TPOT; this is the spread the simulator showed around it."""
    return jnp.sqrt(jnp.maximum(rho, 0.0) * tpot_mean * prefill_s * (1.0 + scv) / jnp.maximum(decode_steps, 1.0))


def max_rho_for_tpot(slo_s, tpot_zero_s, prefill_s, scv, decode_steps, z):
    """Largest prefill load rho whose TPOT quantile T + z sd meets `slo_s`, with T = tpot_zero /
    (1 - rho) and sd from `tpot_tail_sd` at T. With g = rho / (1 - rho) and y = sqrt(g) the
    condition a (1 + g) + z sqrt(a c g) = slo (a = tpot_zero, c = S (1 + cs^2) / N) is a quadratic
    in y, solved exactly; negative when even an idle instance misses the SLO."""
    a = jnp.maximum(tpot_zero_s, 1e-30)
    b = z * jnp.sqrt(a * prefill_s * (1.0 + scv) / jnp.maximum(decode_steps, 1.0))
    slack = slo_s - a
    y = 2.0 * jnp.maximum(slack, 0.0) / (b + jnp.sqrt(b * b + 4.0 * a * jnp.maximum(slack, 0.0)) + 1e-300)
    g = y * y
    return jnp.where(slack >= 0.0, g / (1.0 + g), slack / slo_s)
