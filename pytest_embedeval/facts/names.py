"""Names that become parts of file names.

An alias, a hardware key, an engine name or the dtype a remote server reports all end up in paths under
``baselines/``. A ``/`` or ``..`` in any of them would write outside the store, so every such name is checked
where it is read, before it reaches a path.
"""
from __future__ import annotations

import re

ALLOWED = "letters, digits, '.', '_' and '-'"
_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def safe_name(value: str, what: str) -> str:
    """Return ``value`` if it can be a file name inside the store, else raise ValueError naming ``what``.

    ``what`` says where the value came from (e.g. "model alias in baselines/models.toml" or "--embed-hardware"),
    so the message tells the user which input to change.
    """
    if not isinstance(value, str) or not _SAFE.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"The {what} {value!r} cannot be used: it becomes part of a file name, so it may contain only "
            f"{ALLOWED} (and may not be '.' or '..'). Choose a name made of those characters."
        )
    return value
