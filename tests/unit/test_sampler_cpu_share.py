"""The memory sampler keeps under its CPU share, however costly a sample."""

import time

from pytest_embedeval.measure.memory import PeakSampler


def test_the_sampler_keeps_under_its_cpu_share_however_costly_a_sample():
    def costly():  # 20 ms of CPU per sample, like a PSS reading of a big tree
        started = time.thread_time()
        while time.thread_time() - started < 0.02:
            pass
        return 1

    with PeakSampler(costly, interval=0.01, max_cpu_share=0.05) as capped:
        time.sleep(1.0)
    with PeakSampler(costly, interval=0.01, max_cpu_share=1.0) as uncapped:
        time.sleep(1.0)
    assert capped.peak == uncapped.peak == 1
    assert capped.samples <= 3  # 20 ms / 5% = one sample every 0.4 s
    assert uncapped.samples >= 3 * capped.samples
