"""Reading and writing TOML at the edges of the program.

Every decode or validation failure becomes an `InputFileError` whose message is one line:
`<file>: <field.path>: <what is wrong> (<what is allowed>)`. Saves are atomic (temp file + rename)
and never replace a file unless the caller says so.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel, ValidationError

from planner.errors import InputFileError

M = TypeVar("M", bound=BaseModel)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning every OS or syntax problem into a one-line `InputFileError`."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: file not found (check the path)")
    if p.is_dir():
        raise InputFileError(f"{p}: is a directory, expected a .toml file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{p}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{p}: not valid TOML: {exc}") from None


def format_validation_error(
    source: str | Path, exc: ValidationError, model: type[BaseModel] | None = None
) -> str:
    """One line naming the first failing field; the count of further failures is appended.

    Unknown keys are reported first: a typo shows up as an unknown key *and* a missing one, and the
    unknown key is the cause. Given the `model`, an unknown key comes with the closest known keys.
    """
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"]) or "<top level>"
    msg = _describe(first, model)
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `X`, `X | None` or `list[X]`, if exactly one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    found = {m for arg in typing.get_args(annotation) if (m := _model_in(arg)) is not None}
    return found.pop() if len(found) == 1 else None


def _sibling_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the table that holds `loc[-1]`, following `loc` through nested models."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(str(part))
        current = _model_in(field.annotation) if field is not None else None
    return list(current.model_fields) if current is not None else []


def _describe(error: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = error.get("ctx", {}).get("allowed")
        if not allowed and model is not None and error["loc"]:
            near = difflib.get_close_matches(str(error["loc"][-1]), _sibling_keys(model, error["loc"]), n=3)
            allowed = ", ".join(near)
        hint = f"; did you mean {allowed}?" if allowed else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    msg = error["msg"]
    if kind == "value_error":
        # A check across several fields (a model validator): its message says it all, and the
        # input is the whole table, so "got dict" would add nothing.
        msg = msg.removeprefix("Value error, ")
        if isinstance(error.get("input"), dict):
            return msg
    got = error.get("input")
    shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg} (got {shown})"


def validate(model: type[M], data: dict[str, Any], source: str | Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputFileError(format_validation_error(source, exc, model)) from None


def load(model: type[M], path: str | Path) -> M:
    return validate(model, read_toml(path), path)


def dumps_toml(model: BaseModel) -> str:
    return tomli_w.dumps(model.model_dump(mode="json", exclude_none=True, by_alias=True))


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = False) -> None:
    """Write via a temp file in the same folder and rename, so a crash never leaves half a file."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputFileError(f"{target}: already exists; refusing to overwrite (pass overwrite=True)")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
