"""The request stream: who asks for what, and when.

Synthetic (the scenario's workload): sessions of `turns` requests start as a Poisson process at
`arrival_rate / turns`, so requests arrive at the scenario's rate; a session's next turn arrives a
think time after its previous reply finished (an agent needs the reply before its next call; the
scenario's think_time_s is that gap's mean, `session_s / turns`). Think times follow the bundled
Claude Code trace's shape rescaled to that mean (`think_times`): mostly seconds (tool calls), now and
then hours (a person away), the timing the screen's prefix-cache hit curve was replayed with. A
memoryless gap at the same mean (the simulator's earlier draw) brought a session back after ~100 s
where the trace's median is 9.5 s, so the LRU cache had evicted far more of it to slower tiers than
the screen assumed. The run starts in steady state: the sessions between turns at t = 0 (Little's
law: rate x (reply + think time)) are mid-way, at a uniformly drawn turn, their next turn a residual
cycle away (`residual_turn_times`), with a
warm cache: the prefix each of them left before t = 0 is in its replica's cache when the run starts
(the LRU then keeps what fits). The warm-up that `stats` leaves out covers the rest of the transient. Prompt and output lengths are drawn from the
scenario's capped log-normals; a session's `turns` prompt lengths are drawn together around a
scale of the session's own and sorted, so its context grows turn by turn as in real agent sessions
while the length distribution over all requests stays the scenario's: the log-length spread is split
between sessions and within a session, the within part no wider than lets each turn grow by the new
tokens `prefix_reuse` leaves (`within_session_sigma`; drawing the whole spread inside every session
made a turn's reusable prefix outgrow the previous context, so sessions reused less than stated).
Block j of session s is id s x 2^24 + j, so a turn's leading blocks are the previous turns'
context. A turn reuses `prefix_reuse` of its prompt, or the previous turn's whole context when that
is shorter (`stats` reports the realised share of prompt tokens that were reusable beside the
scenario's). With `uncached_scv` stated, the turns' new tokens follow the trace's shape instead, at
the stated share and spread (`spread_reuse`; `stats` reports the realised spread), and the prompts
grow by the trace's growth share of them only (`calibrate.new_token_growth_share`): most turns add
their context's growth, a few lose most of their prefix.

Trace replay (`--trace`): the trace's requests with their own lengths, sessions and block ids
(`hash_ids`); sessions whose clocks start at 0 are drawn from the trace (with repetition, each copy
its own blocks) and started as a stationary Poisson stream at the scenario's request rate
(`steady_state_sessions`); traces with absolute times keep them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SESSION_SHIFT = 1 << 24  # block id of block j of session s: s * SESSION_SHIFT + j
SYNTHETIC_BLOCK = 512  # tokens per cache block of synthetic sessions (Mooncake's published block size)


@dataclass
class Requests:
    """All requests of a run, ordered by arrival (arrays of one entry per request)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    session: np.ndarray  # int64, -1 without sessions
    reusable_tokens: np.ndarray  # int64: leading prompt tokens another turn may have left in the cache
    block_tokens: int
    warm: np.ndarray | None = None  # requests whose prefix was cached before t = 0 (sessions already in flight)
    next_turn: np.ndarray | None = None  # closed-loop sessions: the session's next request (-1: none)
    think_s: np.ndarray | None = None  # gap from request i's reply to its session's next request
    offsets: np.ndarray | None = None  # trace replay: request i's block ids are blocks[offsets[i]:offsets[i + 1]]
    blocks: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.arrival_s.size)

    def later_turns(self) -> np.ndarray:
        """Requests that are not the first turn of a session starting during the run (synthetic
        sessions, stored session by session: a session's first request in the array is its first
        turn, unless the session was in progress at t = 0)."""
        s = self.session
        later = s >= 0
        head = np.r_[True, s[1:] != s[:-1]] & later
        if self.warm is not None:
            head[self.warm] = False
        return later & ~head

    def prefix_blocks(self, i: int) -> range | np.ndarray:
        """Ids of the blocks request i may find in the cache (its reusable prefix)."""
        n = int(self.reusable_tokens[i]) // self.block_tokens
        if self.blocks is not None and self.offsets is not None:
            lo = int(self.offsets[i])
            return self.blocks[lo:min(lo + n, int(self.offsets[i + 1]))].tolist()
        base = int(self.session[i]) * SESSION_SHIFT
        return range(base, base + n)

    def context_blocks(self, i: int, tokens: int) -> range | list:
        """Ids of the full blocks of request i's context of `tokens` tokens, kept after it finishes."""
        n = int(tokens) // self.block_tokens
        if self.blocks is not None and self.offsets is not None:
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            return self.blocks[lo:min(lo + n, hi)].tolist()
        if self.session[i] < 0:
            return range(0)
        base = int(self.session[i]) * SESSION_SHIFT
        return range(base, base + n)


def lognormal_lengths(rng, n: int, median: float, sigma: float, cap: float, shift=0.0) -> np.ndarray:
    x = median * np.exp(sigma * rng.standard_normal(n) + shift)
    return np.clip(np.rint(np.minimum(x, cap)), 1, max(cap, 1)).astype(np.int64)


SPACING_MARGIN = 0.7
"""Share of the average-spacing bound used (the spacings of a sorted normal sample are widest at its
ends, where a turn would outgrow its previous context): at 0.7 the default scenario's sessions have
94.5 % of prompt tokens reusable, the 0.96 x 68/69 = 94.6 % the scenario states (1.0: 93.1 %;
independent draws for the whole spread, before: 92.7 %)."""


def within_session_sigma(turns: int, reuse: float) -> float:
    """The spread of log prompt length inside one session that lets its sorted turns grow by the
    new tokens of a turn that reuses `reuse` of its prompt: consecutive order statistics of `turns`
    normal draws span about 2 E[max] sigma over turns - 1 steps, and each step may grow the prompt by
    at most ln(1 / reuse) (Blom's approximation of E[max]). The rest of the scenario's spread is
    between sessions (a short chat and a long refactor are different sessions)."""
    from statistics import NormalDist

    if turns < 2 or reuse <= 0.0:
        return np.inf
    e_max = NormalDist().inv_cdf((turns - 0.375) / (turns + 0.25))
    return SPACING_MARGIN * (turns - 1) * np.log(1.0 / min(reuse, 1.0 - 1e-9)) / (2.0 * e_max)


def think_times(rng: np.random.Generator, n: int, mean_s: float) -> np.ndarray:
    """`n` think times at mean `mean_s` with the bundled trace's shape (`calibrate.think_time_shape`)."""
    from planner.traces.calibrate import quantile_at, think_time_shape

    p, q = think_time_shape()
    return mean_s * quantile_at(p, q, rng.random(n))


RESIDUAL_POOL = 256
"""Turn cycles drawn per session in progress at t = 0 to pick its length-biased one from (the
think-time shape's top 0.05 % carry a sixth of its mean: a smaller pool under-represents them)."""
RESIDUAL_POOL_MAX = 1 << 22


def residual_turn_times(rng: np.random.Generator, n: int, mean_think_s: float, reply_s: float) -> np.ndarray:
    """Time to the next turn of `n` sessions in progress at a random instant. A session's turns come
    a cycle apart (a reply, then a think time); the cycle it is in is length-biased (a long pause is
    more likely to be under way) and a uniform share of it is left (renewal theory, as in
    `steady_state_sessions`). For an exponential think time this is about a fresh draw; for the
    trace's heavy tail far longer: over a 30-minute run at 3 requests/s (six seeds, no server) a
    fresh draw delivered 5.9 requests/s (most sessions came back at once), the residual of the think
    time alone (the reply left out) 2.76, this 3.03."""
    if n == 0:
        return np.zeros(0)
    cycles = max(reply_s, 0.0) + think_times(rng, min(RESIDUAL_POOL * n, RESIDUAL_POOL_MAX), mean_think_s)
    if cycles.sum() <= 0.0:
        return rng.random(n) * cycles[:n]
    picked, left = length_biased(rng, cycles, n)
    return left * cycles[picked]


def length_biased(rng: np.random.Generator, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, uniform share) of `n` renewal cycles under way at a random instant, of the given
    `lengths`: a cycle is under way with probability proportional to its length, and the share of
    it still to run (or, alike, already run) is uniform (Ross, Stochastic Processes, 1996, sec. 3.4)."""
    picked = rng.choice(lengths.size, n, p=lengths / lengths.sum())
    return picked, rng.random(n)


def spread_reuse(rng: np.random.Generator, share: float, prompt: np.ndarray, previous: np.ndarray,
                 later: np.ndarray, new_scv: float) -> np.ndarray:
    """Reusable tokens of each turn whose new (uncached) tokens spread as a scenario's
    `uncached_scv` states: its prompt x a share drawn from the bundled trace's shape
    (`calibrate.new_token_shape`: mostly ~1 % of the prompt, now and then all of it), raised to a
    power. A turn never reuses more than its session's previous context, so its growth over that
    context is new too. For each power tried (bisection) the draws are scaled (bisection) until the
    `later` turns' new tokens are `share` of their prompt tokens, and the power is the one whose new
    tokens have cs^2 `new_scv` (or SHAPE_POWER_MAX, where the growth and the cap at the whole prompt
    leave it short: `stats` reports the realised spread)."""
    from planner.traces.calibrate import new_token_shape, quantile_at

    p, q = new_token_shape()
    g = quantile_at(p, q, rng.random(prompt.size))
    top = np.maximum(prompt - 1.0, 0.0)
    goal = share * float(prompt[later].sum())

    def reuse_at(drawn: np.ndarray, scale: float) -> np.ndarray:
        return np.minimum(top - np.minimum(np.rint(scale * drawn), top), previous)

    def at_share(power: float) -> np.ndarray:
        drawn = np.where(g > 0.0, np.maximum(g, 1e-300) ** power, 0.0) * prompt

        def new_at(scale: float) -> float:  # rises with the scale
            return float((prompt - reuse_at(drawn, scale))[later].sum())

        if new_at(0.0) >= goal:  # the prompts' growth alone adds the stated share
            return reuse_at(drawn, 0.0)
        lo, hi = 0.0, share
        while new_at(hi) < goal and hi < 1e300:
            hi *= 2.0
        for _ in range(SCALE_STEPS):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if new_at(mid) < goal else (lo, mid)
        return reuse_at(drawn, 0.5 * (lo + hi))

    def spread(reuse: np.ndarray) -> float:
        new = (prompt - reuse)[later]
        return float(new.var() / max(float(new.mean()) ** 2, 1e-300))

    lo, hi = 0.0, SHAPE_POWER_MAX
    widest = at_share(hi)
    if spread(widest) <= new_scv:
        return widest
    for _ in range(POWER_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if spread(at_share(mid)) < new_scv else (lo, mid)
    return at_share(0.5 * (lo + hi))


SHAPE_POWER_MAX = 4.0
"""Widest power tried: the shape to the 4th is already all-or-nothing at any cap a scenario has."""
POWER_STEPS = 14  # bisection steps on the power: the spread within ~0.1 % of the range
SCALE_STEPS = 30  # on the scale, for each power: the share within ~1e-9


def synthetic(load, duration_s: float, seed: int, reply_s: float = 0.0) -> Requests:
    """Sessions at the scenario's rate over [0, duration_s) (see the module docstring). `reply_s`:
    the expected time from a turn's arrival to its reply, which a session spends besides thinking."""
    rng = np.random.default_rng(seed)
    rate = float(load.arrival_rps)
    turns = max(int(round(float(load.turns))), 1)
    think = float(load.session_s) / turns
    if turns == 1:
        n = rng.poisson(rate * duration_s)
        times = np.sort(rng.uniform(0.0, duration_s, n))
        inp = lognormal_lengths(rng, n, float(load.in_median), float(load.in_sigma), float(load.in_cap))
        out = lognormal_lengths(rng, n, float(load.out_median), float(load.out_sigma), float(load.out_cap))
        return Requests(arrival_s=times, input_tokens=inp, output_tokens=out, session=np.full(n, -1, np.int64),
                        reusable_tokens=np.zeros(n, np.int64), block_tokens=SYNTHETIC_BLOCK)
    session_rate = rate / turns
    n_new = rng.poisson(session_rate * duration_s)
    # sessions in progress at t = 0 (Little's law; the mean, for less noise): a turn every reply + think
    # time, so that the request rate is the scenario's; each a residual cycle from its next turn
    n_old = int(round(rate * (think + max(reply_s, 0.0))))
    k = n_old + n_new
    starts = np.concatenate([residual_turn_times(rng, n_old, think, reply_s),
                             np.sort(rng.uniform(0.0, duration_s, n_new))])
    first_turn = np.concatenate([rng.integers(1, turns, n_old), np.zeros(n_new, dtype=np.int64)])
    count = (turns - first_turn).astype(np.int64)
    session = np.repeat(np.arange(k, dtype=np.int64), count)
    head = np.cumsum(count) - count
    turn = first_turn[session] + np.arange(count.sum()) - np.repeat(head, count)
    n = session.size
    # a session's prompts grow turn by turn: its draws, sorted, around a scale of its own (the marginal
    # is unchanged: log-length = session scale + within-session draw, variances summing to sigma^2)
    sigma = float(load.in_sigma)
    new_scv = float(load.uncached_scv)
    # prompts grow by the new tokens of the turns that extend their context: all of them at a fixed
    # share, the trace's growth share of them when turns spread as it does (the rest come with the
    # few turns that lose most of their prefix, drawn in `spread_reuse`)
    grown = 1.0 - float(load.prefix_reuse)
    if new_scv > 0.0:
        from planner.traces.calibrate import new_token_growth_share

        grown *= new_token_growth_share()
    within = min(sigma, within_session_sigma(turns, 1.0 - grown))
    scale = rng.normal(0.0, np.sqrt(max(sigma**2 - within**2, 0.0)), k)
    drawn = lognormal_lengths(rng, k * turns, float(load.in_median), within, float(load.in_cap),
                              shift=np.repeat(scale, turns))
    inp = np.sort(drawn.reshape(k, turns), axis=1)[session, turn]
    out = lognormal_lengths(rng, n, float(load.out_median), float(load.out_sigma), float(load.out_cap))
    # a turn reuses `prefix_reuse` of its prompt, but never more than its session's previous context
    # (sorted draws can jump: the longest turns of a session reuse less)
    previous = np.concatenate([[0], inp[:-1] + out[:-1]]).astype(np.float64)
    previous[head] = np.inf  # a session's first turn in the run: its earlier context is not drawn (warm cache)
    if new_scv > 0.0:  # the turns' new tokens spread as the scenario states (a tool result, a new file)
        reuse = spread_reuse(rng, 1.0 - float(load.prefix_reuse), inp.astype(np.float64), previous, turn > 0,
                             new_scv)
    else:
        reuse = np.minimum(np.floor(float(load.prefix_reuse) * inp), previous)
    reuse = np.where(turn > 0, reuse, 0).astype(np.int64)
    arrival = np.full(n, np.nan)
    arrival[head] = starts
    nxt = np.arange(1, n + 1, dtype=np.int64)
    nxt[np.cumsum(count) - 1] = -1
    return Requests(arrival_s=arrival, input_tokens=inp, output_tokens=out, session=session,
                    reusable_tokens=reuse, block_tokens=SYNTHETIC_BLOCK, warm=head[first_turn > 0],
                    next_turn=nxt, think_s=think_times(rng, n, think))


def steady_state_sessions(durations: np.ndarray, session_rate: float, duration_s: float,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(session index, start time) of every session of a Poisson stream at `session_rate` that has a
    request in [0, duration_s), drawn from the trace's `durations`, as if the stream had run forever.

    The sessions still running at t = 0 are length-biased: a session of duration D is in progress
    with probability proportional to D, and has run a uniform share of D (renewal theory; Ross,
    Stochastic Processes, 1996, sec. 3.4); their number is Poisson with mean rate x E[D]. Starting
    the stream at one mean duration before 0 instead (as replay did before) misses every session
    longer than that which started earlier: agent sessions are heavy-tailed (the Claude Code
    trace: mean 10,247 s, p90 23,998 s, max 297,121 s), so a 1,200 s replay at 3 requests/s
    delivered 2.16."""
    k = durations.size
    d = np.maximum(durations, 0.0)
    mean_d = float(d.mean()) if k else 0.0
    n_old = int(rng.poisson(session_rate * mean_d)) if mean_d > 0 else 0
    old, left = length_biased(rng, d, n_old) if n_old else (np.zeros(0, np.int64), np.zeros(0))
    old_start = -left * d[old]
    n_new = int(rng.poisson(session_rate * duration_s))
    new = rng.integers(0, k, n_new)
    new_start = np.sort(rng.random(n_new)) * duration_s
    return np.concatenate([old, new]).astype(np.int64), np.concatenate([old_start, new_start])


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices start, start + 1, ..., start + count - 1 of every (start, count), concatenated in
    one pass rather than an arange or slice per range."""
    starts, counts = np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    before = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - before, counts)


def row_blocks(blocks: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(block ids of `rows` in order, their counts): request i's ids are blocks[offsets[i]:offsets[i + 1]]."""
    rows = np.asarray(rows, dtype=np.int64)
    counts = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
    return blocks[ranges(offsets[rows], counts)], counts


def sessions_copied(trace, picks: np.ndarray):
    """A trace made of the sessions `picks` (indices, repeats allowed), each a new session with its
    own block ids (copies share no cache), in the order given."""
    from dataclasses import replace as dc_replace

    order = np.lexsort((trace.t_s, trace.session))  # each session's requests, in time order
    by_session = trace.session[order]
    first = np.searchsorted(by_session, picks, side="left")
    last = np.searchsorted(by_session, picks, side="right")
    rows = order[ranges(first, last - first)]
    copy = np.repeat(np.arange(picks.size), last - first)
    span = int(trace.blocks.max()) + 1 if trace.blocks.size else 1
    blocks, counts = row_blocks(trace.blocks, trace.offsets, rows)
    blocks = blocks.astype(np.int64) + np.repeat(copy, counts).astype(np.int64) * span

    def take(x):
        return None if x is None else x[rows]

    names = trace.session_names

    return dc_replace(trace, t_s=trace.t_s[rows], input_tokens=trace.input_tokens[rows],
                      output_tokens=trace.output_tokens[rows],
                      offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), blocks=blocks,
                      session=copy.astype(np.int64),
                      session_names=[f"{names[s] if s < len(names) else s}#{c}" for c, s in enumerate(picks)],
                      subagent=take(trace.subagent), think_time_s=take(trace.think_time_s),
                      api_time_s=take(trace.api_time_s))


def own_clock_at_rate(t_s: np.ndarray, rate_rps: float, duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival times, trace row, copy number) of a trace with absolute timestamps replayed at
    `rate_rps`: its own clock stretched or compressed to that mean rate (its bursts and lulls kept),
    then repeated end to end until `duration_s`. The plan and the analytic column are at the
    scenario's rate; the Mooncake chat trace's own ~3 req/s had replayed a 30 req/s plan at a tenth
    of its load, and stopped arriving when the hour it covers ran out."""
    n = t_s.size
    t = t_s - float(np.min(t_s)) if n else t_s.astype(np.float64)
    span = float(t.max()) if n else 0.0
    if n < 2 or span <= 0.0 or rate_rps <= 0.0:
        return t.astype(np.float64), np.arange(n), np.zeros(n, np.int64)
    t = t * ((n - 1) / span / rate_rps)
    period = n / rate_rps  # one pass of the trace, and the gap to the next pass's first request
    copies = max(1, math.ceil(duration_s / period))
    rows = np.tile(np.arange(n), copies)
    copy = np.repeat(np.arange(copies, dtype=np.int64), n)
    return t[rows] + copy * period, rows, copy


def from_trace(trace, rate_rps: float, duration_s: float, seed: int, max_context: float) -> Requests:
    """A trace's requests on a timeline at `rate_rps` over [0, duration_s): sessions relative to their
    start drawn with repetition and started as a stationary Poisson stream (`steady_state_sessions`),
    or a trace's own clock scaled to that rate (`own_clock_at_rate`); prompts capped to the model's
    context. Open loop: the trace's own gaps. Requests of sessions in progress before t = 0 only
    warm their replica's cache."""
    from planner.traces.stats import prepare, session_durations

    if trace.session_relative and trace.has_sessions:
        durations = session_durations(trace, prepare(trace).done_s)
        per_session = trace.requests / max(durations.size, 1)
        rng = np.random.default_rng([seed, 7])
        picks, starts = steady_state_sessions(durations, rate_rps / per_session, duration_s, rng)
        trace = sessions_copied(trace, picks)
        t = trace.t_s + starts[trace.session]
        rows, copy = np.arange(t.size), np.zeros(t.size, np.int64)
    else:
        t, rows, copy = own_clock_at_rate(trace.t_s, rate_rps, duration_s)
    order = np.lexsort((np.arange(t.size), t))
    order = order[t[order] < duration_s]
    src = rows[order]
    inp = np.minimum(trace.input_tokens[src].astype(np.int64), int(max_context))
    out = np.maximum(trace.output_tokens[src].astype(np.int64), 1)
    blocks, counts = row_blocks(trace.blocks, np.asarray(trace.offsets), src)
    if copy.any():  # each copy of the trace its own block ids: a copy does not hit the cache of another
        span = int(trace.blocks.max()) + 1 if trace.blocks.size else 1
        blocks = blocks.astype(np.int64) + np.repeat(copy[order] * span, counts)
    new_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    session = trace.session[src].astype(np.int64) if trace.has_sessions else np.full(order.size, -1, np.int64)
    arrival = t[order].astype(np.float64)
    warm = np.flatnonzero(arrival < 0.0)
    arrival[warm] = -np.inf
    return Requests(arrival_s=arrival, input_tokens=np.maximum(inp, 1), output_tokens=out,
                    session=session, reusable_tokens=np.maximum(inp - 1, 0), block_tokens=int(trace.block_size),
                    warm=warm, offsets=new_offsets, blocks=blocks)
