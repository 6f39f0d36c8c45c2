"""Loads the hardware and model catalogs; lookups fail with the closest matching IDs.

User catalogs (global `--catalog PATH`, env `PLANNER_CATALOG`, a scenario's `catalog = [...]`) add
or override entries without editing the package; `--price ID=USD` and a scenario's `[prices]`
override $ per chip-hour. A model reference that is a path to a Hugging Face config.json is
imported on first use (`planner.hf_import`).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from planner import io, paths
from planner.errors import InputFileError, UnknownIdError
from planner.schema import (
    Accelerator,
    CalibrationFamily,
    CalibrationFile,
    HardwareFile,
    HostCpu,
    HostTiersFile,
    ModelsFile,
    ModelSpec,
)

CALIBRATION_FILE = "calibration.toml"
HOST_TIERS_FILE = "host-tiers.toml"
SPECIAL_FILES = {CALIBRATION_FILE, HOST_TIERS_FILE}


@dataclass(frozen=True)
class Catalog:
    hardware: dict[str, Accelerator]
    hardware_sources: dict[str, dict[str, str]]  # accelerator id -> its file's [sources]
    hardware_files: dict[str, Path]
    models: dict[str, ModelSpec]
    model_sources: dict[str, str]
    calibration: dict[str, CalibrationFamily]
    host_tiers: HostTiersFile
    host_cpus: dict[str, HostCpu] = field(default_factory=dict)

    def accelerator(self, hw_id: str) -> Accelerator:
        return _lookup(self.hardware, hw_id, "hardware")

    def model(self, model_id: str) -> ModelSpec:
        if model_id not in self.models and is_config_path(model_id):
            # absolute, symlinks kept: a Hugging Face cache's snapshots/<rev>/config.json links to a
            # blob whose name says nothing (the path is what names the repository)
            return imported_model(os.path.abspath(model_id))
        by_repo = self.model_by_repo(model_id)
        return by_repo if by_repo is not None else _lookup(self.models, model_id, "model")

    def model_by_repo(self, ref: str) -> ModelSpec | None:
        """The catalog model whose Hugging Face repo is `ref` ('org/name', case ignored): measurements
        and users name models that way (`meta-llama/Meta-Llama-3-70B`). None for a catalog ID or no match."""
        if ref in self.models or "/" not in ref:
            return None
        return next((m for m in self.models.values() if m.hf_repo and m.hf_repo.lower() == ref.strip().lower()), None)

    def family(self, acc: Accelerator) -> CalibrationFamily:
        return self.calibration[acc.family]

    def citation(self, acc: Accelerator, field: str) -> str | None:
        key = acc.sources.get(field)
        return self.hardware_sources[acc.id].get(key) if key else None


def closest(name: str, choices: list[str], n: int = 3) -> list[str]:
    """The IDs a mistyped one most likely meant: those it begins (people write `h200` for
    `h200-sxm`, `qwen3-coder` for `qwen3-coder-480b-a35b`), then the most similar, case ignored."""
    low = {c.lower(): c for c in choices}
    key = name.strip().lower()
    starts = sorted((c for c in low if c.startswith(key) and c != key), key=len)
    similar = difflib.get_close_matches(key, list(low), n=n, cutoff=0.4)
    if not starts and not similar:
        similar = [c for c in low if key.split("-")[0] in c]
    return [low[c] for c in dict.fromkeys(starts + similar)][:n]


def _lookup(table: dict, key: str, what: str):
    if key in table:
        return table[key]
    near = closest(key, sorted(table))
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    command = {"model": "models", "hardware": "hardware"}[what]
    raise UnknownIdError(f"unknown {what} ID '{key}'{hint} (see `planner {command} list`)")


def load_hardware_file(path: Path) -> HardwareFile:
    return io.load(HardwareFile, path)


def is_config_path(ref: str) -> bool:
    """A model reference that is a path to a Hugging Face config.json, not a catalog ID."""
    return ref.endswith(".json")


def imported_model(path: str) -> ModelSpec:
    """A Hugging Face config.json as a model, read again when the file changes (a long-lived process,
    the TUI or a resident worker, sees the user's edits)."""
    return _imported_model(path, _file_stamp(Path(path)))


@cache
def _imported_model(path: str, _stamp: tuple[int, int] | None) -> ModelSpec:
    from planner.hf_import import import_model

    return import_model(Path(path))[0]


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """(size, modification time) of a file, None if it cannot be read (the reader reports why)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def tokenizer_mismatch(draft: ModelSpec, target: ModelSpec) -> str | None:
    """Why `draft` cannot draft for `target` (different tokenizers), or None. Unknown tokenizers
    (a user entry without one) are not judged."""
    if draft.tokenizer and target.tokenizer and draft.tokenizer != target.tokenizer:
        return (f"'{draft.id}' uses the {draft.tokenizer} tokenizer but the model '{target.id}' uses "
                f"{target.tokenizer}; a draft model must share its target's tokenizer")
    return None


DRAFT_SHARE = 0.1


def repick_drafter(catalog: Catalog, target: ModelSpec, method: str,
                   draft: str | None) -> tuple[str, str | None, str | None]:
    """(method, draft model, what changed) after the target model changed: keep a draft that shares
    the target's tokenizer and is smaller; else the target's `draft_models`, else the smallest catalog
    model that shares the tokenizer and has at most DRAFT_SHARE of its parameters (a draft runs k
    times per step: a model a third the size would cost more than it saves); else its MTP head if it
    ships one; else speculation off. MTP speculation on a target without MTP heads takes such a draft,
    else goes off. The message is None when nothing changed."""
    lost_mtp = method == "mtp" and not target.mtp_layers
    if not lost_mtp and (method != "draft" or draft is None):
        return method, draft, None
    from planner.model.arch import param_counts

    size = param_counts(target).total
    current = catalog.models.get(draft) if draft else None
    if current is not None and not tokenizer_mismatch(current, target) and param_counts(current).total < size:
        return method, draft, None
    fits = [m for m in catalog.models.values()
            if m.id != target.id and m.tokenizer and m.tokenizer == target.tokenizer
            and (m.id in target.draft_models or param_counts(m).total <= DRAFT_SHARE * size)]
    fits.sort(key=lambda m: (m.id not in target.draft_models, param_counts(m).total))
    if fits and lost_mtp:
        return "draft", fits[0].id, (f"speculation now drafts with {fits[0].id}: {target.id} ships no "
                                     "multi-token-prediction head")
    if fits:
        return "draft", fits[0].id, (f"draft model {draft} -> {fits[0].id}: a draft must share "
                                     f"{target.id}'s tokenizer ({target.tokenizer})")
    if lost_mtp:
        return "none", None, (f"speculative decoding off: {target.id} ships no multi-token-prediction head and "
                              f"no smaller catalog model shares its tokenizer ({target.tokenizer or 'unknown'})")
    if target.mtp_layers:
        return "mtp", None, (f"speculation now uses {target.id}'s MTP head: no smaller catalog model shares "
                             f"its tokenizer ({target.tokenizer})")
    return "none", None, (f"speculative decoding off: no smaller catalog model shares {target.id}'s tokenizer "
                          f"({target.tokenizer or 'unknown'}) and it has no MTP head")


ENV_CATALOG = "PLANNER_CATALOG"
_user_catalogs: tuple[Path, ...] = ()
_user_prices: tuple[tuple[str, float, str], ...] = ()


def set_user_catalogs(paths: list[Path], prices: list[tuple[str, float, str]] | None = None) -> None:
    """The global `--catalog` files and `--price` overrides of this process (set by the CLI)."""
    global _user_catalogs, _user_prices
    _user_catalogs = tuple(Path(p) for p in paths)
    _user_prices = tuple(prices or ())


def user_catalog_paths() -> tuple[Path, ...]:
    env = tuple(Path(p) for p in os.environ.get(ENV_CATALOG, "").split(os.pathsep) if p.strip())
    for path in env:  # the error names where the path came from, not just the path
        if not path.exists():
            raise InputFileError(f"{ENV_CATALOG}: {path}: file not found (check the paths, separated by "
                                 f"'{os.pathsep}')")
    return env + _user_catalogs


def load_catalog(hardware_dir: Path | None = None, models_file: Path | None = None,
                 extra: tuple[Path, ...] | None = None,
                 prices: tuple[tuple[str, float, str], ...] | None = None) -> Catalog:
    """The bundled catalog plus user catalogs (`extra`, by default `PLANNER_CATALOG` then `--catalog`)
    and price overrides (by default `--price`); each combination is read once per process, and again
    when one of its files changes."""
    extra = user_catalog_paths() if extra is None else tuple(extra)
    prices = _user_prices if prices is None else tuple(prices)
    base = _load_bundled(hardware_dir, models_file)
    if not extra and not prices:
        return base
    return _extended(base, tuple(p.resolve() for p in extra), prices)


def for_scenario(catalog: Catalog, scenario) -> Catalog:
    """`catalog` extended by a scenario's `catalog` files (absolute once the scenario is loaded, see
    `resolve_scenario_paths`) and its `[prices]`."""
    paths = tuple(Path(f) for f in scenario.catalog)
    # the command line's --price is the later, more specific word: it beats the file's [prices]
    on_command_line = {hw for hw, _, _ in _user_prices}
    table = tuple((hw, float(v) if isinstance(v, int | float) else v.usd_per_hour,
                   "user" if isinstance(v, int | float) else v.kind) for hw, v in scenario.prices.items()
                  if hw not in on_command_line)
    if not paths and not table:
        return catalog
    return _extended(catalog, paths, table, "prices")


def resolve_scenario_paths(scenario, source: Path | str):
    """Make the scenario's catalog files, a config.json model reference and a workload trace absolute
    (relative to the scenario file), so later lookups do not depend on the working directory."""
    base_dir = Path(source).resolve().parent
    update: dict = {}
    trace = scenario.workload.trace
    if trace is not None and not Path(trace).is_absolute():
        update["workload"] = scenario.workload.model_copy(update={"trace": str((base_dir / trace).resolve())})
    if scenario.catalog:
        update["catalog"] = [str((base_dir / f).resolve()) for f in scenario.catalog]
    if is_config_path(scenario.model.id) and not Path(scenario.model.id).is_absolute():
        update["model"] = scenario.model.model_copy(update={"id": os.path.abspath(base_dir / scenario.model.id)})
    return scenario.model_copy(update=update) if update else scenario


_EXTENDED: dict[tuple, tuple[Catalog, Catalog]] = {}


def _extended(base: Catalog, paths: tuple[Path, ...], prices: tuple[tuple[str, float, str], ...],
              where: str = "--price") -> Catalog:
    # files by size and modification time too: a long-lived process (the TUI, a resident worker) reads
    # an edited catalog again
    stamps = tuple((p, tuple((f, _file_stamp(f)) for f in _catalog_files(p))) for p in paths)
    key = (id(base), stamps, prices)
    if key not in _EXTENDED:  # the base is kept with the result, so its id stays unique
        _EXTENDED[key] = (base, _merge(base, paths, prices, where))
    return _EXTENDED[key][1]


USER_PRICE_SOURCE = "user-price"  # the source key of a price set by --price or a scenario's [prices]


def _merge(base: Catalog, paths: tuple[Path, ...], prices: tuple[tuple[str, float, str], ...],
           where: str) -> Catalog:
    hardware, sources, files = dict(base.hardware), dict(base.hardware_sources), dict(base.hardware_files)
    models, model_sources = dict(base.models), dict(base.model_sources)
    for path in paths:
        for file in _catalog_files(path):
            accs, acc_sources, specs, spec_sources = _read_user_file(file, base, set(models))
            for acc in accs:
                if acc.family not in base.calibration:
                    raise InputFileError(f"{file}: accelerator '{acc.id}'.family: '{acc.family}' has no entry in "
                                         f"{CALIBRATION_FILE} (known: {', '.join(sorted(base.calibration))})")
                if base.host_cpus and acc.host_cpu not in base.host_cpus:
                    raise InputFileError(f"{file}: accelerator '{acc.id}'.host_cpu: '{acc.host_cpu}' has no entry in "
                                         f"{CALIBRATION_FILE} (known: {', '.join(sorted(base.host_cpus))})")
                hardware[acc.id], sources[acc.id], files[acc.id] = acc, acc_sources, file
            for spec in specs:
                models[spec.id] = spec
            model_sources.update(spec_sources)
            for spec in specs:
                _check_drafts(file, spec, models)
    for hw_id, usd, kind in prices:
        if hw_id not in hardware:
            near = closest(hw_id, sorted(hardware))
            hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise UnknownIdError(f"{where}: price for unknown hardware ID '{hw_id}'{hint} (see `planner hardware list`)")
        acc = hardware[hw_id]
        # the price is the user's now: it cites them, not the catalog's offer (price_date stays that
        # offer's, for comparison; `planner hardware show` prints the replaced source's key no more)
        hardware[hw_id] = acc.model_copy(update={"usd_per_hour": usd, "price_kind": kind,
                                                 "price_provider": f"set by the user ({where})",
                                                 "sources": {**acc.sources, "usd_per_hour": USER_PRICE_SOURCE}})
        sources[hw_id] = {**sources.get(hw_id, {}), USER_PRICE_SOURCE: f"set by the user ({where}); the catalog's "
                          f"${acc.usd_per_hour:g}/h ({acc.price_provider}, {acc.price_date}) replaced"}
    return replace(base, hardware=hardware, hardware_sources=sources, hardware_files=files,
                   models=models, model_sources=model_sources)


def read_catalog_file(path: Path) -> tuple[list[Accelerator], list[ModelSpec]]:
    """A catalog file of [[model]] and/or [[accelerator]] tables, checked as `--catalog` loads it:
    its schema and sources, against the bundled catalog and the user catalogs in effect (families,
    host CPUs, draft models by ID, tokenizer and size). Its accelerators and models (`planner validate`)."""
    base = load_catalog()
    _merge(base, (path,), (), "validate")
    accs, _, specs, _ = _read_user_file(path, base, set(base.models))
    return accs, specs


def _check_drafts(file: Path, spec: ModelSpec, models: dict[str, ModelSpec]) -> None:
    """A user model's listed drafts must be able to draft for it: each shares its tokenizer and is
    smaller. Caught here, where the file is named; `eval --spec-k` takes the first listed draft."""
    from planner.model.arch import param_counts

    for i, draft_id in enumerate(spec.draft_models):
        draft = models[draft_id]  # the file's schema check already refused IDs the catalog lacks
        why = tokenizer_mismatch(draft, spec)
        if why is None and param_counts(draft).total >= param_counts(spec).total:
            why = f"'{draft.id}' is not smaller than the model '{spec.id}'; a draft model must be smaller"
        if why:
            raise InputFileError(f"{file}: model '{spec.id}'.draft_models[{i}]: {why}")


def _catalog_files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.glob("*.toml") if p.name not in SPECIAL_FILES)
        if not found:
            raise InputFileError(f"{path}: catalog folder holds no .toml files")
        return found
    return [path]


def _read_user_file(path: Path, base: Catalog, known_models: set[str]):
    """A user catalog file: [[model]] and/or [[accelerator]] tables with one [sources] table."""
    data = io.read_toml(path)
    unknown = sorted(set(data) - {"sources", "model", "accelerator"})
    if unknown or not ({"model", "accelerator"} & set(data)):
        found = ", ".join(unknown or sorted(data)) or "nothing"
        raise InputFileError(f"{path}: not a catalog file: found {found}; expected [[model]] and/or "
                             "[[accelerator]] tables with a [sources] table")
    src = data.get("sources", {})
    accs, specs, spec_sources = [], [], {}
    acc_sources: dict[str, str] = {}
    if "accelerator" in data:
        parsed = io.validate(HardwareFile, {"sources": src, "accelerator": data["accelerator"]}, path)
        accs, acc_sources = parsed.accelerator, parsed.sources
    if "model" in data:
        parsed_models = io.validate(ModelsFile, {"sources": src, "model": data["model"]}, path,
                                    context={"known_models": known_models})
        specs, spec_sources = parsed_models.model, parsed_models.sources
    return accs, acc_sources, specs, spec_sources


@cache
def _load_bundled(hardware_dir: Path | None = None, models_file: Path | None = None) -> Catalog:
    """Read every catalog file once per process (the catalogs are immutable at run time)."""
    hw_dir = hardware_dir or paths.hardware_dir()
    hardware: dict[str, Accelerator] = {}
    sources: dict[str, dict[str, str]] = {}
    files: dict[str, Path] = {}
    for path in sorted(hw_dir.glob("*.toml")):
        if path.name in SPECIAL_FILES:
            continue
        parsed = load_hardware_file(path)
        for acc in parsed.accelerator:
            if acc.id in hardware:
                raise InputFileError(f"{path}: accelerator.id: '{acc.id}' is also defined in {files[acc.id]}")
            hardware[acc.id] = acc
            sources[acc.id] = parsed.sources
            files[acc.id] = path
    calibration = io.load(CalibrationFile, hw_dir / CALIBRATION_FILE)
    families = {fam.id: fam for fam in calibration.family}
    for acc in hardware.values():
        if acc.family not in families:
            raise InputFileError(
                f"{files[acc.id]}: accelerator '{acc.id}'.family: '{acc.family}' has no entry in "
                f"{CALIBRATION_FILE} (known: {', '.join(sorted(families))})"
            )
    host_cpus = {cpu.id: cpu for cpu in calibration.host_cpu}
    for acc in hardware.values():
        if acc.host_cpu not in host_cpus:
            raise InputFileError(
                f"{files[acc.id]}: accelerator '{acc.id}'.host_cpu: '{acc.host_cpu}' has no [[host_cpu]] entry in "
                f"{CALIBRATION_FILE} (known: {', '.join(sorted(host_cpus)) or 'none'})"
            )
    tiers = io.load(HostTiersFile, hw_dir / HOST_TIERS_FILE)
    models_path = models_file or paths.models_file()
    models = io.load(ModelsFile, models_path)
    return Catalog(
        hardware=hardware,
        hardware_sources=sources,
        hardware_files=files,
        models={m.id: m for m in models.model},
        model_sources=models.sources,
        calibration=families,
        host_tiers=tiers,
        host_cpus=host_cpus,
    )
