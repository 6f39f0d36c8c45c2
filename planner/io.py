"""Reading and writing TOML at the edges of the program.

Every decode or validation failure becomes an `InputFileError` whose message is one line:
`<file>: <field.path>: <what is wrong> (<what is allowed>)`. Saves are atomic (temp file + rename)
and never replace a file unless the caller says so.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import stat
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel, ValidationError

from planner.errors import InputFileError

M = TypeVar("M", bound=BaseModel)


MAX_INPUT_BYTES = 32 * 2**20
"""Input files larger than this are refused: every planner file is a few kilobytes of hand-written TOML."""

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning every OS or syntax problem into a one-line `InputFileError`."""
    return parse_toml(read_text(path), path)


def parse_toml(text: str, path: str | Path) -> dict[str, Any]:
    """`text` (read from `path`) as TOML; syntax problems become one-line `InputFileError`s."""
    p = Path(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:
        raise InputFileError(f"{p}: not valid TOML for the planner: arrays or tables nested too deeply") from None


def read_text(path: str | Path) -> str:
    """A planner input file's text. The file is only ever opened for reading. A UTF-8 byte-order
    mark is dropped; devices, pipes and files over `MAX_INPUT_BYTES` are refused up front, so
    reading always finishes."""
    p = Path(path)
    try:
        if not p.exists():
            raise InputFileError(f"{p}: file not found (check the path)")
        if p.is_dir():
            raise InputFileError(f"{p}: is a directory, expected a .toml file")
        if not p.is_file():
            raise InputFileError(f"{p}: not a regular file (a device, pipe or socket); expected a .toml file")
        size = p.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputFileError(
                f"{p}: file is {size / 2**20:,.0f} MiB; planner input files are TOML under "
                f"{MAX_INPUT_BYTES // 2**20} MiB (is this the right file?)")
        raw = p.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. an embedded NUL byte in the path
        raise InputFileError(f"{p!r}: not a usable path ({exc})") from None
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM):]
    elif raw.startswith(_UTF16_BOMS):
        raise InputFileError(f"{p}: UTF-16 text (byte-order mark at byte 0); save the file as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{p}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


_UNION_TAGS = {"float", "int", "str", "bool", "list", "dict", "none", "literal", "tuple"}


def _is_union_tag(part: Any) -> bool:
    """Pydantic names the branch of a union in an error's location (`float`, `literal['unknown']`,
    `list[function-after[...]]`); such parts are not keys the user wrote."""
    return isinstance(part, str) and (part in _UNION_TAGS or "[" in part or part.startswith("function-"))


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` without union branch names; a schema model's class name (`prices.h100-sxm.PriceOverride.kind`)
    is one too where a field follows it (a key the user wrote that looks like one is kept: it is last)."""
    from planner.schema import model_class_names

    return tuple(p for i, p in enumerate(loc)
                 if not _is_union_tag(p) and not (i < len(loc) - 1 and p in model_class_names()))


def format_validation_error(
    source: str | Path, exc: ValidationError, model: type[BaseModel] | None = None
) -> str:
    """One line naming the first failing field; the count of further failing fields is appended.

    Unknown keys are reported first: a typo shows up as an unknown key *and* a missing one, and the
    unknown key is the cause. Given the `model`, an unknown key comes with the closest known keys.
    A value that every branch of a union rejects (`float | "unknown"`) is one failure that lists
    what the branches allow.
    """
    errors = [dict(e, loc=_without_union_tags(tuple(e["loc"]))) for e in exc.errors(include_url=False)]
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    by_loc: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in errors:
        by_loc.setdefault(e["loc"], []).append(e)
    first = errors[0]
    if first["type"] != "extra_forbidden":
        # The deepest failure under the same field is the informative branch of a union:
        # `search.hardware.0` is not kebab-case, rather than "search.hardware is not 'all'".
        n = len(first["loc"])
        deeper = [loc for loc in by_loc if len(loc) > n and loc[:n] == first["loc"]]
        if deeper:
            first = by_loc[max(deeper, key=len)][0]
    same = by_loc[first["loc"]]
    msg = _describe(first, model) if len(same) == 1 else _describe_union(same)
    related = [loc for loc in by_loc
               if loc == first["loc"] or _prefix(loc, first["loc"]) or _prefix(first["loc"], loc)]
    rest = len(by_loc) - len(related)
    loc = ".".join(str(part) for part in first["loc"])
    more = f" (+{rest} more)" if rest else ""
    # A check over the whole file (its message names the fields itself) has no location to show.
    return f"{source}: {loc}: {msg}{more}" if loc else f"{source}: {msg}{more}"


def _prefix(short: tuple[Any, ...], long: tuple[Any, ...]) -> bool:
    return len(short) < len(long) and long[: len(short)] == short


def _shown(value: Any) -> str:
    """The offending value as the user wrote it, cut to a readable length."""
    shown = "a table" if isinstance(value, dict) else repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _describe_union(errors: list[dict[str, Any]]) -> str:
    """`Input should be a valid number, 'unknown' or 'unsupported' (got 'fast')`."""
    wanted: list[str] = []
    for e in errors:
        text = e["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
        if e["type"] in ("float_parsing", "int_parsing"):
            text = text.split(",")[0]
        if text not in wanted:
            wanted.append(text)
    allowed = wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " or " + wanted[-1]
    return f"Input should be {allowed} (got {_shown(errors[0].get('input'))})"


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
        if allowed:
            return f"unknown key; did you mean {allowed}?"
        siblings = _sibling_keys(model, error["loc"]) if model is not None and error["loc"] else []
        near = difflib.get_close_matches(str(error["loc"][-1]), siblings, n=3)
        if near:
            return f"unknown key; did you mean {', '.join(near)}?"
        if siblings:
            listed = ", ".join(siblings[:12]) + (", ..." if len(siblings) > 12 else "")
            return f"unknown key; known keys: {listed}"
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = error["msg"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        msg = "Input should be a table"  # not pydantic's "valid dictionary or instance of <class>"
    if kind == "value_error":
        # A check across several fields (a model validator): its message says it all, and the
        # input is the whole table, so "got a table" would add nothing.
        msg = msg.removeprefix("Value error, ")
        if isinstance(error.get("input"), dict):
            return msg
    return f"{msg} (got {_shown(error.get('input'))})"


def validate(model: type[M], data: dict[str, Any], source: str | Path, context: dict[str, Any] | None = None) -> M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise InputFileError(format_validation_error(source, exc, model)) from None
    except RecursionError:
        raise InputFileError(f"{source}: values nested too deeply") from None


def load(model: type[M], path: str | Path) -> M:
    return validate(model, read_toml(path), path)


def dumps_toml(model: BaseModel) -> str:
    return tomli_w.dumps(model.model_dump(mode="json", exclude_none=True, by_alias=True))


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = False) -> None:
    """`atomic_write_bytes` of `text` in UTF-8 (no newline translation)."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write via a temp file in the same folder and rename, so a crash never leaves half a file.

    Without `overwrite=True` an existing file is never replaced, not even one created by someone
    else while this one was being written (the final step is a hard link, which fails if the name
    exists). A replaced file keeps its permission bits; a symlink is followed, not replaced.
    OS failures become one-line `InputFileError`s and leave no temp file behind.
    """
    target = Path(os.path.realpath(path))
    shown = Path(path)
    if not overwrite and (target.exists() or shown.is_symlink()):
        raise InputFileError(f"{shown}: already exists; refusing to overwrite (pass overwrite=True)")
    if target.is_dir():
        raise InputFileError(f"{shown}: is a directory; give a file name to save to")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputFileError(f"{shown}: cannot save ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask())
            os.replace(tmp, target)
        else:
            with contextlib.suppress(OSError):
                os.chmod(tmp, 0o666 & ~_umask())
            _link_no_clobber(tmp, target, shown)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputFileError(f"{shown}: cannot save ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link_no_clobber(tmp: str, target: Path, shown: Path) -> None:
    """Give the finished temp file its final name unless that name exists (atomically, via link)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise InputFileError(f"{shown}: already exists; refusing to overwrite (pass overwrite=True)") from None
    except OSError:
        # File systems without hard links: the existence check above is the best available.
        if target.exists():
            Path(tmp).unlink(missing_ok=True)
            raise InputFileError(f"{shown}: already exists; refusing to overwrite (pass overwrite=True)") from None
        os.replace(tmp, target)
        return
    Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
