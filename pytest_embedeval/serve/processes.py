"""A process and everything it started: how a server's tree is found, to stop it and to measure it."""

from __future__ import annotations

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants (SGLang's tokenizer, scheduler, detokenizer...); [] once it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
