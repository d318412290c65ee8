"""Host memory of a server's whole process tree."""

from __future__ import annotations

import time

import psutil

from ..serve.processes import process_tree


def tree_pss_bytes(pid: int) -> int:
    """Proportional set size summed over the tree.

    PSS, not RSS: SGLang's tokenizer, scheduler and detokenizer processes map the same torch and
    model pages; RSS counts them once per process (5.2 GB for MiniLM), PSS splits them (3.6 GB).
    """
    total = 0
    for proc in process_tree(pid):
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class PeakSampler:
    """Samples ``measure()`` in a background thread; ``peak`` is the largest value seen.

    The sampler must not take the CPU the server it watches needs. NVML answers in microseconds, but
    one PSS reading of an SGLang tree makes the kernel walk ~1.5 GB of page tables per process
    (63-71 ms of CPU here): at a fixed 0.5 s that was 12% of a core. So each sample is timed with
    ``time.thread_time()`` and the next one waits long enough to keep this thread under
    ``max_cpu_share`` of one core, never less than ``interval``.
    """

    def __init__(self, measure, interval: float = 0.5, max_cpu_share: float = 0.02):
        import threading

        self.measure, self.interval, self.max_cpu_share = measure, interval, max_cpu_share
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedeval-memory-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            cpu = time.thread_time()
            try:
                self.peak = max(self.peak, int(self.measure() or 0))
                self.samples += 1
            except Exception:  # the process may be gone between two samples
                pass
            wait = max(self.interval, (time.thread_time() - cpu) / self.max_cpu_share)
            if self._stop.wait(wait):
                return

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
