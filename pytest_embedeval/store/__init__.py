"""Layer 4, the store: one directory (``baselines/``) reviewed in pull requests; it stores, the judge reads.

    baselines/<model>.toml                      figures, tolerances and provenance (baselines.py)
    baselines/vectors/<model>/<engine>-<dtype>.npz  probe vectors for the drift check (vectors.py)
    baselines/timings/<model>/<profile>.json    per-request samples, pytest-benchmark's format (timings.py)
    baselines/items/<model>/<engine>-<dtype>/   per-item values behind accuracy figures (items.py)

Every write goes through ``files``: one writer at a time, atomic renames, nothing outside the directory.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .baselines import BaselineError, BaselineStore, Change, ModelBaselines, profile_name, vectors_name
from .items import ItemStore
from .timings import TimingStore
from .vectors import VectorFileError, VectorStore


class Store:
    """The three kinds of file of one baseline directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.baselines = BaselineStore(self.directory)  # validated now: a broken file stops a run before a boot

    @cached_property
    def vectors(self) -> VectorStore:
        return VectorStore(self.directory)

    @cached_property
    def timings(self) -> TimingStore:
        return TimingStore(self.directory)

    @cached_property
    def items(self) -> ItemStore:
        return ItemStore(self.directory)


__all__ = ["BaselineError", "BaselineStore", "Change", "ItemStore", "ModelBaselines", "Store", "TimingStore", "VectorFileError",
           "VectorStore", "profile_name", "vectors_name"]
