"""An inner pytest in a subprocess, as a user starts it, tagged so that every process it starts can be found."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

MARKER_ENV = "EMBEDEVAL_TEST_RUN"


def processes_of_run(marker: str) -> list[psutil.Process]:
    """Every live process started (transitively) by an inner run tagged with ``marker``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER_ENV) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


class InnerRun:
    """``pytest`` in a subprocess, as a user starts it, tagged so that its processes can be found."""

    def __init__(self, path: Path, args: list[str]):
        self.marker = uuid.uuid4().hex
        env = {**os.environ, MARKER_ENV: self.marker, "PYTHONUNBUFFERED": "1"}
        self.output_path = path / f"inner-{self.marker}.out"
        self.sessions: set[int] = set()  # server sessions seen: SGLang's renamed workers lose the env marker
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=path, env=env, stdout=open(self.output_path, "wb"), stderr=subprocess.STDOUT,
        )

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.server_started()  # notes the server's session while it is alive
            if predicate():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"inner pytest exited before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}:\n{self.output}")
            time.sleep(0.2)

    def server_started(self) -> bool:
        started = False
        for proc in processes_of_run(self.marker):
            try:
                if "sglang.launch_server" in " ".join(proc.cmdline()):
                    self.sessions.add(os.getsid(proc.pid))
                    started = True
            except (psutil.Error, ProcessLookupError):
                pass
        return started

    def interrupt(self, sig=signal.SIGINT) -> None:
        self.process.send_signal(sig)

    def finish(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        for proc in self.alive():
            try:
                proc.kill()
            except psutil.Error:
                pass

    def alive(self) -> list[psutil.Process]:
        found = processes_of_run(self.marker)
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) in self.sessions and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.Error, ProcessLookupError):
                pass
        return found

    def leftovers(self, settle: float = 10.0) -> list[str]:
        deadline = time.monotonic() + settle
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return [" ".join(p.cmdline())[:120] for p in left]
