"""The scenario fields the panel edits: dotted paths into the scenario, with labels and hints.

Hints come from the pydantic field descriptions, so the form and the JSON Schema say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from planner.schema import Scenario

Kind = Literal["int", "float", "text", "model", "draft", "method"]


@dataclass(frozen=True)
class FieldSpec:
    path: str
    label: str
    kind: Kind
    optional: bool = False

    @property
    def dom_id(self) -> str:
        return "f-" + self.path.replace(".", "-").replace("_", "-")


SECTIONS: tuple[tuple[str, tuple[FieldSpec, ...]], ...] = (
    ("Model", (
        FieldSpec("name", "name", "text"),
        FieldSpec("model.id", "model", "model"),
    )),
    ("Workload", (
        FieldSpec("workload.arrival_rate_rps", "arrival req/s", "float"),
        FieldSpec("workload.input_tokens.median", "prompt median", "int"),
        FieldSpec("workload.input_tokens.p90", "prompt p90", "int", optional=True),
        FieldSpec("workload.input_tokens.mean", "prompt mean", "float", optional=True),
        FieldSpec("workload.input_tokens.max", "prompt max", "int", optional=True),
        FieldSpec("workload.output_tokens.median", "output median", "int"),
        FieldSpec("workload.output_tokens.p90", "output p90", "int", optional=True),
        FieldSpec("workload.output_tokens.mean", "output mean", "float", optional=True),
        FieldSpec("workload.output_tokens.max", "output max", "int", optional=True),
        FieldSpec("workload.sessions.turns", "turns/session", "int"),
        FieldSpec("workload.sessions.prefix_reuse", "prefix reuse", "float"),
        FieldSpec("workload.sessions.think_time_s", "think time s", "float"),
    )),
    ("SLO", (
        FieldSpec("slo.ttft_p95_s", "TTFT p95 s", "float"),
        FieldSpec("slo.tpot_p95_ms", "TPOT p95 ms", "float"),
    )),
    ("Speculative decoding", (
        FieldSpec("speculative.method", "method", "method"),
        FieldSpec("speculative.draft_model", "draft model", "draft", optional=True),
        FieldSpec("speculative.acceptance_short", "accept short", "float", optional=True),
        FieldSpec("speculative.acceptance_long", "accept long", "float", optional=True),
        FieldSpec("speculative.acceptance_context_tokens", "accept decay tok", "float", optional=True),
    )),
)

FIELDS: tuple[FieldSpec, ...] = tuple(f for _, group in SECTIONS for f in group)
HARDWARE_PATH = "search.hardware"
METHODS = ("none", "draft", "eagle3", "mtp", "self", "ngram", "suffix")


def describe(path: str, schema: type[BaseModel] = Scenario) -> str:
    """The schema's description of the field at `path` ("" if it has none)."""
    model: Any = schema
    field = None
    for part in path.split("."):
        field = model.model_fields[part]
        model = field.annotation
    return (field.description or "") if field is not None else ""


_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
"""Commas only as thousands groups ("96,000", "1,000.5")."""


def parse_text(spec: FieldSpec, text: str) -> Any:
    """Typed value for the schema, or the raw text when it does not parse (so pydantic names the
    problem). Empty means "not set": None, which the document removes from the data."""
    text = text.strip()
    if not text:
        return None
    if spec.kind == "text":
        return text
    if "," in text and not _THOUSANDS.fullmatch(text):
        return text  # "0,5" is a decimal comma, not 5: the schema names the field
    number = text.replace(",", "").replace("_", "")
    try:
        return int(number) if spec.kind == "int" else float(number)
    except ValueError:
        pass
    try:  # "2000.0" in an integer field: the whole float, which the schema takes as 2000
        whole = float(number)
    except ValueError:
        return text
    return whole if spec.kind == "int" and whole.is_integer() else text


def show_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return str(int(value))
    return str(value)
