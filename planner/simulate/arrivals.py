"""The request stream: who asks for what, and when.

Synthetic (the scenario's workload): sessions of `turns` requests start as a Poisson process at
`arrival_rate / turns`, so requests arrive at the scenario's rate; a session's next turn arrives an
exponential gap (mean `session_s / turns`) after the previous turn arrived, but never before its
reply finished (an agent needs the reply before its next call, so a turn never finds its own
previous turn still running; the request rate stays the scenario's while replies are short
against the gap). The run starts in steady state: the sessions between turns at t = 0 (Poisson, mean
rate x think time) are mid-way, at a uniformly drawn turn, with a
warm cache: the prefix each of them left before t = 0 is in its replica's cache when the run starts
(the LRU then keeps what fits). The warm-up that `stats` leaves out covers the rest of the transient. Prompt and output lengths are drawn from the
scenario's capped log-normals; a session's `turns` prompt lengths are drawn together around a
scale of the session's own and sorted, so its context grows turn by turn as in real agent sessions
while the length distribution over all requests stays the scenario's: the log-length spread is split
between sessions and within a session, the within part no wider than lets each turn grow by the new
tokens `prefix_reuse` leaves (`within_session_sigma`; drawing the whole spread inside every session
made a turn's reusable prefix outgrow the previous context, so sessions reused less than stated). Every turn after a session's first reuses
`prefix_reuse` of its prompt: block j of session s is id s x 2^24 + j,
so a turn's leading blocks are the previous turns' context. A turn reuses `prefix_reuse` of its
prompt, or the previous turn's whole context when that is shorter (`stats` reports the realised
share of prompt tokens that were reusable beside the scenario's).

Trace replay (`--trace`): the trace's requests with their own lengths, sessions and block ids
(`hash_ids`); sessions whose clocks start at 0 are laid out by `planner.traces.stats.timeline` at the
scenario's request rate, traces with absolute times keep them.
"""

from __future__ import annotations

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
    think_s: np.ndarray | None = None  # gap from request i's arrival to its session's next request
    offsets: np.ndarray | None = None  # trace replay: request i's block ids are blocks[offsets[i]:offsets[i + 1]]
    blocks: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.arrival_s.size)

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


def synthetic(load, duration_s: float, seed: int) -> Requests:
    """Sessions at the scenario's rate over [0, duration_s) (see the module docstring)."""
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
    n_old = int(round(rate * think))  # sessions between turns at t = 0 (Little's law; the mean, for less noise)
    k = n_old + n_new
    starts = np.concatenate([rng.exponential(think, n_old), np.sort(rng.uniform(0.0, duration_s, n_new))])
    first_turn = np.concatenate([rng.integers(1, turns, n_old), np.zeros(n_new, dtype=np.int64)])
    count = (turns - first_turn).astype(np.int64)
    session = np.repeat(np.arange(k, dtype=np.int64), count)
    head = np.cumsum(count) - count
    turn = first_turn[session] + np.arange(count.sum()) - np.repeat(head, count)
    n = session.size
    # a session's prompts grow turn by turn: its draws, sorted, around a scale of its own (the marginal
    # is unchanged: log-length = session scale + within-session draw, variances summing to sigma^2)
    sigma = float(load.in_sigma)
    within = min(sigma, within_session_sigma(turns, float(load.prefix_reuse)))
    scale = rng.normal(0.0, np.sqrt(max(sigma**2 - within**2, 0.0)), k)
    drawn = lognormal_lengths(rng, k * turns, float(load.in_median), within, float(load.in_cap),
                              shift=np.repeat(scale, turns))
    inp = np.sort(drawn.reshape(k, turns), axis=1)[session, turn]
    out = lognormal_lengths(rng, n, float(load.out_median), float(load.out_sigma), float(load.out_cap))
    # a turn reuses `prefix_reuse` of its prompt, but never more than its session's previous context
    # (sorted draws can jump: the longest turns of a session reuse less)
    previous = np.concatenate([[0], inp[:-1] + out[:-1]]).astype(np.float64)
    previous[head] = np.inf  # a session's first turn in the run: its earlier context is not drawn (warm cache)
    reuse = np.where(turn > 0, np.minimum(np.floor(float(load.prefix_reuse) * inp), previous), 0).astype(np.int64)
    arrival = np.full(n, np.nan)
    arrival[head] = starts
    nxt = np.arange(1, n + 1, dtype=np.int64)
    nxt[np.cumsum(count) - 1] = -1
    return Requests(arrival_s=arrival, input_tokens=inp, output_tokens=out, session=session,
                    reusable_tokens=reuse, block_tokens=SYNTHETIC_BLOCK, warm=head[first_turn > 0],
                    next_turn=nxt, think_s=rng.exponential(think, n))


MAX_TILES = 1000


def tiled(trace, copies: int):
    """The trace's sessions repeated `copies` times as new sessions (session and block ids shifted,
    so copies share no cache), for a run longer or busier than the trace itself."""
    from dataclasses import replace as dc_replace

    if copies <= 1:
        return trace
    n_sess = max(int(trace.session.max()) + 1, 1)
    span = int(trace.blocks.max()) + 1 if trace.blocks.size else 1
    counts = np.diff(trace.offsets)
    reps = np.arange(copies)
    blocks = np.concatenate([trace.blocks + c * span for c in reps])
    offsets = np.concatenate([[0], np.cumsum(np.tile(counts, copies))]).astype(np.int64)

    def tile(x):
        return None if x is None else np.tile(x, copies)

    return dc_replace(trace, t_s=np.tile(trace.t_s, copies), input_tokens=np.tile(trace.input_tokens, copies),
                      output_tokens=np.tile(trace.output_tokens, copies), offsets=offsets, blocks=blocks,
                      session=np.concatenate([trace.session + c * n_sess for c in reps]),
                      session_names=[f"{name}#{c}" for c in reps for name in trace.session_names],
                      subagent=tile(trace.subagent), think_time_s=tile(trace.think_time_s),
                      api_time_s=tile(trace.api_time_s))


def from_trace(trace, rate_rps: float, duration_s: float, seed: int, max_context: float) -> Requests:
    """A trace's requests on a timeline at `rate_rps` (sessions relative to their start, repeated as
    new sessions when the trace holds fewer requests than the run needs) or on the trace's own clock,
    over [0, duration_s); prompts capped to the model's context. Open loop: the trace's own gaps."""
    from planner.traces.stats import prepare, session_durations, timeline

    lead = 0.0
    if trace.session_relative and trace.has_sessions:
        # sessions start as a Poisson stream from one mean session length before t = 0, so the run
        # starts in steady state: requests before 0 only warm their replica's cache
        lead = float(np.mean(session_durations(trace, prepare(trace).done_s)))
        needed = 1.2 * rate_rps * (duration_s + lead)
        trace = tiled(trace, int(min(MAX_TILES, max(1, np.ceil(needed / max(trace.requests, 1))))))
        p = prepare(trace)
        per_session = trace.requests / max(int(trace.session.max()) + 1, 1)
        mean_dur = float(np.mean(session_durations(trace, p.done_s)))
        t, _ = timeline(p, rate_rps / per_session * max(mean_dur, 1e-9), seed)
        t = t - lead
    else:
        t = trace.t_s - float(np.min(trace.t_s)) if trace.requests else trace.t_s
    order = np.lexsort((np.arange(t.size), t))
    order = order[t[order] < duration_s]
    inp = np.minimum(trace.input_tokens[order].astype(np.int64), int(max_context))
    out = np.maximum(trace.output_tokens[order].astype(np.int64), 1)
    offsets = np.asarray(trace.offsets)
    counts = offsets[order + 1] - offsets[order]
    new_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    blocks = np.concatenate([trace.blocks[offsets[i]:offsets[i + 1]] for i in order]) if order.size else \
        np.zeros(0, dtype=np.int64)
    session = trace.session[order].astype(np.int64) if trace.has_sessions else np.full(order.size, -1, np.int64)
    arrival = t[order].astype(np.float64)
    warm = np.flatnonzero(arrival < 0.0)
    arrival[warm] = -np.inf
    return Requests(arrival_s=arrival, input_tokens=np.maximum(inp, 1), output_tokens=out,
                    session=session, reusable_tokens=np.maximum(inp - 1, 0), block_tokens=int(trace.block_size),
                    warm=warm, offsets=new_offsets, blocks=blocks)
