"""Accuracy of a served model, scored by mteb: an encoder over the server, tasks from files, a runner.

A library: nothing here imports pytest. ``import mteb`` takes about 5 s, so the plugin should import
this package only when a test asks for an accuracy score.
"""

from .encoder import ServerEncoder, model_meta_for
from .evaluate import (
    CMTEB_BENCHMARK,
    CMTEB_STS_TASKS,
    DatasetNotCached,
    TaskScore,
    UnknownTarget,
    check_datasets_available,
    evaluate,
    resolve_target,
)
from .items import ItemCapture, PairItems, QueryItems, bootstrap_interval
from .tasks import (
    FileRetrievalTask,
    FileSTSTask,
    TaskDataError,
    retrieval_task_from_folder,
    shipped_data_dir,
    shipped_tasks,
    sts_task_from_jsonl,
    tasks_from_path,
)

__all__ = [
    "CMTEB_BENCHMARK",
    "CMTEB_STS_TASKS",
    "DatasetNotCached",
    "FileRetrievalTask",
    "FileSTSTask",
    "ItemCapture",
    "PairItems",
    "QueryItems",
    "ServerEncoder",
    "TaskDataError",
    "TaskScore",
    "UnknownTarget",
    "bootstrap_interval",
    "check_datasets_available",
    "evaluate",
    "model_meta_for",
    "resolve_target",
    "retrieval_task_from_folder",
    "shipped_data_dir",
    "shipped_tasks",
    "sts_task_from_jsonl",
    "tasks_from_path",
]
