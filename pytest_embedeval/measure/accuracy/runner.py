"""Run mteb tasks against an encoder and return one main score per task, on a 0-100 scale.

Every run encodes: mteb's result cache is off (``cache=None``), so a regression can never be
hidden behind a score that mteb read back from ``~/.cache/mteb`` without calling the server.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mteb
from mteb.abstasks.abstask import AbsTask

from . import items as task_items
from .tasks import FileRetrievalTask, FileSTSTask, shipped_tasks, tasks_from_path

CMTEB_BENCHMARK = "MTEB(cmn, v1)"
CMTEB_STS_TASKS = ("LCQMC", "PAWSX", "AFQMC", "QBQTC", "ATEC", "BQ", "STSB")
PRESETS = {
    "embedeval": "the tasks shipped with pytest-embedeval (STS and retrieval, English and Chinese)",
    "cmteb-sts": f"the 7 STS tasks of C-MTEB: {' '.join(CMTEB_STS_TASKS)}",
    "cmteb": f"every task of mteb's {CMTEB_BENCHMARK} benchmark (31 tasks)",
}
PREFETCH_COMMAND = "embedeval prefetch --tasks"
ONE_POINT = 1.0  # the smallest change a score's item set should be able to tell apart from its noise

Progress = Callable[[str, int, int], Any]


class UnknownTarget(LookupError):
    """A name that is neither a preset, an mteb task nor an existing path."""


class DatasetNotCached(RuntimeError):
    """mteb tasks whose data is not on this machine while the Hugging Face hub is off limits."""

    def __init__(self, task_names: list[str], cache_dir: str):
        self.task_names = task_names
        names = ", ".join(task_names)
        super().__init__(
            f"mteb task{'s' if len(task_names) > 1 else ''} {names}: dataset not in the local Hugging Face "
            f"cache ({cache_dir}) and HF_HUB_OFFLINE=1 forbids downloading it. Fill the cache once on a "
            f"machine with network access: {PREFETCH_COMMAND} {','.join(task_names)}"
        )


@dataclass(frozen=True)
class TaskScore:
    """One task's main score. ``metric`` is ``mteb:<task>`` for mteb's and the shipped tasks,
    ``data:<name>`` for a user's file.

    ``interval`` is the score's 95% interval (points) from a bootstrap over the task's ``items``
    (``item_unit``: STS pairs or retrieval queries), computed from the same vectors as the score: what
    another set of that many items of the same kind could score. A verdict should count a change only
    when the whole interval lies beyond the tolerance band. ``too_small_for_one_point`` says when the
    set cannot tell a 1-point change from its noise. ``interval`` None with ``items`` given: too few
    items for a bootstrap. Both None: the items could not be taken from the run (another kind of task
    or main measure), or they did not rebuild mteb's score, so an interval of them would be of another figure.
    """

    metric: str
    task: str
    main_score: str  # mteb's name for the measure, e.g. cosine_spearman, ndcg_at_10
    value: float  # 0-100
    seconds: float
    texts_encoded: int | None  # None when the encoder does not count
    interval: tuple[float, float] | None = None  # 95% bootstrap interval of value, points
    items: int | None = None  # how many items the score is over (pairs, queries)
    item_unit: str | None = None  # "pairs" or "queries"
    # The per-item values behind the interval, for a paired comparison with another server's run.
    groups: tuple = field(default=(), compare=False, repr=False)

    @property
    def half_width(self) -> float | None:
        """Half the interval's width, points."""
        return None if self.interval is None else (self.interval[1] - self.interval[0]) / 2

    @property
    def too_small_for_one_point(self) -> bool:
        """The item set cannot tell a 1-point change from its own sampling noise: the interval is wider
        than +-1 point; or the set is too small for a bootstrap at all; or every resample scored the same
        (a score at its ceiling: 12 pairs in perfect order) and the set has fewer than 300 items. A bootstrap
        sees no error there, but by the rule of three up to 3/n of such items could break the order
        unseen, and 3/n is below 1% only from 300 items. False when the items are unknown."""
        if self.items is None:
            return False
        if self.interval is None:
            return True
        if self.half_width == 0:
            return 3 / self.items > ONE_POINT / 100
        return self.half_width > ONE_POINT

    def __str__(self) -> str:
        text = f"{self.metric} {self.main_score} = {self.value:.2f}"
        if self.interval is not None:
            text += f" (95% CI {self.interval[0]:.2f}..{self.interval[1]:.2f}, {self.items} {self.item_unit})"
        return text


def is_file_task(task: AbsTask) -> bool:
    return isinstance(task, (FileSTSTask, FileRetrievalTask))


def metric_name(task: AbsTask) -> str:
    user = getattr(task, "is_user_data", False)
    return f"{'data' if user else 'mteb'}:{task.metadata.name}"


# ---------------------------------------------------------------------------------------------
# Naming what to run


def _benchmark_tasks(name: str) -> list[AbsTask]:
    # mteb hands out the benchmark's own task objects, which a run mutates (data loaded, filters):
    # copies keep one run from leaking into the next.
    return [copy.deepcopy(task) for task in mteb.get_benchmark(name).tasks]


def resolve_target(name_or_path: str | Path) -> list[AbsTask]:
    """The tasks a name stands for: a preset (``embedeval``, ``cmteb-sts``, ``cmteb``), one of the
    shipped tasks (``EmbedEvalSTS-en``...), an mteb task or benchmark name, or a path to user data (a ``.jsonl`` file of STS pairs, a BEIR folder).

    Resolving never downloads; ``evaluate`` checks that mteb datasets are available before it runs.
    """
    name = str(name_or_path)
    if name == "embedeval":
        return shipped_tasks()
    shipped = [task for task in shipped_tasks() if task.metadata.name == name]
    if shipped:  # one of the project's own tasks, e.g. EmbedEvalSTS-en
        return shipped
    if name == "cmteb":
        return _benchmark_tasks(CMTEB_BENCHMARK)
    if name == "cmteb-sts":
        # The benchmark's copies, not mteb.get_task's: the benchmark scores some of them on fewer splits.
        by_name = {task.metadata.name: task for task in _benchmark_tasks(CMTEB_BENCHMARK)}
        return [by_name[task_name] for task_name in CMTEB_STS_TASKS]
    path = Path(name).expanduser()
    if path.exists():
        return tasks_from_path(path)
    if "/" in name or "\\" in name or path.suffix == ".jsonl":  # no mteb task or benchmark name has these
        raise UnknownTarget(f"{path}: no such file or folder")
    try:
        return [mteb.get_task(name)]
    except KeyError as task_error:
        try:
            return _benchmark_tasks(name)
        except KeyError:
            hint = str(task_error).strip("'\"")
            raise UnknownTarget(
                f"{name!r} is not a preset ({', '.join(PRESETS)}), an mteb task or benchmark, or an existing "
                f"file or folder. mteb says: {hint}"
            ) from None


# ---------------------------------------------------------------------------------------------
# Offline availability


def _hub_offline() -> bool:
    import os

    import datasets.config

    # datasets reads the variable once, at import; the plugin may set it later, before a run.
    return bool(datasets.config.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _leaf_tasks(tasks: Iterable[AbsTask]) -> list[AbsTask]:
    leaves: list[AbsTask] = []
    for task in tasks:
        leaves.extend(_leaf_tasks(task.metadata.tasks) if task.is_aggregate else [task])
    return leaves


def check_datasets_available(tasks: Iterable[AbsTask]) -> None:
    """Raise ``DatasetNotCached`` naming every mteb task whose data cannot be loaded offline.

    Only when the hub is off (HF_HUB_OFFLINE=1): then ``datasets`` loads from its own cache and
    nowhere else, and asking it for a dataset's configs costs a directory lookup. Online, mteb
    downloads what is missing and there is nothing to check.
    """
    if not _hub_offline():
        return
    from datasets import get_dataset_config_names

    missing = []
    for task in _leaf_tasks(tasks):
        dataset = task.metadata.dataset
        # A task whose data is already in memory needs nothing from the hub (mteb will not load it again).
        if is_file_task(task) or task.data_loaded or Path(dataset["path"]).is_dir():
            continue
        try:
            get_dataset_config_names(dataset["path"], revision=dataset.get("revision"))
        except Exception:  # ConnectionError, FileNotFoundError, ...: all mean "not here"
            missing.append(task.metadata.name)
    if missing:
        raise DatasetNotCached(missing, _datasets_cache())


def _datasets_cache() -> str:
    import datasets.config

    return str(datasets.config.HF_DATASETS_CACHE)


# ---------------------------------------------------------------------------------------------
# Running


def _run_one(encoder: Any, task: AbsTask) -> Any:
    try:
        return mteb.evaluate(
            encoder,
            task,
            cache=None,  # no result cache: scores are computed, never read back
            overwrite_strategy="always",  # and, should a cache ever be passed, still recomputed
            co2_tracker=False,  # codecarbon would probe hardware and the network
            public_only=False,  # a missing dataset raises instead of mteb loading it twice
            show_progress_bar=False,
            encode_kwargs={"batch_size": getattr(encoder, "batch_size", 32), "show_progress_bar": False},
            raise_error=True,
        )
    except (ConnectionError, FileNotFoundError) as exc:  # datasets' DatasetNotFoundError is a FileNotFoundError
        # Offline, a dataset the preflight let through can still lack a config or split.
        if _hub_offline() and not is_file_task(task):
            raise DatasetNotCached([task.metadata.name], _datasets_cache()) from exc
        raise


def evaluate(encoder: Any, tasks: Iterable[AbsTask], progress: Progress | None = None,
             results_dir: Path | None = None) -> list[TaskScore]:
    """Each task's main score (0-100), in the order given, with its bootstrap interval over the task's
    items where they can be taken from the run (see ``items``).

    ``progress(task_name, index, total)`` is called before each task; ``index`` counts from 1.
    ``results_dir``: where mteb's own result files of every task are written, as mteb's cache lays them out.
    Offline, every mteb dataset is checked before the first task runs, so a missing one fails in
    well under a second instead of after hours of the tasks before it.
    """
    tasks = list(tasks)
    check_datasets_available(tasks)
    scores = []
    for index, task in enumerate(tasks, 1):
        # Read before the run: mteb's unload_data drops a task's own metadata, leaving its class's.
        name, main_score = task.metadata.name, task.metadata.main_score
        if progress is not None:
            progress(name, index, len(tasks))
        texts_before = getattr(encoder, "texts_encoded", None)
        start = time.perf_counter()
        with task_items.ItemCapture(task, encoder) as capture:
            result = _run_one(encoder, task)
        seconds = time.perf_counter() - start
        if result.exceptions:
            raise RuntimeError(f"mteb task {name} failed: {result.exceptions[0].exception}")
        (task_result,) = result.task_results
        if results_dir is not None:  # mteb's own layout and files: mteb.load_results reads them back
            mteb.cache.ResultCache(results_dir).save_to_cache(task_result, encoder.mteb_model_meta)
        texts_after = getattr(encoder, "texts_encoded", None)
        value = float(task_result.get_score())
        scores.append(TaskScore(
            metric=metric_name(task),
            task=name,
            main_score=main_score,
            # mteb scores are 0-1; its leaderboard, the model cards and our baselines say points.
            value=100.0 * value,
            seconds=seconds,
            texts_encoded=None if texts_before is None else texts_after - texts_before,
            **_item_fields(capture.groups(), value),
        ))
    return scores


def _item_fields(groups: list[task_items.Items] | None, value: float) -> dict[str, Any]:
    """TaskScore's interval, items and item_unit from a run's items (0-1 scale in, points out)."""
    # Each group already rebuilt its own mteb score; this checks the average over groups is mteb's too.
    if not groups or abs(task_items.score(groups) - value) > task_items.RETRIEVAL_AGREEMENT:
        return {}
    interval = task_items.bootstrap_interval(groups)
    return {
        "interval": None if interval is None else (100.0 * interval[0], 100.0 * interval[1]),
        "items": sum(len(group) for group in groups),
        "item_unit": groups[0].unit,
        "groups": tuple(groups),
    }
