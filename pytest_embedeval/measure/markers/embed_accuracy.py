"""The accuracy marker: mteb main scores of a task, a preset or the user's files, each with its interval over
the task's items; in a pair, the candidate's score minus the incumbent's on the same items."""

from __future__ import annotations

from .target import Measured, Measurement, MeasurementError, Target

# Presets whose average is a headline figure of their own.
_AVERAGES = {"cmteb": "cmteb_avg", "cmteb-sts": "cmteb_sts_avg"}


def embed_accuracy(target: Target, *, task: str = "embedeval", dimensions: int | None = None,
                   batch_size: int = 32, concurrency: int = 4) -> Measured:
    """mteb main scores (0-100) of a task, a preset (embedeval, cmteb-sts, cmteb) or a path to your data.

    Each score carries its 95% interval from a bootstrap over the task's items (pairs, queries), so a
    change counts only when it is beyond the tolerance and beyond what that many items can tell.
    """
    scores = _scores(target, task, dimensions, batch_size, concurrency)
    shape = f"{dimensions} dimensions" if dimensions else None  # the task is in the metric's name
    figures = []
    for score in scores:
        note = f"{task}; {score.items} {score.item_unit}" if score.items else task
        if score.too_small_for_one_point:  # the judge calls a too-wide interval inconclusive; this says why
            note += "; too few items to tell a 1-point change"
        figures.append(Measurement(score.metric, score.value, score.interval, note, shape, items=score.groups))
    if task in _AVERAGES and scores:
        average = sum(score.value for score in scores) / len(scores)
        figures.append(Measurement(_AVERAGES[task], average, None, f"average of {len(scores)} tasks", shape))
    if target.incumbent:
        from ..accuracy.paired import paired_difference_interval

        incumbent = _scores(target.incumbent, task, dimensions, batch_size, concurrency, ", incumbent")
        for mine, theirs in zip(scores, incumbent):
            interval = paired_difference_interval(mine.groups, theirs.groups)
            figures.append(Measurement(
                f"paired:{mine.metric}", mine.value - theirs.value,
                None if interval is None else (100 * interval[0], 100 * interval[1]),
                f"{task}; the same {mine.items or ''} {mine.item_unit or 'items'} on both servers, "
                "resampled together", shape, pair=(theirs.value, mine.value)))
    return Measured(figures)


def _scores(target: Target, task: str, dimensions, batch_size: int, concurrency: int, role: str = "") -> list:
    from .. import accuracy

    try:
        tasks = accuracy.resolve_target(task)  # fresh task objects: a run mutates them
        encoder = accuracy.ServerEncoder(target.client, target.server.spec, dimensions=dimensions,
                                         batch_size=batch_size, concurrency=concurrency)
        return accuracy.evaluate(encoder, tasks, progress=lambda name, index, total: target.progress(
            f"embed_accuracy: task {index}/{total} {name} ({target.server.spec.alias}{role})"),
            results_dir=target.mteb_results)
    except (accuracy.UnknownTarget, accuracy.DatasetNotCached, accuracy.TaskDataError) as exc:
        raise MeasurementError(str(exc)) from None
