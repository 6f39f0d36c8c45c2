"""Domain errors and exit codes.

Errors carry a one-line, user-facing message (file, field, what is wrong, what is allowed).
Only `planner.cli` maps them to process exit codes, so library code never calls `sys.exit`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    NO_FEASIBLE_PLAN = 1
    BAD_INPUT = 2


class PlannerError(Exception):
    """Base class: `str(err)` is the single line shown to the user."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class InputFileError(PlannerError):
    """A file is missing, unreadable, not TOML, or fails schema validation."""


class UnknownIdError(PlannerError):
    """A hardware or model ID is not in the catalog; the message lists the closest matches."""


class GridTooLargeError(PlannerError):
    """A search grid would exhaust memory; the message gives its size and a hint."""
