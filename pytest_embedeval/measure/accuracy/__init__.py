"""Accuracy of a served model, scored by mteb: an encoder over the server, tasks from files, a runner.

A library: nothing here imports pytest. ``import mteb`` takes about 5 s, so its names are imported on first
use: reading stored item sets (``items``, which the store does) loads neither mteb nor the encoder.
"""

from importlib import import_module

_HOMES = {
    "encoder": ("ServerEncoder", "model_meta_for"),
    "runner": ("CMTEB_BENCHMARK", "CMTEB_STS_TASKS", "DatasetNotCached", "TaskScore", "UnknownTarget",
                 "check_datasets_available", "evaluate", "resolve_target"),
    "items": ("ItemCapture", "PairItems", "QueryItems", "bootstrap_interval"),
    "tasks": ("FileRetrievalTask", "FileSTSTask", "TaskDataError", "retrieval_task_from_folder", "shipped_data_dir",
              "shipped_tasks", "sts_task_from_jsonl", "tasks_from_path"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name: str):
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _HOME_OF[name]
    module = import_module(f".{home}", __name__)
    # All of the module's names at once: plain attributes from now on.
    globals().update({exported: getattr(module, exported) for exported in _HOMES[home]})
    return globals()[name]
