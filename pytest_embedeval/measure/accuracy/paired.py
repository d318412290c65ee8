"""Two servers' scores on the same items: the candidate's minus the incumbent's, with a paired bootstrap.

Both servers embed the same pairs (or answer the same queries), so each resample draws the same items for
both and the difference keeps only what differs between the servers: the items' own spread, which makes a
single score's interval several points wide, cancels. A half-point drop a single score could never show
stands out of a paired interval a tenth as wide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .items import CONFIDENCE, MIN_ITEMS, RESAMPLE_CELLS, RESAMPLES, SEED, Items


def _same_items(mine: Items, theirs: Items) -> bool:
    """The same pairs in the same order: their gold scores agree (queries can only be counted)."""
    return mine.unit == theirs.unit and (mine.unit != "pairs" or np.array_equal(mine.gold, theirs.gold))


def paired_difference_interval(candidate: Sequence[Items], incumbent: Sequence[Items], *,
                               confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                               seed: int = SEED) -> tuple[float, float] | None:
    """The ``confidence`` interval (0-1 scale) of score(candidate) - score(incumbent), resampling the same
    items on both sides; None where the two runs' items do not line up or are too few."""
    if not candidate or len(candidate) != len(incumbent):
        return None
    if any(len(c) != len(r) or len(c) < MIN_ITEMS or not _same_items(c, r) for c, r in zip(candidate, incumbent)):
        return None
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for mine, theirs in zip(candidate, incumbent):
        count = len(mine)
        chunk = max(1, RESAMPLE_CELLS // count)  # bounds memory on 20k-item sets
        parts = []
        for start in range(0, resamples, chunk):
            rows = rng.integers(0, count, size=(min(chunk, resamples - start), count))
            parts.append(mine.statistic(rows) - theirs.statistic(rows))
        total += np.concatenate(parts)
    total /= len(candidate)  # a task's score is the mean over its groups (subsets, splits)
    finite = total[np.isfinite(total)]
    if finite.size < resamples / 2:  # a statistic undefined on most resamples says nothing
        return None
    tail = (1 - confidence) / 2
    return float(np.quantile(finite, tail)), float(np.quantile(finite, 1 - tail))
