"""The intervals of timed figures: a percentile's brackets its estimate and narrows with samples; a ratio's weighs
both runs' noise."""

import numpy as np

from pytest_embedeval.measure.stats import percentile, percentile_interval, ratio_interval


def test_percentile_interval_brackets_the_estimate_and_narrows_with_samples():
    rng = np.random.default_rng(7)
    few, many = rng.lognormal(3, 0.3, 30), rng.lognormal(3, 0.3, 3000)
    low_few, high_few = percentile_interval(few, 50)
    low_many, high_many = percentile_interval(many, 50)
    assert low_few <= np.median(few) <= high_few
    assert low_many <= np.median(many) <= high_many
    assert high_many - low_many < (high_few - low_few) / 3
    assert percentile_interval([5.0] * 10, 50) == (5.0, 5.0)


def test_the_ratio_interval_weighs_both_runs_noise():
    rng = np.random.default_rng(3)
    baseline = rng.lognormal(np.log(0.036), 0.08, 200)
    again = rng.lognormal(np.log(0.036), 0.08, 200)
    median = percentile(50)
    low, high = ratio_interval(again, baseline, median)
    assert low < 1 < high  # the same server twice: no difference beyond noise
    low, high = ratio_interval(again * 1.3, baseline, median)
    assert 1.15 < low < 1.3 < high  # a 30% slowdown lies wholly beyond a 15% tolerance
    alone = percentile_interval(again * 1000, 50)
    assert high - low > (alone[1] - alone[0]) / np.percentile(again * 1000, 50)  # wider than one run's own
