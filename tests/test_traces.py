"""Trace reading and prefix-cache replay: checked against a brute-force cache, hand counts and bad rows.

The oracle below is a literal LRU (an OrderedDict of block ids; a request's blocks are touched tail
first so its head is the most recent, as engines free a sequence tail first) and a literal
"seen set": the replay's stack-distance arithmetic must agree with it exactly.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.traces.readers import Trace, TraceError, read_trace
from planner.traces.replay import replay
from planner.traces.stats import prepare, run, trace_stats

DATA = Path(__file__).parent / "data"
CC = DATA / "claude_code_slice.b512.jsonl.gz"
CHAT = DATA / "mooncake_chat_slice.jsonl.gz"
WEKA = DATA / "claude_code_slice.weka.jsonl"
EXAMPLES = int(os.environ.get("PLANNER_PROPERTY_EXAMPLES", "0") or 0)
SETTINGS = settings(max_examples=EXAMPLES or 60, deadline=None, derandomize=not EXAMPLES, database=None)


def _rows(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def _oracle(requests: list[list[int]], capacity: float) -> tuple[int, int]:
    """(hit blocks, total blocks) of a literal LRU of `capacity` blocks, requests in the given order."""
    cache: OrderedDict[int, None] = OrderedDict()
    hits = total = 0
    for blocks in requests:
        k = 0
        while k < len(blocks) and blocks[k] in cache:
            k += 1
        hits += k
        total += len(blocks)
        for b in reversed(blocks):
            cache[b] = None
            cache.move_to_end(b)
        while len(cache) > capacity:
            cache.popitem(last=False)
    return hits, total


def _trace(requests: list[list[int]], times: list[float] | None = None) -> Trace:
    n = len(requests)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in requests])
    blocks = np.asarray([b for r in requests for b in r], dtype=np.int64)
    return Trace(path="mem", format="mooncake", block_size=16,
                 t_s=np.asarray(times if times is not None else np.arange(n), dtype=np.float64),
                 input_tokens=np.asarray([16 * len(r) for r in requests], dtype=np.int64),
                 output_tokens=np.ones(n, dtype=np.int64), offsets=offsets, blocks=blocks,
                 session=np.full(n, -1, dtype=np.int64))


@st.composite
def chained_requests(draw) -> list[list[int]]:
    """Prefix-chained block ids: each request shares a prefix of an earlier one, then new blocks."""
    n = draw(st.integers(1, 25))
    out: list[list[int]] = []
    next_id = 0
    for _ in range(n):
        prefix: list[int] = []
        if out and draw(st.booleans()):
            parent = out[draw(st.integers(0, len(out) - 1))]
            prefix = parent[:draw(st.integers(0, len(parent)))]
        fresh = draw(st.integers(0 if prefix else 1, 6))
        out.append(prefix + list(range(next_id, next_id + fresh)))
        next_id += fresh
    return out


def _replay(requests: list[list[int]], times: list[float] | None = None):
    tr = _trace(requests, times)
    order = np.arange(tr.requests)
    return replay(tr, order, tr.t_s)


@SETTINGS
@given(chained_requests(), st.integers(0, 40))
def test_lru_replay_equals_a_literal_lru_cache(requests, capacity):
    hits, total = _oracle(requests, capacity)
    assert _replay(requests).lru_hit_rate(capacity)[0] * total == pytest.approx(hits, abs=1e-9)


@SETTINGS
@given(chained_requests())
def test_hit_rate_never_falls_when_capacity_grows(requests):
    rates = _replay(requests).lru_hit_rate(np.arange(0, 60))
    assert np.all(np.diff(rates) >= -1e-12)


@SETTINGS
@given(chained_requests())
def test_unbounded_cache_hits_exactly_the_repeated_prefix_blocks(requests):
    seen: set[int] = set()
    repeated = 0
    for blocks in requests:
        k = 0
        while k < len(blocks) and blocks[k] in seen:
            k += 1
        repeated += k
        seen.update(blocks)
    total = sum(len(r) for r in requests)
    rp = _replay(requests)
    assert rp.seen_blocks == repeated
    assert rp.unbounded_hit_rate == pytest.approx(repeated / total)
    assert rp.lru_hit_rate(10**9)[0] == pytest.approx(repeated / total)  # a cache larger than the trace


@SETTINGS
@given(chained_requests(), st.lists(st.floats(0, 100), min_size=25, max_size=25))
def test_ttl_infinite_is_unbounded_and_ttl_grows_monotonically(requests, gaps):
    times = np.cumsum(gaps[:len(requests)]).tolist()
    rp = _replay(requests, times)
    assert rp.ttl_hit_rate(np.inf)[0] == pytest.approx(rp.unbounded_hit_rate)
    assert np.all(np.diff(rp.ttl_hit_rate(np.linspace(0, 3000, 50))) >= -1e-12)


def test_ttl_drops_a_block_idle_longer_than_the_ttl():
    # request 1 reuses request 0's 3 blocks 10 s later; request 2 reuses them 100 s after that
    rp = _replay([[1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4, 5]], [0.0, 10.0, 110.0])
    total = 3 + 4 + 5
    assert rp.ttl_hit_rate([5, 10, 99, 100])[:4].tolist() == pytest.approx(
        [0, 3 / total, 3 / total, (3 + 4) / total])


def test_claude_code_slice_statistics_match_hand_counts():
    rows = _rows(CC)
    s = trace_stats(read_trace(CC), concurrency=(2,))
    assert s["requests"] == len(rows) == 257
    assert s["sessions"] == len({r["session_id"] for r in rows}) == 6
    assert s["subagent_requests"] == sum(r["agent"] != "main" for r in rows)
    inputs = sorted(r["input_length"] for r in rows)
    assert s["input_tokens"]["p50"] == inputs[128]  # 257 values: the 129th is the median
    assert s["input_tokens"]["max"] == inputs[-1]
    per_session = sorted(sum(r["session_id"] == sid for r in rows) for sid in {r["session_id"] for r in rows})
    assert s["requests_per_session"]["p50"] == (per_session[2] + per_session[3]) / 2
    assert s["timestamps"] == "session-relative"
    # every session starts at 0 side by side; the oracle replays them in the same (time, row) order
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["timestamp"], i))
    reqs = [rows[i]["hash_ids"] for i in order]
    hits, total = _oracle(reqs, float("inf"))
    assert s["prefix_hit_unbounded"] == pytest.approx(hits / total)
    for row in s["lru"]:
        h, t = _oracle(reqs, int(row["capacity_tokens"] / 512))
        assert row["hit_rate"] == pytest.approx(h / t, abs=1.0 / total)


def test_chat_slice_has_absolute_times_and_a_rate():
    rows = _rows(CHAT)
    s = trace_stats(read_trace(CHAT))
    assert s["sessions"] is None and s["timestamps"] == "absolute"
    span_s = (rows[-1]["timestamp"] - rows[0]["timestamp"]) / 1000
    assert s["arrival_rate_rps"] == pytest.approx((len(rows) - 1) / span_s)
    assert s["arrival_source"] == "absolute timestamps"


def test_weka_sessions_read_like_the_same_rows():
    weka = read_trace(WEKA)
    rows = [r for r in _rows(CC) if r["session_id"] in ("trace_0291", "trace_0504")]
    assert weka.format == "weka" and weka.block_size == 512
    assert weka.requests == len(rows)
    assert sorted(weka.input_tokens.tolist()) == sorted(r["input_length"] for r in rows)
    assert int(weka.subagent.sum()) == sum(r["agent"] != "main" for r in rows)
    assert weka.session_relative
    # same sessions, same block structure: the same reuse (ids were made local again, then re-scoped)
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["timestamp"], rows[i]["agent"] != "main", i))
    hits, total = _oracle([rows[i]["hash_ids"] for i in order], float("inf"))
    assert run(prepare(weka)).unbounded_hit_rate == pytest.approx(hits / total)


def test_weka_whole_file_object_and_nested_subagents(tmp_path):
    doc = {"id": "s", "block_size": 64, "hash_id_scope": "local", "requests": [
        {"t": 0, "in": 128, "out": 5, "hash_ids": [1, 2]},
        {"type": "subagent", "t": 1, "requests": [{"t": 1, "in": 64, "out": 3, "hash_ids": [1]}]},
        {"t": 5, "in": 192, "out": 5, "hash_ids": [1, 2, 3]}]}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(doc, indent=2))
    tr = read_trace(path)
    assert tr.requests == 3 and tr.block_size == 64 and tr.subagent.tolist() == [False, True, False]
    assert run(prepare(tr)).unbounded_hit_rate == pytest.approx((1 + 2) / 6)


@pytest.mark.parametrize(("text", "message"), [
    ('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n{"timestamp": 1,',
     "line 2: not valid JSON"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n'
     '{"timestamp": 0, "output_length": 1, "hash_ids": [1]}\n', "line 2: input_length: required key is missing"),
    ('{"timestamp": 0, "input_length": -5, "output_length": 1, "hash_ids": [1]}\n', "line 1: input_length: must be >= 0"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1, "x"]}\n',
     "line 1: hash_ids: expected a list of integer block ids"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 1}\n', "line 1: hash_ids: required key is missing"),
    ('{"timestamp": 0, "input_length": 5.5, "output_length": 1, "hash_ids": []}\n', "whole number of tokens"),
    ('{"id": "a", "requests": [{"t": 0, "in": 5, "out": 1}]}\n', "line 1: requests[0].hash_ids: required key"),
    ('{"id": "a", "requests": [{"type": "subagent"}]}\n', "line 1: requests[0].requests: required key"),
    ("\n\n", "no requests found"),
])
def test_bad_rows_are_one_line_errors_with_the_line_number(tmp_path, invoke, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(TraceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_trace(path)
    result = invoke("trace", "stats", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr and "Traceback" not in result.stderr


def test_truncated_gzip_is_a_one_line_error(tmp_path, invoke):
    blob = CHAT.read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    result = invoke("trace", "stats", path)
    assert result.exit_code == 2 and "is the file complete?" in result.stderr
    assert result.stderr.count("\n") == 1


def test_corrupt_gzip_data_is_a_one_line_error(tmp_path, invoke):
    """A gzip header followed by data that does not decompress raises zlib.error, not OSError: it
    was an "internal error" (exit 3) without the file's name."""
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage-after-magic")
    result = invoke("trace", "stats", path)
    assert result.exit_code == 2 and str(path) in result.stderr and "is the file complete?" in result.stderr
    assert result.stderr.count("\n") == 1 and "internal error" not in result.stderr


def test_trace_stats_json_has_the_contract_keys(invoke):
    result = invoke("trace", "stats", CC, "--format", "json", "--concurrency", "2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("requests", "sessions", "input_tokens", "output_tokens", "prefix_hit_unbounded", "lru"):
        assert key in data
    assert set(data["input_tokens"]) >= {"p50", "p90", "p99"} and set(data["output_tokens"]) >= {"p50", "p90"}
    assert all({"capacity_tokens", "capacity_fraction", "hit_rate"} <= set(r) for r in data["lru"])
    assert data["arrival_rate_rps"] > 0 and "session arrivals" in data["arrival_source"]


def test_trace_stats_table_snapshot(invoke, snapshot):
    result = invoke("trace", "stats", CHAT, "--concurrency", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout == snapshot


@pytest.mark.parametrize("ids", ['[1, 2.5]', '["1"]', '[true]', '{"a": 1}'])
def test_weka_hash_ids_must_be_integers(tmp_path, ids):
    path = tmp_path / "w.jsonl"
    path.write_text('{"id": "a", "requests": [{"t": 0, "in": 5, "out": 1, "hash_ids": ' + ids + '}]}\n')
    with pytest.raises(TraceError, match=r"line 1: requests\[0\]\.hash_ids: expected a list of integer block ids"):
        read_trace(path)


def _uncached_walk() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uncached tokens of every request with an unbounded cache, whether it is a later turn of its
    session, its prompt tokens), counted directly from the rows: time order; a request hits its
    leading blocks that any earlier request sent; a session's first request in time is not a later
    turn."""
    rows = sorted(enumerate(_rows(CC)), key=lambda r: (r[1]["timestamp"], r[0]))
    seen: set[int] = set()
    sessions: set[str] = set()
    uncached, later, prompts = [], [], []
    for _, row in rows:
        lead = 0
        for block in row["hash_ids"]:
            if block not in seen:
                break
            lead += 1
        seen.update(row["hash_ids"])
        uncached.append(row["input_length"] - min(lead * 512, row["input_length"]))
        later.append(row["session_id"] in sessions)
        prompts.append(row["input_length"])
        sessions.add(row["session_id"])
    return np.asarray(uncached, dtype=float), np.asarray(later), np.asarray(prompts, dtype=float)


def test_uncached_tokens_spread_matches_a_walk_over_the_raw_rows():
    """cs^2 of each request's uncached tokens with an unbounded cache, counted from the rows."""
    u, _, _ = _uncached_walk()
    stats = trace_stats(read_trace(CC), concurrency=())["uncached_tokens"]
    assert stats["mean"] == pytest.approx(u.mean(), rel=1e-9)
    assert stats["scv"] == pytest.approx(u.var() / u.mean() ** 2, rel=1e-9)


def test_new_tokens_are_the_uncached_tokens_of_every_turn_but_a_sessions_first():
    """`new_tokens` (what `workload.sessions.uncached_scv` takes) leaves out each session's first
    request, which the screen counts as a miss on its own."""
    u, later, _ = _uncached_walk()
    n = u[later]
    stats = trace_stats(read_trace(CC), concurrency=())
    assert n.size == stats["requests"] - stats["sessions"]
    assert stats["new_tokens"]["mean"] == pytest.approx(n.mean(), rel=1e-9)
    assert stats["new_tokens"]["p50"] == pytest.approx(np.percentile(n, 50), rel=1e-9)
    assert stats["new_tokens"]["scv"] == pytest.approx(n.var() / n.mean() ** 2, rel=1e-9)


def test_a_block_size_the_rows_contradict_is_named(invoke, tmp_path):
    """Mooncake rows do not record their block size: read at 64 tokens, the 512-token slice gave
    '93.3 % of blocks (11.7 % of tokens)' without a word. Each row's hash-id count bounds the size
    (ceil(input_length / B) = ids); a size most rows contradict is named with the one they fit."""
    from planner.traces.readers import block_size_note

    path = DATA / "claude_code_slice.b512.jsonl.gz"
    assert block_size_note(read_trace(path)) == ""  # the default, 512: the slice's own
    note = block_size_note(read_trace(path, block_size=64))
    assert "0% of the rows fit 64-token blocks" in note and "give --block-size 512" in note
    wrong = invoke("trace", "stats", path, "--block-size", "64", "--format", "json")
    assert wrong.exit_code == 0 and json.loads(wrong.stdout)["warnings"] == [note]
    assert wrong.stderr.strip() == f"warning: {note}"
    right = invoke("trace", "stats", path, "--format", "json")
    assert json.loads(right.stdout)["warnings"] == [] and "warning" not in right.stderr
    weka = read_trace(DATA / "claude_code_slice.weka.jsonl")  # states its own size
    assert block_size_note(weka) == ""


def test_concurrency_rows_say_when_the_trace_has_fewer_sessions(invoke):
    """Each session starts once: 256 'concurrent sessions' over a 6-session slice is at most 6."""
    path = DATA / "claude_code_slice.b512.jsonl.gz"
    doc = json.loads(invoke("trace", "stats", path, "--concurrency", "4,64", "--format", "json").stdout)
    assert [(r["concurrency"], r["sessions_in_trace"]) for r in doc["lru_concurrency"]] == [(4, 6), (64, 6)]
    table = invoke("trace", "stats", path, "--concurrency", "4,64").stdout
    assert "64 concurrent sessions (at most 6: the trace's sessions)" in table
    assert ", 4 concurrent sessions (" not in table


def test_first_turns_are_each_sessions_first_prompt_against_all_prompts():
    """`first_turns`: the prompt of each session's first request, and its mean and second moment
    against all prompts' (what the screen assumes them to be: 1 and 1)."""
    _, later, prompts = _uncached_walk()
    first = prompts[~later]
    stats = trace_stats(read_trace(CC), concurrency=())
    assert first.size == stats["sessions"]
    got = stats["first_turns"]
    assert got["mean"] == pytest.approx(first.mean(), rel=1e-9)
    assert got["p90"] == pytest.approx(np.percentile(first, 90), rel=1e-9)
    assert got["mean_ratio"] == pytest.approx(first.mean() / prompts.mean(), rel=1e-9)
    assert got["second_moment_ratio"] == pytest.approx((first**2).mean() / (prompts**2).mean(), rel=1e-9)
