"""Host memory of a server's whole process tree."""

from __future__ import annotations

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


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

    Half a second apart: a sample of a big tree's PSS reads /proc/*/smaps_rollup, which costs a
    few milliseconds, so this stays well under 1% of a core.
    """

    def __init__(self, measure, interval: float = 0.5):
        import threading

        self.measure, self.interval = measure, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedeval-memory-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, int(self.measure() or 0))
            except Exception:  # the process may be gone between two samples
                pass
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
