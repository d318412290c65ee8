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
    latency_p50_ms = { value = 89.0, note = "batch 1, 128 tokens" }
    cmteb_avg = { value = 70.58, tolerance = 1.0 }
    context_length = { value = 8192, disputed = "the model has 512 positions" }   # kept, never compared

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

from ..hardware import ANY, HardwareProfile
from ..metrics import EXACT, Tolerance, metric
from ..names import safe_name
from ..verdicts import Outcome, Verdict, compare, format_value
from .files import inside, locked, remove_stale_temporaries, write_atomically

SOURCES = ("article", "official", "measured")
_PROFILE_FIELDS = {"hardware", "engine", "dtype", "source", "date", "machine", "software", "note", "metrics"}
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
    metrics: dict[str, Entry] = field(default_factory=dict)

    def applies_to(self, here: HardwareProfile, hardware_bound: bool = True) -> bool:
        """Whether its figures judge a run ``here``; a figure that is not ``hardware_bound`` (a score, a
        vector, a shape) depends on the engine and the dtype alone, so any hardware's profile will do."""
        return here.matches(self.hardware if hardware_bound else ANY, self.engine, self.dtype)

    @property
    def is_exact(self) -> bool:
        return ANY not in (self.hardware, self.engine, self.dtype)


@dataclass
class ModelBaselines:
    path: Path
    model: str
    profiles: dict[str, Profile]

    def find(self, metric_name: str, here: HardwareProfile) -> tuple[Profile, Entry] | None:
        """The measured baseline that judges this figure here: this hardware's profile first, then an exact
        one, then the newest. Times, rates and memory need the same hardware; scores, vectors and shapes
        take any hardware's with the same engine and dtype.

        Published figures (an article's, a model card's) never judge: they were measured elsewhere, some are
        known to be wrong, and a new runner must be able to go green. They are shown beside the verdict.
        """
        bound = metric(metric_name).hardware_bound
        candidates = [p for p in self.profiles.values() if p.source == "measured" and metric_name in p.metrics
                      and not p.metrics[metric_name].disputed and p.applies_to(here, bound)]
        if not candidates:
            return None
        # Times: this hardware's own profile. Scores and vectors: the newest, whatever machine measured them.
        key = (lambda p: (p.hardware == here.hardware, p.is_exact, p.date)) if bound else (lambda p: p.date)
        best = max(candidates, key=key)
        return best, best.metrics[metric_name]

    def published(self, metric_name: str, measured: float) -> str | None:
        """The published figures of this metric, each with the measured value's difference from it."""
        definition, shown = metric(metric_name), []
        for profile in self.profiles.values():
            entry = profile.metrics.get(metric_name)
            if profile.source == "measured" or entry is None:
                continue
            where = f" on {profile.hardware}" if definition.hardware_bound and profile.hardware != ANY else ""
            text = f"{profile.name} {format_value(entry.value, definition.unit)}{where}"
            if entry.disputed:
                text += " (disputed)"
            elif definition.tolerance.relative and entry.value and math.isfinite(measured):
                text += f": {(measured - entry.value) / abs(entry.value):+.0%}"
            elif math.isfinite(measured):
                text += f": {measured - entry.value:+.4g}"
            shown.append(text)
        return "; ".join(shown) or None

    def compare(self, metric_name: str, measured: float, here: HardwareProfile, *,
                tolerance: Tolerance | None = None, interval=None, test: str | None = None,
                note: str | None = None, ratio_interval=None, sampled_baseline: float | None = None,
                pair: tuple[float, float] | None = None) -> Verdict:
        """``ratio_interval`` (measured / baseline run, from both runs' samples) replaces ``interval`` when
        the baseline found is the figure those samples gave (``sampled_baseline``): a hand-edited or
        published baseline has no samples, and is compared with this run's interval alone."""
        definition = metric(metric_name)
        found = self.find(metric_name, here)
        published = self.published(metric_name, measured)
        if found is None:
            return compare(definition, measured, None, tolerance, model=self.model, profile=str(here),
                           interval=interval, test=test, note=note, pair=pair, published=published)
        profile, entry = found
        if ratio_interval and sampled_baseline and math.isclose(entry.value, sampled_baseline, rel_tol=1e-3):
            interval = (entry.value * ratio_interval[0], entry.value * ratio_interval[1])
            note = f"{note}; " if note else ""
            note += "CI of this run against the baseline run, both runs' samples resampled"
        return compare(definition, measured, entry.value, tolerance or entry.tolerance, model=self.model,
                       profile=profile.name, source=profile.source, interval=interval, test=test, note=note,
                       pair=pair, published=published)


# -- loading ------------------------------------------------------------------------------------

def _require(path: Path, where: str, table: dict, name: str, kind: type, expected: str):
    if name not in table:
        raise BaselineError(path, where, f"field {name!r} is missing; expected {expected}")
    value = table[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BaselineError(path, f"{where}.{name}", f"expected {expected}, got {value!r}")
    return value


def _entry(path: Path, where: str, raw) -> Entry:
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
        name = where.rsplit(".", 1)[-1]
        try:
            tolerance = Tolerance.parse(table["tolerance"])
            metric(name).check_tolerance(tolerance)
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
    for metric_name, raw in raw_metrics.items():
        try:
            metric(metric_name)
        except KeyError as exc:
            raise BaselineError(path, f"{where}.metrics.{metric_name}", exc.args[0]) from None
        metrics[metric_name] = _entry(path, f"{where}.metrics.{metric_name}", raw)
    return Profile(name=name, **text, **optional, metrics=metrics)


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
    metric: str
    old: float | None
    new: float
    action: str  # "new", "updated", "unchanged", "refused: regressed", "accepted regression"
    verdict: Verdict | None = None

    @property
    def written(self) -> bool:
        return not self.action.startswith("refused")


def vectors_name(here: HardwareProfile) -> str:
    """The name probe vectors are stored under: engine and dtype, since vectors do not depend on the hardware."""
    return "-".join(safe_name(part, what) for part, what in ((here.engine, "engine name"), (here.dtype, "dtype")))


def profile_name(here: HardwareProfile) -> str:
    """The profile's name, which is also a file name under vectors/ and timings/."""
    return "-".join(safe_name(part, what) for part, what in
                    ((here.hardware, "hardware key"), (here.engine, "engine name"), (here.dtype, "dtype")))


def update(
    directory: Path,
    model: str,
    here: HardwareProfile,
    verdicts: list[Verdict],
    *,
    machine: str,
    software: str,
    accept_regressions: bool = False,
    today: _dt.date | None = None,
) -> list[Change]:
    """Write the figures of ``verdicts`` into the "measured" profiles they belong to: times, rates and memory
    into this hardware's, scores, vectors and shapes into the engine and dtype's ("any" hardware), since
    those do not depend on the machine.

    The verdicts are the ones the run's tests got: the update never judges again, so a figure
    that passed its test is written, and one that regressed there is refused (kept as it was)
    unless ``accept_regressions``. A figure that is not a number is never written.
    """
    directory = Path(directory)
    path = inside(directory, directory / f"{model}.toml", "the baseline file")
    latest = {v.metric: v for v in verdicts if metric(v.metric).fixed_baseline is None}
    with locked(directory):
        # Re-read under the lock: another worker may have written since this run started.
        current = load(path) if path.exists() else ModelBaselines(path, model, {})
        document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else _new_document(model)
        changes, homes = [], {}
        for metric_name, verdict in sorted(latest.items()):
            home = here if metric(metric_name).hardware_bound else HardwareProfile(ANY, here.engine, here.dtype)
            name = profile_name(home)
            homes[metric_name] = home
            old = current.profiles[name].metrics.get(metric_name) if name in current.profiles else None
            value = verdict.measured
            if verdict.outcome is Outcome.NOT_A_NUMBER:
                action = "refused: not a number"
            elif verdict.outcome is Outcome.REGRESSED:
                action = "accepted regression" if accept_regressions else "refused: regressed"
            elif old is None:
                action = "new"
            else:
                action = "unchanged" if old.value == value else "updated"
            changes.append(Change(metric_name, old.value if old else None, value, action, verdict))
        remove_stale_temporaries(path)
        written = [c for c in changes if c.written and c.action != "unchanged"]
        if written:
            for home in dict.fromkeys(homes[c.metric] for c in written):
                _apply(document, profile_name(home), home, [c for c in written if homes[c.metric] == home],
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
        profile["source"] = "measured"
        profile["metrics"] = tomlkit.table()
        profiles[name] = profile
    profile = profiles[name]
    profile["date"], profile["machine"], profile["software"] = today.isoformat(), machine, software
    metrics = profile.setdefault("metrics", tomlkit.table())
    for change in changes:
        exact = metric(change.metric).better == EXACT  # counts (dimensions, tokens) stay integers
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
