"""Every process of the servers an inner run started, found by their sessions (each server has one of its own)."""

import os
import threading
import time
from collections.abc import Callable, Iterable

import psutil

from .inner_run import InnerRun, processes_of_run


def processes_in_sessions(sessions: set[int]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in sessions and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            pass
    return found


class SessionWatch:
    """Every process of the SGLang servers started under it, sampled while they run.

    SGLang renames its scheduler and detokenizer (setproctitle), which overwrites their environment,
    so conftest's marker is gone from them and processes_of_run cannot see them. The launcher starts
    each server in a session of its own, which all its processes keep: sessions find them all.
    """

    def __init__(self, roots: Callable[[], Iterable[int]], interval: float = 1.0):
        self._roots = roots
        self._interval = interval
        self.sessions: set[int] = set()
        self.seen: dict[int, set[str]] = {}  # pid -> every command line a server process showed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SessionWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def sample(self) -> None:
        own = os.getsid(0)  # the inner pytest runs in ours: the servers (and their watchdogs) in their own
        for pid in self._roots():
            try:
                session = os.getsid(pid)
                if "pytest_embedeval.serve.watchdog" in " ".join(psutil.Process(pid).cmdline()):
                    continue  # a server's watchdog: its own session, and not a server's
            except (OSError, psutil.Error):
                continue
            if session != own:
                self.sessions.add(session)
        for proc in processes_in_sessions(self.sessions):
            try:
                cmdline = " ".join(proc.cmdline())[:120]
            except psutil.Error:
                continue
            # Kept, not overwritten: a process on its way out reads as an empty command line, and the
            # last sample of a killed server would erase the renamed scheduler it showed while it served.
            self.seen.setdefault(proc.pid, set()).add(cmdline)

    def saw(self, text: str) -> bool:
        return any(text in cmdline for cmdlines in self.seen.values() for cmdline in cmdlines)

    def leftovers(self, settle: float = 10.0) -> list[str]:
        deadline = time.monotonic() + settle
        while (left := processes_in_sessions(self.sessions)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return [" ".join(p.cmdline())[:120] for p in left]


def of_run(run: InnerRun) -> Callable[[], list[int]]:
    return lambda: [proc.pid for proc in processes_of_run(run.marker)]


