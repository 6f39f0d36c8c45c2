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
STATIC = ("round-robin", "affinity")


def default_router(routing: str) -> str:
    """The router that serves the scenario's `workload.sessions.routing` as the analytic model reads it."""
    return "round-robin" if routing == "random" else "affinity"


def static_assignment(router: str, session: np.ndarray, replicas: int) -> np.ndarray:
    """Replica of every request for a router that does not look at the replicas' state."""
    n = session.size
    if router == "round-robin" or replicas == 1:
        return np.arange(n, dtype=np.int64) % replicas
    out = np.empty(n, dtype=np.int64)
    loose = session < 0
    out[loose] = np.arange(int(loose.sum()), dtype=np.int64) % replicas
    sessions, first = np.unique(session[~loose], return_index=True)
    order = np.argsort(first, kind="stable")  # sessions in order of their first request
    home = np.empty(sessions.size, dtype=np.int64)
    home[order] = np.arange(sessions.size, dtype=np.int64) % replicas
    out[~loose] = home[np.searchsorted(sessions, session[~loose])]
    return out


def least_loaded(loads: list[int]) -> int:
    return int(np.argmin(loads))
