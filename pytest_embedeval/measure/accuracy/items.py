"""The items behind a task's score (STS pairs, retrieval queries) and the score's bootstrap interval.

A score on a few hundred pairs carries a sampling error of several points: another few hundred pairs
of the same kind would score differently. A verdict that ignores it calls that noise a regression, or
claims a precision the set does not have. Here each task's score is rebuilt from its items, taken from
the very mteb run that produced the score, and resampled over those items:

* STS: each pair's cosine (from the vectors the encoder returned for the pair's two sentences) and its
  gold score; the statistic is the correlation over pairs (Spearman for mteb's ``cosine_spearman``).
* Retrieval: each query's own value of the main measure (nDCG@10 for ``ndcg_at_10``), which mteb computes
  per query (pytrec_eval) and hands to ``AbsTaskRetrieval.task_specific_scores``; the statistic is the mean.

A task evaluated on several subsets or splits scores the mean of their scores (mteb's ``get_score``): the
bootstrap resamples each group within itself and averages the same way.

An interval is only given for a statistic that reproduced mteb's own score from these items; otherwise
(another main measure, another modality, data not in the expected shape) there is none.

A library module: nothing here imports pytest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0  # fixed: the same vectors give the same interval, run after run
MIN_ITEMS = 3  # below this a correlation over a resample is mostly undefined
BCA_MAX_ITEMS = 1000  # BCa's jackknife costs n more statistics (1.5 s at 2000 pairs); past this, percentiles
RESAMPLE_CELLS = 4_000_000  # items x resamples held at once: bounds memory on 20k-pair C-MTEB sets

# mteb's STS measures whose statistic is a correlation of cosines with the gold scores. "spearman" and
# "pearson" use the model's own similarity: equal to the cosine ones for a cosine model, and the check
# against mteb's score turns the interval off where they are not.
STS_CORRELATIONS = {"cosine_spearman": "spearman", "spearman": "spearman",
                    "cosine_pearson": "pearson", "pearson": "pearson"}
# A retrieval main score's name, and the same measure in pytrec_eval's per-query results.
RETRIEVAL_MEASURES = {"ndcg_at_": "ndcg_cut_", "map_at_": "map_cut_", "recall_at_": "recall_", "precision_at_": "P_"}
# How far a score rebuilt from the items may sit from mteb's (0-1 scale). Spearman is rebuilt from the
# same cosines in float64; mteb rounds retrieval means to 5 decimals.
STS_AGREEMENT = 1e-6
RETRIEVAL_AGREEMENT = 1e-5


# ---------------------------------------------------------------------------------------------
# Per-item values and their statistics


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r along the last axis (NaN where either side is constant)."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=-1) / np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))


class _Ranking:
    """Ranks of the values of any draw of rows, without sorting each draw.

    Spearman on a resample needs the resample's own ranks (a row drawn twice is a tie). Sorting 2000
    resamples of a 20k-pair C-MTEB set costs ~10 s; counting how often each distinct value was drawn
    and summing the counts below it costs a few hundred milliseconds, and gives the same average ranks
    as scipy.stats.rankdata (which spearmanr, and so mteb, uses).
    """

    def __init__(self, values: np.ndarray):
        distinct, self.level = np.unique(values, return_inverse=True)  # level: the value's place among distinct ones
        self.levels = len(distinct)

    def ranks(self, rows: np.ndarray) -> np.ndarray:
        draws = rows.reshape(-1, rows.shape[-1])
        level = self.level[draws]
        offsets = np.arange(len(draws))[:, None] * self.levels
        counts = np.bincount((level + offsets).ravel(), minlength=len(draws) * self.levels)
        counts = counts.reshape(len(draws), self.levels)
        # A value drawn c times above `below` smaller draws holds ranks below+1 .. below+c: their mean.
        average = np.cumsum(counts, axis=1) - counts + (counts + 1) / 2
        return np.take_along_axis(average, level, axis=1).reshape(rows.shape)


@dataclass(frozen=True, eq=False)
class PairItems:
    """One subset/split of an STS task: each pair's similarity and gold score."""

    similarity: np.ndarray
    gold: np.ndarray
    correlation: str = "spearman"  # or "pearson"
    unit = "pairs"

    def __len__(self) -> int:
        return len(self.similarity)

    @cached_property
    def _rankings(self) -> tuple[_Ranking, _Ranking]:
        return _Ranking(self.similarity), _Ranking(self.gold)

    def statistic(self, rows: np.ndarray) -> np.ndarray:
        """The correlation over the pairs ``rows`` names, along the last axis (one per resample)."""
        rows = np.asarray(rows, dtype=np.intp)
        if self.correlation == "pearson":
            return _pearson(self.similarity[rows], self.gold[rows])
        similarity, gold = self._rankings
        return _pearson(similarity.ranks(rows), gold.ranks(rows))


@dataclass(frozen=True, eq=False)
class QueryItems:
    """One subset/split of a retrieval task: each query's value of the main measure (e.g. nDCG@10)."""

    values: np.ndarray
    unit = "queries"

    def __len__(self) -> int:
        return len(self.values)

    def statistic(self, rows: np.ndarray) -> np.ndarray:
        return self.values[np.asarray(rows, dtype=np.intp)].mean(axis=-1)


Items = PairItems | QueryItems


def score(groups: Sequence[Items]) -> float:
    """The task's score (0-1) rebuilt from its items: the mean over groups of each group's statistic."""
    return float(np.mean([group.statistic(np.arange(len(group))) for group in groups]))


def bootstrap_interval(groups: Sequence[Items], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                       seed: int = SEED) -> tuple[float, float] | None:
    """The ``confidence`` interval (0-1 scale) of ``score(groups)`` from a bootstrap over the items.

    Pairs are resampled as pairs (similarity and gold score together); each group is resampled within
    itself. scipy's BCa interval, the percentile method for large sets or where BCa is undefined; None
    when a group has fewer than ``MIN_ITEMS`` items or the statistic is undefined on most resamples.
    """
    groups = list(groups)
    if not groups or any(len(group) < MIN_ITEMS for group in groups):
        return None
    if not np.isfinite(score(groups)):
        return None

    def statistic(*rows: np.ndarray, axis: int = -1) -> np.ndarray:
        # The samples are row numbers: one resample of a group picks the same rows of every column.
        return np.mean([group.statistic(np.moveaxis(r, axis, -1)) for group, r in zip(groups, rows)], axis=0)

    samples = tuple(np.arange(len(group)) for group in groups)
    largest = max(len(group) for group in groups)
    batch = max(1, min(resamples, RESAMPLE_CELLS // largest))
    method = "BCa" if sum(map(len, groups)) <= BCA_MAX_ITEMS else "percentile"
    result = None
    for attempt in dict.fromkeys((method, "percentile")):
        with warnings.catch_warnings():
            # A distribution of one value (every query perfect) or a few undefined resamples: handled below.
            warnings.simplefilter("ignore")
            result = stats.bootstrap(samples, statistic, n_resamples=resamples, batch=batch, vectorized=True,
                                     confidence_level=confidence, method=attempt, rng=np.random.default_rng(seed))
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    # Some resamples were undefined (e.g. a small STS set drew one gold score only): the percentiles of the
    # others, as long as they are nearly all of them.
    distribution = np.asarray(result.bootstrap_distribution, dtype=float)
    finite = distribution[np.isfinite(distribution)]
    if finite.size < 0.95 * distribution.size:
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high)


# ---------------------------------------------------------------------------------------------
# Taking the items from an mteb run


def _texts(inputs: Any) -> list[str] | None:
    try:
        return [text for batch in inputs for text in batch["text"]]
    except (KeyError, TypeError):  # not a text modality, or not a batch of dicts
        return None


def retrieval_measure(main_score: str) -> str | None:
    """pytrec_eval's per-query name for a retrieval main score (``ndcg_at_10`` -> ``ndcg_cut_10``)."""
    for prefix, pytrec_prefix in RETRIEVAL_MEASURES.items():
        if main_score.startswith(prefix) and main_score[len(prefix):].isdigit():
            return pytrec_prefix + main_score[len(prefix):]
    return None


class ItemCapture:
    """The items of one task, taken during one ``mteb.evaluate`` run of it. Use as a context manager
    around the run; afterwards ``groups()`` returns the items of every subset/split the run scored.

    It wraps, on these two objects only and for the run only:

    * ``task._evaluate_subset``: mteb's call that scores one subset/split; it sees that group's data.
    * ``encoder.encode`` (STS tasks): records the vector of each (prompt type, text) the encoder returned
      while a group runs. A text met again in the same group gets the vector recorded the first time,
      bit for bit: mteb encodes an STS set's two columns in two calls, and a sentence that sits in both
      would otherwise get two vectors differing in the 7th decimal, and Spearman would rank the noise.
    * ``task.task_specific_scores`` (retrieval tasks): mteb hands it each query's scores.
    """

    def __init__(self, task: Any, encoder: Any):
        self.task = task
        self.encoder = encoder
        # mteb (seconds to import) only where items are taken: the store reads item files without it.
        from mteb.abstasks.retrieval import AbsTaskRetrieval
        from mteb.abstasks.sts import AbsTaskSTS

        self.kind = ("pairs" if isinstance(task, AbsTaskSTS)
                     else "queries" if isinstance(task, AbsTaskRetrieval) else None)
        self._groups: dict[tuple[str, str], Items | None] = {}
        self._vectors: dict[tuple[Any, str], np.ndarray] | None = None  # while an STS group runs
        self._unrecorded = False
        self._query_scores: dict[str, dict[str, float]] | None = None
        self._installed: list[tuple[Any, str, bool, Any]] = []

    # -- installing the wrappers ------------------------------------------------------------------

    def __enter__(self) -> ItemCapture:
        if self.kind is None:
            return self
        try:
            self._wrap(self.task, "_evaluate_subset", self._evaluate_subset)
            if self.kind == "pairs":
                self._wrap(self.encoder, "encode", self._encode)
            else:
                self._wrap(self.task, "task_specific_scores", self._task_specific_scores)
        except (AttributeError, TypeError):  # an object that takes no attributes (__slots__): no items, same score
            self.__exit__(None, None, None)
            self.kind = None
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for owner, name, had_own, previous in reversed(self._installed):
            if had_own:
                setattr(owner, name, previous)
            else:
                delattr(owner, name)  # the class's method shows through again
        self._installed.clear()

    def _wrap(self, owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
        had_own = name in vars(owner)  # an instance attribute of its own, to put back afterwards
        previous = vars(owner).get(name)
        original = getattr(owner, name)
        setattr(owner, name, lambda *args, **kwargs: wrapper(original, *args, **kwargs))
        self._installed.append((owner, name, had_own, previous))

    # -- the wrappers ---------------------------------------------------------------------------------

    def _evaluate_subset(self, original: Callable[..., Any], model: Any, data_split: Any, *args: Any,
                         **kwargs: Any) -> Any:
        if self.kind == "pairs":
            self._vectors, self._unrecorded = {}, False
        self._query_scores = None
        try:
            scores = original(model, data_split, *args, **kwargs)
        finally:
            vectors, self._vectors = self._vectors, None
        group = (str(kwargs.get("hf_subset")), str(kwargs.get("hf_split")))
        try:
            items = self._pair_items(data_split, vectors) if self.kind == "pairs" else self._query_items()
        except (KeyError, TypeError, ValueError):  # data in another shape than mteb's STS/retrieval: no items
            items = None
        main = self.task.metadata.main_score
        agreement = STS_AGREEMENT if self.kind == "pairs" else RETRIEVAL_AGREEMENT
        if items is not None and not abs(score([items]) - float(scores[main])) <= agreement:
            items = None  # the items do not rebuild mteb's score: an interval of them would be of another figure
        self._groups[group] = items
        return scores

    def _encode(self, original: Callable[..., Any], inputs: Any, *args: Any, **kwargs: Any) -> Any:
        vectors = original(inputs, *args, **kwargs)
        memo = self._vectors
        if memo is None:
            return vectors
        texts = _texts(inputs)  # read after the call: a one-shot iterable is the encoder's to consume
        array = np.asarray(vectors)
        if texts is None or array.ndim != 2 or len(texts) != len(array):
            self._unrecorded = True
            return vectors
        prompt_type = kwargs.get("prompt_type")
        copied = False
        for row, text in enumerate(texts):
            key = (prompt_type, text)
            seen = memo.get(key)
            if seen is None:
                memo[key] = array[row].copy()  # a copy: mteb may normalise its arrays in place
            elif not np.array_equal(seen, array[row]):
                if not copied:
                    array, copied = array.copy(), True
                array[row] = seen
        return array if copied else vectors

    def _task_specific_scores(self, original: Callable[..., Any], scores: dict[str, dict[str, float]], *args: Any,
                              **kwargs: Any) -> Any:
        self._query_scores = scores
        return original(scores, *args, **kwargs)

    # -- items from what was seen -------------------------------------------------------------------

    def _pair_items(self, data_split: Any, vectors: dict[tuple[Any, str], np.ndarray] | None) -> PairItems | None:
        correlation = STS_CORRELATIONS.get(self.task.metadata.main_score)
        columns = getattr(self.task, "column_names", ("sentence1", "sentence2"))
        if correlation is None or not vectors or self._unrecorded or not all(isinstance(c, str) for c in columns):
            return None
        prompt_types = (getattr(self.task, "input1_prompt_type", None), getattr(self.task, "input2_prompt_type", None))
        sides = [np.stack([vectors[(prompt_type, text)] for text in data_split[column]])
                 for column, prompt_type in zip(columns, prompt_types)]
        # The same function mteb scores pairs with, on the same vectors: the same cosines, bit for bit.
        from sklearn.metrics.pairwise import paired_cosine_distances  # mteb's own rule for STS similarity

        similarity = 1.0 - paired_cosine_distances(*sides)
        return PairItems(np.asarray(similarity, dtype=float), np.asarray(data_split["score"], dtype=float), correlation)

    def _query_items(self) -> QueryItems | None:
        measure = retrieval_measure(self.task.metadata.main_score)
        if measure is None or not self._query_scores:
            return None
        return QueryItems(np.array([per_query[measure] for per_query in self._query_scores.values()], dtype=float))

    def groups(self) -> list[Items] | None:
        """The items of every group the run scored, or None when any group's could not be taken."""
        if not self._groups or any(items is None for items in self._groups.values()):
            return None
        return list(self._groups.values())
