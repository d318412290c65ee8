"""Ends a server's processes when the pytest that started it dies without cleaning up (kill -9, OOM killer).

    python -m pytest_embedeval.engines.watchdog PARENT_PID SERVER_PID [FILE ...]

Started by SGLangServer next to the server, in a session of its own (Ctrl-C in the terminal does not reach
it; pytest's own teardown stops the server and then this process). It polls its parent: once the parent is
gone (the watchdog was re-parented), it removes FILEs (the server's key file), sends SIGTERM to every process
of the server's session and process group (both equal SERVER_PID: the server was started with a new
session), and SIGKILL to whatever is left after a grace. Why not only PR_SET_PDEATHSIG: it reaches the
server's direct child only, and SGLang's detokenizer and multiprocessing's resource tracker outlive it.

Imports nothing heavy (it must start in milliseconds) and never touches processes outside that session.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL_SECONDS = 0.25
GRACE_SECONDS = 3.0


def session_members(session: int) -> list[int]:
    """PIDs whose session or process group is ``session`` (SGLang's workers keep both)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.getsid(pid) == session or os.getpgid(pid) == session:
                members.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return [pid for pid in members if pid != os.getpid() and not _is_zombie(pid)]


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone


def end_session(session: int, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to the session's processes (SGLang shuts down in order), SIGKILL after ``grace``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(session, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in session_members(session):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while session_members(session) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not session_members(session):
            return


def main(argv: list[str]) -> int:
    parent, session, files = int(argv[0]), int(argv[1]), argv[2:]
    # Terminal signals are pytest's to handle: its teardown stops the server, then this watchdog.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    for path in files:
        try:
            os.unlink(path)
        except OSError:
            pass
    end_session(session)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
