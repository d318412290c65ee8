"""Ends a server's processes when the pytest that started it dies without cleaning up (kill -9, OOM killer).

    python -m pytest_embedeval.serve.watchdog PARENT_PID SERVER_PID [--remove FILE] [--mask LOG]

Started by SGLangServer next to the server, in a session of its own (Ctrl-C in the terminal does not reach
it; pytest's own teardown stops the server and then this process). It polls its parent: once the parent is
gone (the watchdog was re-parented), it removes FILE (the server's key file), masks the key in LOG (read from
its stdin, never from its argv: SGLang logs the key when it starts), sends SIGTERM to every process
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


CHUNK = 1 << 20


def mask_file(path, secret: str | None) -> None:
    """Overwrite every copy of ``secret`` in the file with stars of the same length, in place.

    In place, at the same offsets: SGLang is still appending to this log through its own descriptor,
    and rewriting the file would move or truncate what it writes next. SGLang logs its server_args,
    the key included, when it starts.
    """
    if not secret:
        return
    forms = {secret.encode(), repr(secret)[1:-1].encode()}  # as written, and inside a Python repr
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    overlap = max(len(form) for form in forms) - 1  # a copy that straddles two chunks is found in the second
    try:
        offset, carried = 0, b""  # carried: the previous chunk's last ``overlap`` bytes, starting at offset
        while chunk := os.pread(fd, CHUNK, offset + len(carried)):
            window = carried + chunk  # one chunk at a time: a log of gigabytes is masked in constant memory
            for form in forms:
                start = window.find(form)
                while start != -1:
                    os.pwrite(fd, b"*" * len(form), offset + start)
                    start = window.find(form, start + len(form))
            keep = min(overlap, len(window))
            offset, carried = offset + len(window) - keep, window[len(window) - keep:] if keep else b""
    finally:
        os.close(fd)


def start_watchdog(session: int, env: dict, secret: str | None = None, *, remove=None, mask=None):
    """Start the watchdog of the process whose session is ``session`` (started with ``start_new_session``);
    the caller kills it after its own teardown. With ``secret``: on pytest's death it also removes the file
    ``remove`` and masks the secret in the log ``mask``; the secret goes through a pipe, never argv."""
    import subprocess

    options = ["--remove", str(remove), "--mask", str(mask)] if secret else []
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "pytest_embedeval.serve.watchdog", str(os.getpid()), str(session), *options],
        stdin=subprocess.PIPE if secret else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True,  # Ctrl-C is pytest's to handle; the watchdog outlives only a kill
    )
    if secret:
        watchdog.stdin.write(secret.encode() + b"\n")
        watchdog.stdin.close()
    return watchdog


def main(argv: list[str]) -> int:
    parent, session = int(argv[0]), int(argv[1])
    options = dict(zip(argv[2::2], argv[3::2]))
    secret = sys.stdin.readline().rstrip("\n") if "--mask" in options else ""
    # Terminal signals are pytest's to handle: its teardown stops the server, then this watchdog.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    if "--remove" in options:
        try:
            os.unlink(options["--remove"])
        except OSError:
            pass
    end_session(session)
    if secret:
        mask_file(options["--mask"], secret)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
