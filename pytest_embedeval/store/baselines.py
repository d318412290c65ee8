"""The baseline store: one TOML file per model under ``baselines/``, reviewed in pull requests.

    model = "qwen3-4b"

    [profiles.article]                  # a free name; the fields below decide where it applies
    hardware = "a100-80gb-x1"           # or "cpu-2c", or "any" (accuracy, facts)
    engine = "sglang"
    dtype = "auto"                      # as the server was configured
    source = "article"                  # article | official | measured
    date = "2025-06-01"
    machine = "NVIDIA A100 80GB"
    software = "SGLang (version not stated)"
    note = "..."

    [profiles.article.metrics]
    "latency_p50_ms (batch 1 x 128 tokens)" = { value = 89.0 }   # a figure's label: metric and shape
    cmteb_avg = { value = 70.58, tolerance = 1.0 }
    context_length = { value = 8192, disputed = "the model has 512 positions" }   # kept, never compared

A profile may also say ``deployment = "--quantization fp8"`` (the server flags that change results) and
``paired = true`` (measured beside a paired incumbent): a figure is judged only by a profile of its own.
The store holds and writes data; which figure judges which is the judge's (``judge/rules.py``).

Loading validates everything and names the file and field of any mistake, before a server boots.
Updating rewrites values in place (tomlkit keeps comments, order and formatting, so the diff shows
only what changed), under a lock, through a temporary file and a rename.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

from ..facts.hardware import ANY, HardwareProfile
from ..facts.metrics import EXACT, Tolerance, metric, parse_label
from ..facts.names import safe_name
from .files import inside, locked, remove_stale_temporaries, write_atomically

SOURCES = ("article", "official", "measured")
_PROFILE_FIELDS = {"hardware", "engine", "dtype", "deployment", "paired", "source", "date", "machine", "software",
                   "note", "metrics"}
_ENTRY_FIELDS = {"value", "tolerance", "note", "disputed"}


class BaselineError(ValueError):
    """A baseline file is malformed: names the file, the field and what was expected."""

    def __init__(self, path: Path, where: str, problem: str):
        super().__init__(f"{path}: {where}: {problem}")


@dataclass(frozen=True)
class Entry:
    value: float
    tolerance: Tolerance | None = None
    note: str | None = None
    disputed: str | None = None  # why this published figure is known to be wrong: kept, never compared


@dataclass
class Profile:
    name: str
    hardware: str
    engine: str
    dtype: str
    source: str
    date: str
    machine: str = ""
    software: str = ""
    note: str = ""
    deployment: str = ""
    paired: bool = False
    metrics: dict[str, Entry] = field(default_factory=dict)  # by label: "latency_p50_ms (batch 1 x 16 tokens)"

    @property
    def is_exact(self) -> bool:
        return ANY not in (self.hardware, self.engine, self.dtype)


@dataclass
class ModelBaselines:
    path: Path
    model: str
    profiles: dict[str, Profile]


# -- loading ------------------------------------------------------------------------------------

def _require(path: Path, where: str, table: dict, name: str, kind: type, expected: str):
    if name not in table:
        raise BaselineError(path, where, f"field {name!r} is missing; expected {expected}")
    value = table[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BaselineError(path, f"{where}.{name}", f"expected {expected}, got {value!r}")
    return value


def _entry(path: Path, where: str, raw, metric_name: str) -> Entry:
    table = raw if isinstance(raw, dict) else {"value": raw}
    unknown = sorted(set(table) - _ENTRY_FIELDS)
    if unknown:
        raise BaselineError(path, f"{where}.{unknown[0]}", f"unknown field; expected one of {sorted(_ENTRY_FIELDS)}")
    value = _require(path, where, table, "value", (int, float), "a number")
    if not math.isfinite(value):
        # TOML has nan and inf literals; a baseline of NaN would make every later comparison pass.
        raise BaselineError(path, f"{where}.value", f"expected a finite number, got {value!r}; "
                            "restore the figure from version control or re-record it with --embed-update-baselines")
    tolerance = None
    if "tolerance" in table:
        try:
            tolerance = Tolerance.parse(table["tolerance"])
            metric(metric_name).check_tolerance(tolerance)
        except ValueError as exc:
            raise BaselineError(path, f"{where}.tolerance", str(exc)) from None
    for key in ("note", "disputed"):
        if key in table and not isinstance(table[key], str):
            raise BaselineError(path, f"{where}.{key}", f"expected text, got {table[key]!r}")
    return Entry(float(value), tolerance, table.get("note"), table.get("disputed"))


def _profile(path: Path, name: str, table) -> Profile:
    where = f"profiles.{name}"
    if not isinstance(table, dict):
        raise BaselineError(path, where, "expected a table")
    unknown = sorted(set(table) - _PROFILE_FIELDS)
    if unknown:
        raise BaselineError(path, f"{where}.{unknown[0]}", f"unknown field; expected one of {sorted(_PROFILE_FIELDS)}")
    text = {key: _require(path, where, table, key, str, "text")
            for key in ("hardware", "engine", "dtype", "source", "date")}
    if text["source"] not in SOURCES:
        raise BaselineError(path, f"{where}.source", f"expected one of {SOURCES}, got {text['source']!r}")
    if text["date"] != "unknown" and not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text["date"]):
        raise BaselineError(path, f"{where}.date",
                            f"expected YYYY-MM-DD (or YYYY-MM, or \"unknown\"), got {text['date']!r}")
    optional = {key: table.get(key, "") for key in ("machine", "software", "note")}
    for key, value in optional.items():
        if not isinstance(value, str):
            raise BaselineError(path, f"{where}.{key}", f"expected text, got {value!r}")
    raw_metrics = table.get("metrics", {})
    if not isinstance(raw_metrics, dict):
        raise BaselineError(path, f"{where}.metrics", "expected a table of metric = value")
    metrics = {}
    for figure_label, raw in raw_metrics.items():
        field_name = f"{where}.metrics.{figure_label!r}" if " " in figure_label else f"{where}.metrics.{figure_label}"
        try:
            definition = metric(parse_label(figure_label)[0])
        except KeyError as exc:
            raise BaselineError(path, field_name, exc.args[0]) from None
        entry = _entry(path, field_name, raw, definition.name)
        if definition.fixed_baseline is not None:
            if entry.value == definition.fixed_baseline and entry.tolerance is None:
                continue  # stored by an older version, before the figure's baseline was fixed: nothing to do
            raise BaselineError(path, field_name, f"{definition.name} has a fixed baseline of "
                                f"{definition.fixed_baseline:g} on every server, which no file can move or loosen; "
                                "remove the entry")
        metrics[figure_label] = entry
    deployment = table.get("deployment", "")
    if not isinstance(deployment, str):
        raise BaselineError(path, f"{where}.deployment", f"expected the server flags as text, got {deployment!r}")
    paired = table.get("paired", False)
    if not isinstance(paired, bool):
        raise BaselineError(path, f"{where}.paired", f"expected true or false, got {paired!r}")
    return Profile(name=name, **text, **optional, deployment=deployment, paired=paired, metrics=metrics)


def load(path: Path) -> ModelBaselines:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(path, "syntax", str(exc)) from None
    except UnicodeDecodeError as exc:
        raise BaselineError(path, f"byte {exc.start}", "not UTF-8 text; TOML files must be saved as UTF-8") from None
    model = _require(path, "top level", data, "model", str, "the model alias, e.g. \"qwen3-4b\"")
    try:
        safe_name(model, "model alias")
    except ValueError as exc:
        raise BaselineError(path, "model", str(exc)) from None
    if path.stem != model:
        raise BaselineError(path, "model", f"the file of model {model!r} must be named {model}.toml")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise BaselineError(path, "profiles", "expected tables [profiles.<name>]")
    unknown = sorted(set(data) - {"model", "profiles"})
    if unknown:
        raise BaselineError(path, unknown[0], "unknown field; expected 'model' and [profiles.<name>] tables")
    return ModelBaselines(path, model, {name: _profile(path, name, table) for name, table in profiles.items()})


class BaselineStore:
    """All models' baselines in one directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.models: dict[str, ModelBaselines] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.toml")):
                baselines = load(path)
                self.models[baselines.model] = baselines

    def for_model(self, model: str) -> ModelBaselines:
        return self.models.get(model) or ModelBaselines(self.directory / f"{model}.toml", model, {})


# -- updating -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """What an update does with one figure, as the judge decided it; the store only carries it out."""

    metric: str  # the figure's label: metric and shape
    home: HardwareProfile  # the profile it belongs in
    old: float | None
    new: float
    action: str  # "new", "improved", "accepted regression", "moved on request", "unchanged", "kept: ...",
    #              "refused: ..."
    verdict: object = None

    MOVES = ("new", "improved", "accepted regression", "moved on request")

    @property
    def moves(self) -> bool:
        """Whether the stored value changes."""
        return self.action in self.MOVES

    @property
    def refused(self) -> bool:
        return self.action.startswith("refused")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def vectors_name(here: HardwareProfile) -> str:
    """The name probe vectors and items are stored under: engine, dtype and deployment, since vectors do not
    depend on the hardware."""
    parts = [safe_name(here.engine, "engine name"), safe_name(here.dtype, "dtype")]
    return "-".join(parts + ([_slug(here.deployment)] if here.deployment else []))


def profile_name(here: HardwareProfile) -> str:
    """The profile's name, which is also a file name under timings/: every part of where and how it ran."""
    parts = [safe_name(here.hardware, "hardware key"), safe_name(here.engine, "engine name"),
             safe_name(here.dtype, "dtype")]
    return "-".join(parts + ([_slug(here.deployment)] if here.deployment else []) + (["paired"] if here.paired else []))


def update(directory: Path, model: str, decide, *, machine: str, software: str,
           today: _dt.date | None = None) -> list[Change]:
    """Carry out an update: ``decide(current)`` (the judge's) returns a ``Change`` per figure, given the model's
    baselines as they are on disk now (re-read under the lock: another worker may have written since this run
    started); the figures whose value moves are written into their profiles, atomically."""
    directory = Path(directory)
    path = inside(directory, directory / f"{model}.toml", "the baseline file")
    with locked(directory):
        current = load(path) if path.exists() else ModelBaselines(path, model, {})
        document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else _new_document(model)
        changes = decide(current)
        remove_stale_temporaries(path)
        moved = [c for c in changes if c.moves]
        if moved:
            for home in dict.fromkeys(c.home for c in moved):
                _apply(document, profile_name(home), home, [c for c in moved if c.home == home],
                       machine, software, today or _dt.date.today())
            text = tomlkit.dumps(document)
            load_text_check(path, text)
            write_atomically(path, text)
        return changes


def _new_document(model: str) -> tomlkit.TOMLDocument:
    document = tomlkit.document()
    document.add(tomlkit.comment(f"Baselines for {model}. Reviewed in pull requests; see the README for the format."))
    document["model"] = model
    document["profiles"] = tomlkit.table(is_super_table=True)
    return document


def _apply(document, name: str, here: HardwareProfile, changes: list[Change], machine: str, software: str,
           today: _dt.date) -> None:
    profiles = document.setdefault("profiles", tomlkit.table(is_super_table=True))
    if name not in profiles:
        profile = tomlkit.table()
        profile["hardware"], profile["engine"], profile["dtype"] = here.hardware, here.engine, here.dtype
        if here.deployment:
            profile["deployment"] = here.deployment
        if here.paired:
            profile["paired"] = True
        profile["source"] = "measured"
        profile["metrics"] = tomlkit.table()
        profiles[name] = profile
    profile = profiles[name]
    profile["date"], profile["machine"], profile["software"] = today.isoformat(), machine, software
    metrics = profile.setdefault("metrics", tomlkit.table())
    for change in changes:
        exact = metric(parse_label(change.metric)[0]).better == EXACT  # counts (dimensions, tokens) stay integers
        value = int(change.new) if exact and float(change.new).is_integer() else round(float(change.new), 6)
        existing = metrics.get(change.metric)
        if isinstance(existing, dict):
            existing["value"] = value  # keeps the entry's tolerance and note
        else:
            metrics[change.metric] = value


def load_text_check(path: Path, text: str) -> None:
    """Refuse to write a file that would not load back."""
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / path.name
        probe.write_text(text, encoding="utf-8")
        load(probe)
