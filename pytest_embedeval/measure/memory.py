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
