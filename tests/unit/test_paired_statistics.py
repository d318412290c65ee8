"""Paired verdicts' statistics: a candidate and its incumbent measured in the same minutes tell a change that shared
noise hides from a stored baseline, their own tolerance judges the ratios, and accuracy is judged on the same
items resampled together."""

import numpy as np
import pytest

from pytest_embedeval.measure.accuracy.items import PairItems, bootstrap_interval, score
from pytest_embedeval.measure.accuracy.paired import paired_difference_interval
from pytest_embedeval.measure.stats import STATISTICS, paired_ratio, ratio_interval

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- the statistic ---------------------------------------------------------------------------------

def windows(rng, pairs: int, slowdown: float) -> tuple[list, list]:
    """Per-window medians of two servers whose minutes are shared: a common factor moves both sides."""
    minute = rng.lognormal(0, 0.4, pairs)  # a busy neighbour: windows 0.5x to 2x slower, for both servers
    incumbent = 30 * minute * rng.lognormal(0, 0.02, pairs)
    candidate = 30 * slowdown * minute * rng.lognormal(0, 0.02, pairs)
    return candidate.tolist(), incumbent.tolist()


def test_a_10_percent_slowdown_stands_out_of_shared_noise_that_swamps_a_stored_baseline():
    rng = np.random.default_rng(1)
    candidate, incumbent = windows(rng, 16, 1.10)
    ratio, (low, high) = paired_ratio(candidate, incumbent)
    assert 1.07 < low < ratio < high < 1.13  # beyond a 5% band: a regression
    # The same windows against a figure stored on a quiet day: the noise is 4x the slowdown.
    stored = 30.0
    assert np.ptp(np.asarray(candidate) / stored) > 0.4
    clean, clean_incumbent = windows(rng, 16, 1.0)
    ratio, (low, high) = paired_ratio(clean, clean_incumbent)
    assert low < 1.0 < high and high < 1.05  # no difference: inside the band


def requests(rng, count: int, slowdown: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-request latencies of two servers asked back to back: the moment's load moves both of a pair."""
    moment = rng.lognormal(0, 0.3, count)  # a neighbour's bursts, shared by the two requests of a pair
    incumbent = 50 * moment * rng.lognormal(0, 0.05, count)
    candidate = 50 * slowdown * moment * rng.lognormal(0, 0.05, count)
    return candidate, incumbent


def test_request_pairs_resampled_together_tell_a_10_percent_slowdown_that_unpaired_resampling_hides():
    rng = np.random.default_rng(0)
    p50 = STATISTICS["p50"]
    candidate, incumbent = requests(rng, 320, 1.10)
    ratio, (low, high) = paired_ratio(candidate, incumbent, center=np.median)
    assert 1.08 < low < ratio < high < 1.12  # the median pair: wholly beyond a 3% band
    low, high = ratio_interval(candidate, incumbent, p50)  # the two medians, the pairs forgotten
    assert low < 1.05 and high - low > 0.08  # the shared bursts count as noise: the slowdown is lost in it
    clean, clean_incumbent = requests(rng, 320, 1.0)
    ratio, (low, high) = paired_ratio(clean, clean_incumbent, center=np.median)
    assert 0.97 < low < high < 1.03  # no difference: wholly inside a 3% band


def test_a_pair_counts_a_change_past_the_tolerance_that_its_interval_tells_from_none():
    from pytest_embedeval.judge.rules import compare
    from pytest_embedeval.facts.metrics import Tolerance, metric
    from pytest_embedeval.judge.verdicts import Outcome

    paired = metric("paired_latency_p50_ratio")
    # 6% slower, and the interval excludes 1: the pair measured both in the same moments, so this is the change.
    assert compare(paired, 1.06, None, interval=(1.02, 1.10))[0] is Outcome.REGRESSED
    assert compare(paired, 1.06, None, interval=(0.99, 1.13))[0] is Outcome.PASSED  # might be no change
    assert compare(paired, 1.03, None, interval=(1.01, 1.05))[0] is Outcome.PASSED  # real, but within 5%
    assert compare(paired, 0.93, None, interval=(0.90, 0.97))[0] is Outcome.IMPROVED
    accuracy = metric("paired:mteb:STSBenchmark")  # higher is better, 0.25 points
    assert compare(accuracy, -0.59, None, interval=(-1.33, -0.07))[0] is Outcome.REGRESSED
    # An interval 1.4 points wide cannot tell a quarter point from none: no evidence either way.
    assert compare(accuracy, -0.59, None, interval=(-1.33, 0.10))[0] is Outcome.INCONCLUSIVE
    # The same 6% against a stored baseline: another day's noise is in no interval, the whole of it must be past.
    stored = metric("latency_p50_ms")
    five = Tolerance.parse("5%")
    assert compare(stored, 106.0, 100.0, five, interval=(102.0, 110.0))[0] is Outcome.PASSED
    assert compare(stored, 108.0, 100.0, five, interval=(106.0, 110.0))[0] is Outcome.REGRESSED


def test_paired_tolerance_judges_the_ratios_and_tolerance_the_stored_figures(tmp_path):
    from pytest_embedeval.facts.hardware import HardwareProfile
    from pytest_embedeval.measure.markers.embed_latency import latency_figures
    from pytest_embedeval.run.record import ModelRun
    from pytest_embedeval.run.session import Policy, RunSession
    from pytest_embedeval.store import Store
    from pytest_embedeval.judge.verdicts import Outcome

    rng = np.random.default_rng(3)
    incumbent = rng.lognormal(np.log(0.06), 0.2, 200)
    candidate = incumbent * 1.05 * rng.normal(1, 0.01, 200)  # 5% slower, request by request
    session = RunSession(Store(tmp_path), Policy(), progress=lambda line: None)
    model_run = session.open_model(ModelRun("m", HardwareProfile("cpu-2c-x", "sglang", "float32"), "", ""))

    def p50(paired_tolerance):
        figure = latency_figures(list(candidate), list(incumbent), "test", "batch 1 x 128 tokens")[0]
        # The marker's tolerance (here 15%, for the stored figures) reaches the judge with every figure.
        return session.judge(model_run, figure, tolerance="15%", paired_tolerance=paired_tolerance)

    three = p50("3%")
    assert (three.tolerance, three.outcome) == ("3%", Outcome.REGRESSED)
    # Unset, the ratios keep their own 5%: the marker's 15% is for the stored figures alone.
    assert p50(None).tolerance == "5%" and p50("15%").outcome is Outcome.PASSED


def test_equal_windows_give_a_ratio_of_one_with_no_spread():
    assert paired_ratio([20.0, 30.0], [20.0, 30.0]) == (1.0, (1.0, 1.0))


def test_a_drop_the_single_scores_cannot_tell_is_told_by_the_same_items_resampled_together():
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 300)
    incumbent = gold / 5 + rng.normal(0, 0.25, 300)  # cosines that follow the gold scores, noisily
    candidate = incumbent.copy()
    cut = gold > 3.5  # the most similar pairs lose a third of their contrast (long inputs cut short)
    candidate[cut] = 0.7 * incumbent[cut] + 0.3 * incumbent.mean()
    mine, theirs = [PairItems(candidate, gold)], [PairItems(incumbent, gold)]
    low, high = bootstrap_interval(mine)
    assert low < score(theirs) < high  # alone, the candidate's interval still holds the incumbent's score
    low, high = paired_difference_interval(mine, theirs)
    assert -0.05 < low < high < -0.01  # together: about 3 points, wholly below a quarter point (0-1 scale)
    assert paired_difference_interval(theirs, theirs) == (0.0, 0.0)
    assert paired_difference_interval(mine, [PairItems(incumbent[:-1], gold[:-1])]) is None  # items must line up


# -- accuracy against the stored items of the baseline run -------------------------------------------

def test_an_accuracy_baseline_keeps_its_items_and_a_later_run_is_judged_on_the_same_items(tmp_path, monkeypatch):
    from pytest_embedeval.measure import markers
    from pytest_embedeval.facts.hardware import HardwareProfile
    from pytest_embedeval.run.record import ModelRun
    from pytest_embedeval.run.session import Policy, RunSession
    from pytest_embedeval.store import Store
    from pytest_embedeval.judge.verdicts import Outcome

    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 300)
    healthy = gold / 5 + rng.normal(0, 0.25, 300)
    worse = healthy.copy()
    worse[gold > 3.5] = 0.7 * healthy[gold > 3.5] + 0.3 * healthy.mean()  # about 3 points lost, consistently

    def run(similarity, update=False):
        items = (PairItems(similarity, gold),)
        own = tuple(100 * x for x in bootstrap_interval(items))
        # Stands in for the real marker: what it hands the session is what is under test.
        monkeypatch.setitem(markers.MARKERS, "embed_accuracy", lambda target, **arguments: markers.Measured(
            [markers.Measurement("data:ours", 100 * score(items), own, "ours; 300 pairs", items=items)]))
        session = RunSession(Store(tmp_path), Policy(update=update), progress=lambda line: None)
        model_run = session.open_model(ModelRun("m", HardwareProfile("cpu-2c-x", "sglang", "float32"), "", ""))
        (verdict,) = session.measure(model_run, "embed_accuracy", markers.Target(None, None), {})
        session.finish()
        return verdict

    run(healthy, update=True)
    assert (tmp_path / "items" / "m" / "sglang-float32" / "data_ours.npz").exists()
    same = run(healthy)
    assert same.outcome is Outcome.PASSED and same.interval[0] == same.interval[1] == same.baseline
    dropped = run(worse)
    assert dropped.outcome is Outcome.REGRESSED and "the same items resampled together" in dropped.note
    # Alone, its own interval (another 300 pairs of the kind) would have reached back over the baseline.
    low, high = bootstrap_interval((PairItems(worse, gold),))
    assert 100 * high > dropped.baseline
