"""Which replica serves a request.

- `round-robin`: request i goes to replica i mod R (spreads load; a session's turns land anywhere,
  so its cached prefix is found only where its last turn ran: the scenario's `routing = "random"`);
- `affinity`: a session's first request goes to the next replica in turn and the rest of the
  session follows it (prefix-cache affinity: the scenario's `routing = "sticky"`);
- `least-loaded`: the replica with the fewest requests running or waiting when the request arrives
  (ties: the lowest index). It depends on the replicas' state, so it is decided during the run.
"""

from __future__ import annotations

import numpy as np

ROUTERS = ("round-robin", "least-loaded", "affinity")


def default_router(routing: str) -> str:
    """The router that serves the scenario's `workload.sessions.routing` as the analytic model reads it."""
    return "round-robin" if routing == "random" else "affinity"


def session_homes(reqs, replicas: int) -> np.ndarray:
    """Affinity: sessions take the replicas in turn, in the order of their first request."""
    if reqs.session.size == 0 or reqs.session.max() < 0:
        return np.zeros(0, dtype=np.int64)
    k = int(reqs.session.max()) + 1
    first = np.full(k, np.inf)
    known = np.isfinite(reqs.arrival_s) & (reqs.session >= 0)
    np.minimum.at(first, reqs.session[known], reqs.arrival_s[known])
    home = np.empty(k, dtype=np.int64)
    home[np.argsort(first, kind="stable")] = np.arange(k, dtype=np.int64) % replicas
    return home


class StaticRouter:
    """Round-robin (per request, in release order) and affinity (per session; requests without a
    session go round-robin): decided when a request is released, without looking at the replicas."""

    def __init__(self, kind: str, replicas: int, home: np.ndarray):
        self.kind, self.replicas, self.home, self.count = kind, replicas, home, 0

    def static(self, rid: int, reqs) -> int:
        s = int(reqs.session[rid])
        if self.kind == "affinity" and s >= 0:
            return int(self.home[s])
        self.count += 1
        return (self.count - 1) % self.replicas


def least_loaded(loads: list[int]) -> int:
    return int(np.argmin(loads))
