"""Export the plans table as CSV (the columns of `planner solve --format csv`) or JSON (its JSON)."""

from __future__ import annotations

import csv
import io as _io
import json
from pathlib import Path
from typing import Any

from planner import io
from planner.errors import InputFileError

FORMATS = (".csv", ".json")


def plans_csv(result: Any) -> str:
    """The rows `planner solve --format csv` writes: every plan, the disaggregated one included."""
    from planner.solve_report import CSV_COLUMNS, csv_rows

    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(result.ranked_plans()))
    return buf.getvalue()


def plans_json(result: Any) -> str:
    from planner.solve_report import to_dict

    return json.dumps(to_dict(result, 0), indent=2) + "\n"


def export_plans(result: Any, path: Path, *, overwrite: bool) -> str:
    """Write the plans to `path` in the format its suffix names; returns the format written."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputFileError(f"{path}: export as .csv or .json (got '{suffix or 'no suffix'}')")
    text = plans_csv(result) if suffix == ".csv" else plans_json(result)
    io.atomic_write_text(path, text, overwrite=overwrite)
    return suffix[1:]
