"""Stream a request trace into flat numpy arrays without holding the text (a 2 GB corpus is fine).

Two formats, detected from the first record:
- Mooncake rows: one JSON object per line, `timestamp` (ms), `input_length`, `output_length`,
  `hash_ids` (block ids, prefix-chained), optional `session_id`, `turn`, `agent`, `think_time_s`,
  `api_time_s` (the Claude Code export adds these).
- Weka sessions: one JSON object per session (per line, or one whole-file object / list), with `id`,
  `block_size`, `hash_id_scope` (`local`: ids are private to the session) and
  `requests: [{t, in, out, hash_ids, think_time, api_time, type, ...}]`; an entry with
  `type = "subagent"` nests its own `requests` (times stay relative to the session's start).
Block ids are kept in one int64 array with per-request offsets; `hash_ids` are parsed with numpy,
not as Python lists, which is what makes a 12-million-id trace read in seconds.
"""

from __future__ import annotations

import gzip
import io
import json
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planner.errors import InputFileError

Progress = Callable[[int, int], None]
"""Called now and then with (compressed bytes read, file size): the CLI draws a bar from it."""

MOONCAKE_BLOCK = 512  # Mooncake's published traces hash 512-token blocks
MAX_WHOLE_JSON_BYTES = 512 * 2**20  # a single multi-line JSON document is parsed whole: cap it
_LOCAL_SCOPE = 1 << 32  # session-local ids are moved to session_index * 2^32 + id
_INT_LIST_CHARS = str.maketrans("", "", "0123456789,- \t")  # translate() deletes these


class TraceError(InputFileError):
    """A trace file or one of its rows is unusable (the message names the file and line)."""


@dataclass
class Trace:
    """One trace as flat arrays, one entry per request (in file order)."""

    path: str
    format: str  # "mooncake" or "weka"
    block_size: int
    t_s: np.ndarray  # arrival time in seconds (absolute, or relative to the session start)
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    offsets: np.ndarray  # request i's blocks are blocks[offsets[i]:offsets[i+1]]
    blocks: np.ndarray
    session: np.ndarray  # session index per request; -1 when the trace has no sessions
    session_names: list[str] = field(default_factory=list)
    subagent: np.ndarray | None = None  # True for requests of a subagent stream
    think_time_s: np.ndarray | None = None  # NaN where not given
    api_time_s: np.ndarray | None = None
    session_relative: bool = False  # every session's clock starts at 0 (no absolute times)

    @property
    def requests(self) -> int:
        return int(self.t_s.size)

    @property
    def has_sessions(self) -> bool:
        return bool(self.session.size) and int(self.session.min()) >= 0


class _Columns:
    """Growing per-request columns (Python lists of scalars; block ids as numpy chunks)."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.inp: list[int] = []
        self.out: list[int] = []
        self.nblocks: list[int] = []
        self.chunks: list[np.ndarray] = []
        self.session: list[int] = []
        self.sub: list[bool] = []
        self.think: list[float] = []
        self.api: list[float] = []
        self.names: dict[str, int] = {}

    def session_index(self, name: str) -> int:
        return self.names.setdefault(name, len(self.names))


def _where(path: Path, line: int) -> str:
    return f"{path}: line {line}"


def _number(obj: dict, key: str, where: str, *, integer: bool, required: bool = True, default: float = 0.0,
            path: str = ""):
    label = f"{path}.{key}" if path else key
    if key not in obj:
        if required:
            raise TraceError(f"{where}: {label}: required key is missing")
        return default
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
        raise TraceError(f"{where}: {label}: expected a finite number (got {v!r})")
    if v < 0:
        raise TraceError(f"{where}: {label}: must be >= 0 (got {v!r})")
    if integer and v != int(v):
        raise TraceError(f"{where}: {label}: expected a whole number of tokens (got {v!r})")
    return int(v) if integer else float(v)


def _optional_float(obj: dict, key: str, where: str, path: str = "") -> float:
    if obj.get(key) is None:
        return float("nan")
    return _number(obj, key, where, integer=False, path=path)


def _ids_from_list(v: Any, where: str, key: str = "hash_ids") -> np.ndarray:
    if not isinstance(v, list) or not all(type(x) is int for x in v):  # not bools, floats or strings
        raise TraceError(f"{where}: {key}: expected a list of integer block ids")
    try:
        return np.asarray(v, dtype=np.int64)
    except OverflowError:
        raise TraceError(f"{where}: {key}: block ids must fit in 64 bits") from None


def _split_hash_ids(line: str, where: str) -> tuple[str, np.ndarray | None]:
    """Cut `"hash_ids":[...]` out of a Mooncake row and parse it with numpy (fast path)."""
    key = line.find('"hash_ids"')
    if key < 0:
        return line, None
    start = line.find("[", key)
    end = line.find("]", start)
    if start < 0 or end < 0 or line[key + 10:start].strip() != ":":
        return line, None  # malformed: let json.loads report it
    body = line[start + 1:end]
    if body.strip():
        # numpy's text parser is ~6x faster than split + int; it stops quietly at the first bad
        # character, so the body is checked to hold only integers and commas, and the count matched
        ids = np.zeros(0, dtype=np.int64)
        if not body.translate(_INT_LIST_CHARS):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    ids = np.fromstring(body, dtype=np.int64, sep=",")
                except (ValueError, OverflowError):
                    ids = np.zeros(0, dtype=np.int64)
        if ids.size != body.count(",") + 1:
            raise TraceError(f"{where}: hash_ids: expected a list of integer block ids")
    else:
        ids = np.zeros(0, dtype=np.int64)
    return line[:start] + "0" + line[end + 1:], ids


def _mooncake_row(cols: _Columns, line: str, where: str) -> None:
    rest, ids = _split_hash_ids(line, where)
    try:
        obj = json.loads(rest)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: expected a JSON object per line (got {type(obj).__name__})")
    if ids is None:
        if "hash_ids" not in obj:
            raise TraceError(f"{where}: hash_ids: required key is missing (block ids of the prompt)")
        ids = _ids_from_list(obj["hash_ids"], where)
    cols.t.append(_number(obj, "timestamp", where, integer=False) / 1000.0)
    cols.inp.append(_number(obj, "input_length", where, integer=True))
    cols.out.append(_number(obj, "output_length", where, integer=True))
    cols.chunks.append(ids)
    cols.nblocks.append(ids.size)
    sid = obj.get("session_id")
    cols.session.append(cols.session_index(str(sid)) if sid is not None else -1)
    agent = obj.get("agent")
    cols.sub.append(agent is not None and agent != "main")
    cols.think.append(_optional_float(obj, "think_time_s", where))
    cols.api.append(_optional_float(obj, "api_time_s", where))


def _weka_requests(cols: _Columns, reqs: Any, where: str, session: int, offset: int, sub: bool, path: str) -> None:
    if not isinstance(reqs, list):
        raise TraceError(f"{where}: {path}: expected a list of requests")
    for i, r in enumerate(reqs):
        here = f"{path}[{i}]"
        if not isinstance(r, dict):
            raise TraceError(f"{where}: {here}: expected an object")
        if r.get("type") == "subagent":
            if "requests" not in r:
                raise TraceError(f"{where}: {here}.requests: required key is missing (a subagent's own requests)")
            _weka_requests(cols, r["requests"], where, session, offset, True, f"{here}.requests")
            continue
        for key in ("t", "in", "out", "hash_ids"):
            if key not in r:
                raise TraceError(f"{where}: {here}.{key}: required key is missing")
        cols.t.append(_number(r, "t", where, integer=False, path=here))
        cols.inp.append(_number(r, "in", where, integer=True, path=here))
        cols.out.append(_number(r, "out", where, integer=True, path=here))
        ids = _ids_from_list(r["hash_ids"], where, f"{here}.hash_ids")
        if offset:
            if ids.size and (ids.min() < 0 or ids.max() >= _LOCAL_SCOPE):
                raise TraceError(f"{where}: {here}.hash_ids: local ids must lie in [0, 2^32)")
            ids = ids + offset
        cols.chunks.append(ids)
        cols.nblocks.append(ids.size)
        cols.session.append(session)
        cols.sub.append(sub)
        cols.think.append(_optional_float(r, "think_time", where, here))
        cols.api.append(_optional_float(r, "api_time", where, here))


def _weka_session(cols: _Columns, obj: Any, where: str, block_size: list[int]) -> None:
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: expected a session object (got {type(obj).__name__})")
    for key in ("id", "requests"):
        if key not in obj:
            raise TraceError(f"{where}: {key}: required key is missing (Weka session format)")
    bs = obj.get("block_size")
    if bs is not None:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise TraceError(f"{where}: block_size: expected a positive integer (got {bs!r})")
        if block_size and block_size[0] != bs:
            raise TraceError(f"{where}: block_size: {bs} differs from earlier sessions' {block_size[0]}; "
                             "split the file by block size")
        block_size[:] = [bs]
    scope = obj.get("hash_id_scope", "local")
    if scope not in ("local", "global"):
        raise TraceError(f"{where}: hash_id_scope: must be 'local' or 'global' (got {scope!r})")
    session = cols.session_index(str(obj["id"]))
    if session != len(cols.names) - 1:
        raise TraceError(f"{where}: id: session {obj['id']!r} appears twice; ids must be unique")
    offset = (session + 1) * _LOCAL_SCOPE if scope == "local" else 0
    _weka_requests(cols, obj["requests"], where, session, offset, False, "requests")


def _open_text(path: Path) -> tuple[io.TextIOBase, Any]:
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through the returned handle
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb")
    else:
        stream = raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="strict"), raw


def _check_path(path: Path) -> None:
    if not path.exists():
        raise TraceError(f"{path}: file not found (check the path)")
    if path.is_dir():
        raise TraceError(f"{path}: is a directory, expected a .jsonl or .jsonl.gz trace")
    if not path.is_file():
        raise TraceError(f"{path}: not a regular file; expected a .jsonl or .jsonl.gz trace")


def read_trace(path: str | Path, *, block_size: int | None = None, progress: Progress | None = None) -> Trace:
    """Read a Mooncake-row or Weka-session trace (plain or gzip) into a `Trace`.

    `block_size` is the tokens per hash id of Mooncake rows (which do not record it; default 512,
    Mooncake's); Weka sessions carry their own. Errors name the file and the line."""
    p = Path(path)
    _check_path(p)
    size = max(p.stat().st_size, 1)
    cols = _Columns()
    fmt = ""
    weka_bs: list[int] = []
    lineno = 0
    try:
        text, raw = _open_text(p)
        with raw, text:
            tick = 0
            for lineno, line in enumerate(text, start=1):  # noqa: B007 - lineno is used after the loop
                if not line.strip():
                    continue
                where = _where(p, lineno)
                if not fmt:
                    fmt = _detect(line, where)
                    if fmt == "whole":
                        _read_whole(cols, p, size, weka_bs)
                        fmt = "weka"
                        break
                if fmt == "mooncake":
                    _mooncake_row(cols, line, where)
                else:
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise TraceError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                    _weka_session(cols, obj, where, weka_bs)
                tick += 1
                if progress is not None and tick % 256 == 0:
                    progress(raw.tell(), size)
    except UnicodeDecodeError:
        raise TraceError(f"{_where(p, lineno + 1)}: not UTF-8 text; traces are UTF-8 JSON lines") from None
    except (gzip.BadGzipFile, zlib.error, EOFError, OSError, ValueError) as exc:  # zlib.error: corrupt gzip data
        if isinstance(exc, TraceError):
            raise
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise TraceError(f"{p}: cannot read trace after line {lineno} ({reason}); is the file complete?") from None
    if progress is not None:
        progress(size, size)
    if not cols.t:
        raise TraceError(f"{p}: no requests found (expected JSON lines of Mooncake rows or Weka sessions)")
    return _assemble(cols, p, fmt, weka_bs[0] if weka_bs else (block_size or MOONCAKE_BLOCK))


def block_size_note(trace: Trace) -> str:
    """A warning when the block size the trace is read with contradicts its rows: n hash ids cover a
    prompt of L tokens only for block sizes B with ceil(L / B) = n, i.e. L / n <= B < L / (n - 1).
    Mooncake rows do not record B (`--block-size`, default 512); read at the wrong size, every hit
    rate and uncached length is wrong ("93 % of blocks hit, 12 % of tokens"). Empty when at least
    half the rows with hash ids agree with it."""
    n = np.diff(trace.offsets).astype(np.float64)
    length = trace.input_tokens.astype(np.float64)
    rows = (n > 0) & (length > 0)
    if not rows.any():
        return ""
    n, length = n[rows], length[rows]
    low = length / n
    high = np.where(n > 1, length / np.maximum(n - 1.0, 1.0), np.inf)

    def share(block: float) -> float:
        return float(((low <= block) & (block < high)).mean())

    if share(trace.block_size) >= 0.5:
        return ""
    # the size most rows fit: block sizes are powers of two in every engine and trace we know of
    fits, implied = max((share(2.0**k), 2**k) for k in range(21))
    if fits < 0.5:
        implied = int(np.median(np.ceil(low)))
    return (f"{trace.path}: {share(trace.block_size):.0%} of the rows fit {trace.block_size}-token blocks "
            f"(n hash ids cover input_length tokens only for blocks of input_length / n up to "
            f"input_length / (n - 1)); {share(implied):.0%} fit {implied}: hit rates and uncached lengths "
            f"below assume {trace.block_size} (give --block-size {implied} if that is the trace's)")


def _detect(line: str, where: str) -> str:
    s = line.lstrip()
    if s.startswith("["):
        return "whole"
    if '"requests"' in line and '"timestamp"' not in line:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            return "whole"  # a pretty-printed session object spanning lines
        return "weka"
    if s.startswith("{") and s.rstrip() == "{":
        return "whole"
    return "mooncake"


def _read_whole(cols: _Columns, p: Path, size: int, weka_bs: list[int]) -> None:
    if size > MAX_WHOLE_JSON_BYTES:
        raise TraceError(f"{p}: a single JSON document of {size / 2**20:,.0f} MiB; write one session per line "
                         "(JSON lines) so it can be streamed")
    text, raw = _open_text(p)
    with raw, text:
        try:
            doc = json.loads(text.read())
        except json.JSONDecodeError as exc:
            raise TraceError(f"{_where(p, exc.lineno)}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    sessions = doc if isinstance(doc, list) else [doc]
    for i, obj in enumerate(sessions):
        _weka_session(cols, obj, f"{p}: session {i}", weka_bs)


def _assemble(cols: _Columns, p: Path, fmt: str, block_size: int) -> Trace:
    offsets = np.zeros(len(cols.nblocks) + 1, dtype=np.int64)
    np.cumsum(cols.nblocks, out=offsets[1:])
    blocks = np.concatenate(cols.chunks) if cols.chunks else np.zeros(0, dtype=np.int64)
    session = np.asarray(cols.session, dtype=np.int64)
    t = np.asarray(cols.t, dtype=np.float64)
    if fmt == "mooncake" and session.size and session.min() < 0 <= session.max():
        first = int(np.argmax(session >= 0) if session[0] < 0 else np.argmax(session < 0))
        raise TraceError(f"{_where(p, first + 1)}: session_id: some rows have one and some do not; "
                         "give every row a session_id or none")
    relative = False
    if session.size and session.min() >= 0:
        starts = np.full(len(cols.names), np.inf)
        np.minimum.at(starts, session, t)
        relative = fmt == "weka" or bool(len(cols.names) > 1 and np.all(starts == 0.0))
    think = np.asarray(cols.think, dtype=np.float64)
    api = np.asarray(cols.api, dtype=np.float64)
    return Trace(
        path=str(p), format=fmt, block_size=int(block_size), t_s=t,
        input_tokens=np.asarray(cols.inp, dtype=np.int64), output_tokens=np.asarray(cols.out, dtype=np.int64),
        offsets=offsets, blocks=blocks, session=session, session_names=list(cols.names),
        subagent=np.asarray(cols.sub, dtype=bool),
        think_time_s=None if np.all(np.isnan(think)) else think,
        api_time_s=None if np.all(np.isnan(api)) else api,
        session_relative=relative,
    )

