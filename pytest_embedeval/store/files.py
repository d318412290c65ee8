"""The one writing rule of the store: one writer at a time, and readers see the old file or the new one."""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


LOCK_FILE = ".embedeval.lock"  # in the baselines directory; git ignores it


@contextmanager
def locked(directory: Path):
    """One writer at a time (pytest-xdist workers, parallel jobs): flock on ``.embedeval.lock`` in it.

    A file opened for writing, not the directory: NFS (home directories on shared runners) locks only
    files opened read-write, and refuses a lock on a directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write beside the file, fsync, rename: a crash leaves the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a reviewed file is not
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files a SIGKILLed writer left beside ``path``; call under the lock."""
    for stale in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
        stale.unlink(missing_ok=True)


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` if it resolves inside ``root``; a name that would climb out of the store is refused."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise ValueError(f"{what} would be written to {resolved}, outside the baseline directory {root}: "
                         "names that become file names may hold only letters, digits, '.', '_' and '-'")
    return path
