"""A score's sampling error, a bootstrap over the items that scored it: it covers the population score about 95
times in 100 and narrows with more items, the captured items rebuild mteb's own score, and a score says when its
set is too small to tell one point."""

import sys

import numpy as np
import pytest
from scipy import stats

from pytest_embedeval.measure.accuracy import (
    ItemCapture, PairItems, QueryItems, ServerEncoder, TaskScore, bootstrap_interval, evaluate, shipped_tasks,
    tasks_from_path,
)
from pytest_embedeval.measure.accuracy.items import score as items_score
from pytest_embedeval.measure.accuracy.tasks import shipped_data_dir

from support.clients import RecordingClient
from support.task_data import judged_queries, non_blank_lines

# The module, not the function the package exports under the same name.
evaluate_module = sys.modules["pytest_embedeval.measure.accuracy.runner"]


def synthetic_pairs(n, seed, noise=0.75):
    """n STS pairs from a population whose Spearman correlation is known: gold scores and pair
    vectors (32 dims) whose cosine follows the same latent similarity, each with its own noise."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    gold = latent + noise * rng.normal(size=n)
    cosine = 1 / (1 + np.exp(-(latent + noise * rng.normal(size=n))))  # monotone: ranks are the latent's
    first = rng.normal(size=(n, 32))
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    other = rng.normal(size=(n, 32))
    other -= (other * first).sum(axis=1, keepdims=True) * first
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    second = cosine[:, None] * first + np.sqrt(1 - cosine[:, None] ** 2) * other
    similarity = (first * second).sum(axis=1) / np.linalg.norm(second, axis=1)
    pearson = 1 / (1 + noise ** 2)  # of the two noisy copies of the latent
    population_spearman = 6 / np.pi * np.arcsin(pearson / 2)  # for a bivariate normal
    return PairItems(similarity, gold), population_spearman


def test_resampled_ranks_are_scipys_average_ranks():
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 6, 60).astype(float)  # gold scores tie a lot
    similarity = rng.normal(size=60)
    similarity[5] = similarity[9]
    items = PairItems(similarity, gold)
    draws = rng.integers(0, 60, size=(20, 60))  # resamples repeat pairs: more ties
    expected = [stats.spearmanr(similarity[d], gold[d])[0] for d in draws]
    np.testing.assert_allclose(items.statistic(draws), expected, rtol=0, atol=1e-12)
    assert items_score([items]) == pytest.approx(stats.spearmanr(similarity, gold)[0], abs=1e-12)


def test_the_interval_covers_the_population_score_about_95_times_in_100():
    covered, half_widths = 0, []
    for seed in range(60):
        items, population = synthetic_pairs(150, seed)
        low, high = bootstrap_interval([items])
        covered += low <= population <= high
        half_widths.append((high - low) / 2)
    assert covered >= 52, covered  # 95% of 60 is 57; an interval that ignores the pairing covers far less
    assert np.mean(half_widths) < 0.15  # and it is not simply wide: ~0.11 for 150 pairs at rho 0.62


def test_the_interval_narrows_with_the_square_root_of_the_items():
    width = {}
    for n in (200, 800):
        low, high = bootstrap_interval([synthetic_pairs(n, seed=1)[0]])
        width[n] = high - low
    assert 0.35 < width[800] / width[200] < 0.7, width  # 1/sqrt(4) = 0.5


def test_the_same_items_give_the_same_interval():
    items, _ = synthetic_pairs(300, seed=3)
    assert bootstrap_interval([items]) == bootstrap_interval([items])


def test_each_group_is_resampled_within_itself():
    # A task on two subsets scores the mean of their scores; resampled apart, every resample of
    # "all perfect" and "all missed" averages exactly 0.5. Pooled, the mean would wander.
    groups = [QueryItems(np.ones(30)), QueryItems(np.zeros(30))]
    assert items_score(groups) == 0.5
    assert bootstrap_interval(groups) == (0.5, 0.5)


def test_too_few_items_give_no_interval():
    assert bootstrap_interval([QueryItems(np.array([1.0, 0.0]))]) is None
    assert bootstrap_interval([]) is None


@pytest.mark.parametrize(("interval", "items", "too_small"), [
    ((70.0, 74.0), 300, True),      # +-2 points
    ((71.6, 72.4), 5000, False),    # +-0.4
    (None, 2, True),                # too few items to resample
    ((100.0, 100.0), 12, True),     # every resample perfect, but 12 pairs cannot vouch for 1%
    ((100.0, 100.0), 400, False),   # rule of three: 3/400 < 1%
    (None, None, False),            # nothing known
])
def test_a_score_says_when_its_set_is_too_small_for_one_point(interval, items, too_small):
    task_score = TaskScore("data:x", "x", "cosine_spearman", 72.0, 1.0, 10, interval=interval, items=items,
                           item_unit="pairs")
    assert task_score.too_small_for_one_point is too_small


# ---------------------------------------------------------------------------------------------
# The items come from the run that scored


def test_every_shipped_task_gets_an_interval_over_all_its_items():
    scores = evaluate(ServerEncoder(RecordingClient()), shipped_tasks())
    data = shipped_data_dir()
    expected = [non_blank_lines(data / "sts" / f"{code}.jsonl") for code in ("en", "zh")]
    expected += [judged_queries(data / "retrieval" / code) for code in ("en", "zh")]
    assert [s.items for s in scores] == expected
    assert [s.item_unit for s in scores] == ["pairs", "pairs", "queries", "queries"]
    for task_score in scores:
        low, high = task_score.interval
        assert low <= task_score.value <= high, task_score


def test_the_items_rebuild_mtebs_own_score_of_the_shipped_sts_tasks():
    encoder = ServerEncoder(RecordingClient())
    for task in shipped_tasks()[:2]:
        with ItemCapture(task, encoder) as capture:
            result = evaluate_module._run_one(encoder, task)
        groups = capture.groups()
        assert [len(g) for g in groups] == [non_blank_lines(task.source)]
        # Same vectors, same cosines: the Spearman over pairs is mteb's main score.
        assert items_score(groups) == pytest.approx(result.task_results[0].get_score(), abs=1e-6)


def test_the_capture_leaves_task_and_encoder_as_they_were(sts_file, beir_folder):
    encoder = ServerEncoder(RecordingClient())
    tasks = tasks_from_path(sts_file) + tasks_from_path(beir_folder)
    evaluate(encoder, tasks)
    assert "encode" not in vars(encoder)
    for task in tasks:
        assert not {"_evaluate_subset", "task_specific_scores"} & set(vars(task))
    # An encode of the instance's own (a user's patch) is put back, not dropped.
    own_encode = encoder.encode
    encoder.encode = own_encode
    evaluate(encoder, tasks_from_path(sts_file))
    assert vars(encoder)["encode"] is own_encode


def test_a_main_score_the_items_cannot_rebuild_gets_no_interval(sts_file):
    (task,) = tasks_from_path(sts_file)
    task.metadata = task.metadata.model_copy(update={"main_score": "euclidean_spearman"})
    (task_score,) = evaluate(ServerEncoder(RecordingClient()), [task])
    assert task_score.main_score == "euclidean_spearman"
    assert (task_score.interval, task_score.items, task_score.too_small_for_one_point) == (None, None, False)
