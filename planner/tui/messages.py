"""Messages the workers post back to the app (widgets define their own, nested, messages)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from planner.schema import Scenario
from planner.tui.solver import CurvePoint, WhatIf


class SolveFinished(Message):
    """The table of edit `generation`'s solve is ready (its frontiers follow, `FrontiersReady`);
    `solve_s` is the time the table stage took."""

    def __init__(self, generation: int, scenario: Scenario, result: Any, solve_s: float,
                 requested_at: float) -> None:
        super().__init__()
        self.generation = generation
        self.scenario = scenario
        self.result = result
        self.solve_s = solve_s
        self.requested_at = requested_at


class DisaggregatedReady(Message):
    """The best disaggregated plan of edit `generation`'s solve, before its frontiers: `result` is
    the table stage with it."""

    def __init__(self, generation: int, result: Any) -> None:
        super().__init__()
        self.generation = generation
        self.result = result


class FrontiersReady(Message):
    """The Pareto frontiers of edit `generation`'s solve: `result` is the finished solve."""

    def __init__(self, generation: int, result: Any) -> None:
        super().__init__()
        self.generation = generation
        self.result = result


class SolveFailed(Message):
    def __init__(self, generation: int, error: str) -> None:
        super().__init__()
        self.generation = generation
        self.error = error


class CurvePointReady(Message):
    """One point of the bill-vs-prompt-length curve of `hardware` for edit `generation`
    (None: the curve stopped early on an error)."""

    def __init__(self, generation: int, hardware: str, point: CurvePoint | None) -> None:
        super().__init__()
        self.generation = generation
        self.hardware = hardware
        self.point = point


class InsightsWanted(Message):
    """The highlighted hardware or the tab changed: its what-ifs or its curve may be missing."""


class WhatIfReady(Message):
    """What-if bills of `hardware` for edit `generation` (None: the analyses are not installed)."""

    def __init__(self, generation: int, hardware: str, rows: list[WhatIf] | None) -> None:
        super().__init__()
        self.generation = generation
        self.hardware = hardware
        self.rows = rows
