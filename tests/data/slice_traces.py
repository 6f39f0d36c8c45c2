"""How tests/data/*trace* were cut (run by hand from the repository root; the tests never run it).

Sources (Apache-2.0; provenance in the project's shared traces folder, `<name>.source.json`):
- kvcache_tester_claude_code_v8.b512.jsonl.gz: real Claude Code sessions from
  github.com/callanjfox/kv-cache-tester (traces/ at c9b3da54), re-blocked to 512-token blocks;
- mooncake_fast25_conversation_trace.jsonl.gz: github.com/kvcache-ai/Mooncake
  FAST25-release/traces/conversation_trace.jsonl (Kimi production chat, one hour).
Slices: six whole Claude Code sessions (two with subagents) in source row order; the first 800
Mooncake rows; and two of those sessions rewritten in the session-grouped Weka format (ids made
session-local again, subagent requests nested in `type = "subagent"` entries) to test that reader.

    python tests/data/slice_traces.py SHARED_TRACES_DIR
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

SESSIONS = ("trace_0291", "trace_0277", "trace_0504", "trace_0187", "trace_0602", "trace_0279")
WEKA_SESSIONS = ("trace_0291", "trace_0504")
OUT = Path(__file__).parent


def main(src: Path) -> None:
    with gzip.open(src / "kvcache_tester_claude_code_v8.b512.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    keep = [r for r in rows if r["session_id"] in SESSIONS]
    with gzip.GzipFile(OUT / "claude_code_slice.b512.jsonl.gz", "wb", mtime=0) as f:
        f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep).encode())
    with gzip.open(src / "mooncake_fast25_conversation_trace.jsonl.gz", "rt") as f:
        head = [next(f) for _ in range(800)]
    with gzip.GzipFile(OUT / "mooncake_chat_slice.jsonl.gz", "wb", mtime=0) as f:
        f.write("".join(head).encode())
    with open(OUT / "claude_code_slice.weka.jsonl", "w") as f:
        for sid in WEKA_SESSIONS:
            f.write(json.dumps(weka_session(sid, [r for r in keep if r["session_id"] == sid])) + "\n")


def _request(r: dict) -> dict:
    return {"t": r["timestamp"] / 1000, "type": "n", "in": r["input_length"], "out": r["output_length"],
            "hash_ids": [h % 100000 for h in r["hash_ids"]], "think_time": r["think_time_s"],
            "api_time": r["api_time_s"], "stop": r.get("stop")}


def weka_session(sid: str, rows: list[dict]) -> dict:
    requests: list[dict] = []
    subagents: dict[str, dict] = {}
    for r in rows:
        if r["agent"] == "main":
            requests.append(_request(r))
            continue
        if r["agent"] not in subagents:
            entry = {"type": "subagent", "agent_id": r["agent"], "t": r["timestamp"] / 1000, "requests": []}
            subagents[r["agent"]] = entry
            requests.append(entry)
        subagents[r["agent"]]["requests"].append(_request(r))
    return {"id": sid, "block_size": 512, "hash_id_scope": "local", "requests": requests}


if __name__ == "__main__":
    main(Path(sys.argv[1]))
