"""One replica, iteration by iteration, like a continuous-batching engine (vLLM / SGLang scheduler).

Each step (or every N steps while a batch runs, where the hardware family's engines admit new prompts
every N: `Hw.admission_steps`; at once when idle): admit waiting requests first come first served
while fewer than `batch` run and their
whole prompt fits in the KV pool (HBM left after weights and workspace; cached prefix blocks are
evicted to make room); every decoding sequence scores k + 1 tokens, and the rest of the per-step
token budget (the model's prefill chunk) goes to prompts in admission order (chunked prefill mixed
with decode). The step lasts the decode (verify) step of the running sequences at their mean
context (KV length including the token being decoded, so a request's O - 1 decode steps run at
contexts L + 1 .. L + O - 1, whose mean is the L + O / 2 that `planner eval` uses) (`costs.StepTable`, the model's `speculative_step`) plus each prompt chunk's share of that
prompt's prefill time (`prefill_time(new, cached)` + reload, split in proportion to its tokens, so a
prompt alone takes exactly what `planner eval` says). A prompt's first token leaves with the step
that finishes its prefill. Speculative steps emit 1 + min(G, k) tokens per sequence, G geometric
with the model's acceptance at the sequence's context. When decode growth would overflow the pool,
the newest running request is preempted (its KV freed, recomputed later: vLLM's default).

Runs of pure decode steps (no prompt in progress, nothing admissible) are simulated in one numpy
pass up to the next event (a request finishes, an arrival could be admitted, memory runs out):
per-step work is vectorised over steps and sequences, never a Python loop per token.

Roles (a disaggregated plan, issue #15): a `prefill` replica runs the same loop with batch 1 and no
decoders; a prompt whose prefill completes samples its first token, leaves its KV (its blocks join
this instance's prefix cache, or the shared host pool) and is handed to the fleet (`on_prefilled`),
which ships the KV to a decode replica. A `decode` replica admits such a request with its KV already
there (no prefill; the prompt must fit in the KV pool) and decodes it; a request it preempts is
recomputed locally, as vLLM does.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from planner.simulate.arrivals import Requests
from planner.simulate.costs import Costs
from planner.simulate.prefix_cache import PrefixCache

MAX_RUN = 512  # decode steps simulated in one vectorised pass at most


class Records:
    """What happened to every request (arrays shared by the replicas of a run)."""

    def __init__(self, n: int):
        self.replica = np.full(n, -1, dtype=np.int64)
        self.first_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.cached_tokens = np.zeros(n, dtype=np.int64)
        self.cached_by_tier = np.zeros((n, 3), dtype=np.int64)
        self.generated = np.zeros(n, dtype=np.int64)
        self.preemptions = np.zeros(n, dtype=np.int64)
        self.dropped = np.zeros(n, dtype=bool)
        self.transfer_s = np.full(n, np.nan)  # disaggregated: end of prefill -> KV at the decode pool


ROLES = ("serve", "prefill", "decode")


class Replica:
    def __init__(self, index: int, costs: Costs, reqs: Requests, rec: Records, rng: np.random.Generator,
                 role: str = "serve", cache: PrefixCache | None = None):
        """`cache`: a prefix cache shared with other replicas (a host-memory pool: nothing of it in
        this replica's HBM); by default the replica's own, over its HBM, DRAM and NVMe."""
        assert role in ROLES, role
        self.index, self.role = index, role
        self.costs, self.reqs, self.rec, self.rng = costs, reqs, rec, rng
        self.batch, self.k = costs.batch, costs.spec_k
        self.pool = costs.kv_tokens_hbm
        self.share = costs.hbm_share
        self.budget = costs.chunk_tokens
        bt = reqs.block_tokens
        self.cache_in_hbm = cache is None
        self.cache = cache if cache is not None else PrefixCache(
            bt, int(costs.dram_tokens // bt), int(costs.nvme_tokens // bt), enabled=bool(costs.pool.cfg.prefix_cache > 0))
        self.clock = 0.0
        self.waiting: deque[int] = deque()
        self.prefilling: list[list] = []  # [rid, new tokens, done tokens, seconds, context after]
        self.d_rid = np.zeros(0, dtype=np.int64)
        self.d_ctx = np.zeros(0)
        self.d_left = np.zeros(0, dtype=np.int64)
        self.d_seq = np.zeros(0, dtype=np.int64)
        self.seq = 0
        self.active = 0.0  # KV tokens owned by running requests (their cached prefix is counted in the cache)
        self.shared: dict[int, int] = {}  # request -> cached prefix tokens it reads from the cache
        self.busy_s = 0.0  # time stepping inside `window` (a step or decode run across its edge counts in part)
        self.prefill_s = 0.0  # of which prefill chunks
        self.window = (0.0, np.inf)
        self.steps = 0
        # the scheduler admits new prompts every `admit_every` steps while a batch runs (a fixed grid
        # of step counts; fractional intervals alternate), at once when the replica is idle
        self.admit_every = float(np.asarray(costs.pool.hw.admission_steps)) if role == "serve" else 1.0
        self.next_admission = 0.0
        # an engine that streams a first token only after that many token-generation steps
        self.first_token_steps = float(np.asarray(costs.pool.hw.first_token_steps)) if role == "serve" else 0.0
        self.series_t: list[float] = []
        self.series_waiting: list[int] = []
        self.series_running: list[int] = []
        self.on_finish = None  # called with (request id, time) when a request finishes (closed-loop sessions)
        self.on_prefilled = None  # prefill role: called with (request id, time, prefill seconds, replica)
        self.pending: list[tuple[float, int]] = []  # heap of (arrival, request id) routed here, not yet queued
        self.hints: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (hit tokens, hit s, miss s)

    # --- state seen by routers and the fleet
    @property
    def running(self) -> int:
        return len(self.prefilling) + int(self.d_rid.size)

    def load(self) -> int:
        return self.running + len(self.waiting)

    def idle(self) -> bool:
        return not self.waiting and self.running == 0

    def enqueue(self, rid: int) -> None:
        self.rec.replica[rid] = self.index
        self.waiting.append(rid)

    def prewarm(self, rids) -> None:
        """Requests whose session ran here before t = 0 find their prefix cached (LRU keeps what fits)."""
        for rid in rids:
            self.cache.put(self.reqs.prefix_blocks(int(rid)), self.index)
        self._cache_room()

    def next_handoff(self) -> float:
        """Prefill role: the earliest time a prompt can leave this replica (its current prompt's
        remaining prefill, or its first queued arrival): no decode replica needs to stop before."""
        if self.prefilling:
            p = self.prefilling[0]
            return self.clock + (p[1] - p[2]) / max(p[1], 1) * p[3]
        if self.waiting:
            return self.clock
        return max(self.clock, self.pending[0][0]) if self.pending else np.inf

    # --- memory
    def _in_window(self, start: float, end: float) -> float:
        """Seconds of [start, end] inside the measured window: a decode run that starts before its
        end may outlast it, and counting all of it read 'stepping 102% of the time'."""
        return max(0.0, min(end, self.window[1]) - max(start, self.window[0]))

    def _fits(self, extra: float) -> bool:
        return (self.active + extra) * self.share <= self.pool

    def _cache_room(self) -> None:
        room = (self.pool - self.active * self.share) // self.cache.block_tokens if self.cache_in_hbm else 0
        self.cache.fit_hbm(int(max(room, 0)))

    # --- admission
    def _admit(self) -> None:
        q = self.k + 1
        reqs, rec = self.reqs, self.rec
        while self.waiting and self.running < self.batch:
            rid = self.waiting[0]
            if self.role == "decode" and rec.preemptions[rid] == 0:
                if self._admit_shipped(rid, q):
                    continue
                break
            resumed = rec.generated[rid] > 0 or rec.preemptions[rid] > 0
            prompt = int(reqs.input_tokens[rid]) + int(rec.generated[rid])
            if not self._fits(prompt + q):  # as if nothing were cached: a prompt must fit whole
                if self._reject_if_alone(rid):
                    continue
                break
            self.waiting.popleft()
            remote = (0, 0)
            if resumed:
                hit = (0, 0, 0)
            else:
                blocks = self.cache.take(reqs.prefix_blocks(rid), self.index)
                hit = self._hit_tokens(rid, blocks)
                bt = reqs.block_tokens
                remote = (min(self.cache.remote[0] * bt, hit[1]), min(self.cache.remote[1] * bt, hit[2]))
            cached = sum(hit)
            if not resumed:
                rec.cached_tokens[rid] = cached
                rec.cached_by_tier[rid] = hit
            new = prompt - cached
            seconds = self._prefill_seconds(rid, new, hit, resumed, remote)
            self.shared[rid] = cached
            self.active += new
            self.prefilling.append([rid, new, 0, seconds, prompt, self.seq])
            self.seq += 1
        self._cache_room()

    def _reject_if_alone(self, rid: int) -> bool:
        """The head of the queue does not fit: with nothing running it never will, so the engine
        rejects it (True); otherwise it waits for memory to free (False)."""
        if self.running:
            return False
        self.waiting.popleft()
        self.rec.dropped[rid] = True
        return True

    def _admit_shipped(self, rid: int, q: int) -> bool:
        """Decode role: a request whose prompt KV arrived from the prefill pool starts decoding."""
        reqs, rec = self.reqs, self.rec
        context = int(reqs.input_tokens[rid]) + int(rec.generated[rid]) - 1  # KV held: the prompt
        if not self._fits(context + 1 + q):
            return self._reject_if_alone(rid)
        self.waiting.popleft()
        self.shared[rid] = 0
        self.active += context
        self.d_rid = np.append(self.d_rid, rid)
        self.d_ctx = np.append(self.d_ctx, float(context))
        self.d_left = np.append(self.d_left, max(int(reqs.output_tokens[rid]) - int(rec.generated[rid]), 0))
        self.d_seq = np.append(self.d_seq, self.seq)
        self.seq += 1
        return True

    def _hit_tokens(self, rid: int, blocks: tuple[int, int, int]) -> tuple[int, int, int]:
        """Cached tokens per tier: whole blocks, at most the reusable prefix, never the last prompt token."""
        bt = self.reqs.block_tokens
        limit = min(int(self.reqs.reusable_tokens[rid]), int(self.reqs.input_tokens[rid]) - 1)
        out = []
        for n in blocks:
            take = max(min(n * bt, limit), 0)
            out.append(take)
            limit -= take
        return out[0], out[1], out[2]

    def _prefill_seconds(self, rid: int, new: int, hit: tuple[int, int, int], resumed: bool,
                         remote: tuple[int, int] = (0, 0)) -> float:
        """The request's prefill time: precomputed for the two common cases (a miss, the whole reusable
        prefix found in HBM) in one vectorised call for the run, else one call now."""
        if self.hints is not None and not resumed and not hit[1] and not hit[2]:
            hit_tokens, hit_s, miss_s = self.hints
            if hit[0] == 0:
                return float(miss_s[rid])
            if hit[0] == hit_tokens[rid]:
                return float(hit_s[rid])
        return float(self.costs.prefill_seconds(new, *hit, *remote))

    # --- preemption
    def _preempt_newest(self) -> None:
        rec = self.rec
        if self.prefilling and (self.d_seq.size == 0 or self.prefilling[-1][5] > self.d_seq.max()):
            rid, _, _, _, prompt, _ = self.prefilling.pop()
            self.active -= prompt - self.shared.pop(rid, 0)
        else:
            i = int(np.argmax(self.d_seq))
            rid = int(self.d_rid[i])
            self.active -= float(self.d_ctx[i]) - self.shared.pop(rid, 0)
            keep = np.arange(self.d_rid.size) != i
            self.d_rid, self.d_ctx, self.d_left, self.d_seq = (self.d_rid[keep], self.d_ctx[keep], self.d_left[keep],
                                                               self.d_seq[keep])
        rec.preemptions[rid] += 1
        self.waiting.appendleft(rid)

    # --- steps
    def _sample_tokens(self, steps: int) -> np.ndarray:
        """Tokens each decoding sequence emits in each of `steps` steps: 1 + min(G, k), G geometric."""
        n = self.d_rid.size
        if self.k <= 0:
            return np.ones((steps, n), dtype=np.int64)
        alpha = np.clip(self.costs.acceptance(self.d_ctx), 1e-9, 1.0 - 1e-9)
        u = self.rng.random((steps, n))
        accepted = np.floor(np.log(np.maximum(u, 1e-300)) / np.log(alpha))
        return 1 + np.minimum(accepted, self.k).astype(np.int64)

    def _finish(self, done: np.ndarray) -> None:
        rec, reqs = self.rec, self.reqs
        for i in np.flatnonzero(done):
            rid = int(self.d_rid[i])
            # a first token delayed by `first_token_steps` (an estimate of the steps it waits for) is
            # the last one of a one-token reply, and never later than a longer reply's last
            if rec.generated[rid] > 1:
                rec.first_s[rid] = min(rec.first_s[rid], self.clock)
            rec.finish_s[rid] = max(self.clock, rec.first_s[rid])
            self.active -= float(self.d_ctx[i]) - self.shared.pop(rid, 0)
            self.cache.put(reqs.context_blocks(rid, int(self.d_ctx[i])), self.index)
            if self.on_finish is not None:
                self.on_finish(rid, self.clock)
        keep = ~done
        self.d_rid, self.d_ctx, self.d_left, self.d_seq = (self.d_rid[keep], self.d_ctx[keep], self.d_left[keep],
                                                           self.d_seq[keep])
        self._cache_room()

    def step(self, stop_at: float) -> None:
        """Advance by one step (or a run of pure decode steps ending before `stop_at` when a new
        arrival could be admitted then); an idle replica jumps to `stop_at`."""
        q = self.k + 1
        while self.running and not self._fits(self.d_rid.size * q):
            self._preempt_newest()
        due = self._admission_due()
        if due:
            self._admit()
        self._record()
        if self.running == 0:
            self.clock = max(self.clock, stop_at)
            return
        if self.prefilling:
            self._mixed_step()
        elif not due and self.waiting:  # requests wait for the next admission: run the steps until it
            self._decode_run(np.inf, max(int(np.ceil(self.next_admission)) - self.steps, 1))
        else:
            self._decode_run(stop_at if self.running < self.batch else np.inf)
        # and as the step leaves it: a replica that ran out of work is not stepped again until new
        # work comes, so its last requests would otherwise read as running until then
        self._record()

    def _record(self) -> None:
        """One point of the queue series: requests waiting and running from now on."""
        self.series_t.append(self.clock)
        self.series_waiting.append(len(self.waiting))
        self.series_running.append(self.running)

    def _admission_due(self) -> bool:
        """Whether the scheduler admits new prompts before this step: always on an idle replica (which
        starts a new interval) or with one-step intervals; otherwise at the points of a fixed grid,
        `admit_every` steps apart (grid point b admits before step ceil(b)). Points that a decode run
        passed while nobody waited are spent; a run never passes one while somebody waits (it stops
        at each arrival, and `step` then runs only up to the next point)."""
        if self.admit_every <= 1.0:
            return True
        if self.running == 0:
            self.next_admission = self.steps + self.admit_every
            return True
        while np.ceil(self.next_admission) < self.steps:
            self.next_admission += self.admit_every
        if np.ceil(self.next_admission) > self.steps:
            return False
        self.next_admission += self.admit_every
        return True

    def _mixed_step(self) -> None:
        q = self.k + 1
        n = int(self.d_rid.size)
        left = self.budget - n * q
        duration = float(self.costs.table.step(n, self.d_ctx.mean() + 1.0)) if n else 0.0
        prefill = 0.0
        for p in self.prefilling:
            if left <= 0:
                break
            take = min(p[1] - p[2], left)
            prefill += take / p[1] * p[3]
            p[2] += take
            left -= take
        duration += prefill
        inside = self._in_window(self.clock, self.clock + duration)
        self.busy_s += inside
        self.prefill_s += prefill * inside / duration if duration > 0 else 0.0
        self.clock += duration
        self.steps += 1
        rec = self.rec
        if n:
            emitted = np.minimum(self._sample_tokens(1)[0], self.d_left)
            self.d_ctx = self.d_ctx + emitted
            self.d_left = self.d_left - emitted
            self.active += float(emitted.sum())
            rec.generated[self.d_rid] += emitted
        still = []
        for p in self.prefilling:
            if p[2] < p[1]:
                still.append(p)
                continue
            rid = p[0]
            if self.role == "prefill":  # first token sampled; the KV leaves for the decode pool
                rec.generated[rid] += 1
                self.active -= p[4] - self.shared.pop(rid, 0)
                self.cache.put(self.reqs.context_blocks(rid, p[4]), self.index)
                self.on_prefilled(rid, self.clock, p[3], self.index)
                continue
            if np.isnan(rec.first_s[rid]):
                # the first token leaves now, or after `first_token_steps` steps of the batch it joins
                # (each priced as the next step with it running: near enough to count steps one by one)
                running = self.d_rid.size + 1
                wait = (self.first_token_steps * float(self.costs.table.step(running, (self.d_ctx.sum() + p[4]) / running + 1.0))
                        if self.first_token_steps > 0 else 0.0)
                rec.first_s[rid] = self.clock + wait
            rec.generated[rid] += 1
            left_tokens = int(self.reqs.output_tokens[rid]) - int(rec.generated[rid])
            self.d_rid = np.append(self.d_rid, rid)
            self.d_ctx = np.append(self.d_ctx, float(p[4]))
            self.d_left = np.append(self.d_left, max(left_tokens, 0))
            self.d_seq = np.append(self.d_seq, p[5])
        self.prefilling = still
        if self.role == "prefill":
            self._cache_room()
        done = self.d_left <= 0
        if done.any():
            self._finish(done)

    def _decode_run(self, stop_at: float, max_steps: int = MAX_RUN) -> None:
        q = self.k + 1
        n = int(self.d_rid.size)
        # every step emits at least one token per sequence, so the first finishes within min(left)
        # steps; steps only lengthen as contexts grow, so stop_at is reached within `until` steps
        steps = int(min(self.d_left.min(), MAX_RUN, max_steps))
        if np.isfinite(stop_at):
            first = float(self.costs.table.step(n, self.d_ctx.mean() + 1.0))
            steps = int(min(steps, max(np.ceil((stop_at - self.clock) / max(first, 1e-12)), 0) + 1))
        steps = max(steps, 1)
        emitted = self._sample_tokens(steps)
        grown = np.cumsum(emitted, axis=0)  # [steps, n] tokens after each step
        finish_at = int((grown < self.d_left).sum(axis=0).min())  # first step at which a sequence is done
        total = grown.sum(axis=1)
        before = np.concatenate([[0.0], total[:-1]])
        seconds = self.costs.table.step(n, (self.d_ctx.sum() + before) / n + 1.0)
        ends = self.clock + np.cumsum(seconds)
        last = min(finish_at, steps - 1)
        if np.isfinite(stop_at):
            last = min(last, int(np.searchsorted(ends, stop_at)))
        over = (self.active + total + n * q) * self.share > self.pool
        if over.any():
            last = min(last, int(np.argmax(over)))
        last = max(min(last, steps - 1), 0)
        got = np.minimum(grown[last], self.d_left)
        self.busy_s += self._in_window(self.clock, float(ends[last]))
        self.clock = float(ends[last])
        self.steps += last + 1
        self.d_ctx = self.d_ctx + got
        self.d_left = self.d_left - got
        self.active += float(got.sum())
        self.rec.generated[self.d_rid] += got
        done = self.d_left <= 0
        if done.any():
            self._finish(done)
