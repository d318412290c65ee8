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


def stop_tree(tree: list[psutil.Process], grace: float) -> None:
    """SIGTERM to every process of ``tree``, SIGKILL to whatever outlives ``grace``; every wait bounded (a process
    stuck in the kernel must not hang pytest)."""
    for proc in tree:
        try:
            proc.terminate()
        except psutil.Error:  # gone, or not ours to signal: teardown goes on with the rest
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
