"""The store of accuracy items (``measure/accuracy/items.py``'s) behind a baseline.

``<baselines>/items/<model>/<engine>-<dtype>/<metric>.npz``.

Each STS pair's similarity and gold score, or each retrieval query's value, as the run that wrote the
baseline measured them. A later run resamples its items and these together, the same indices on both
sides, so its verdict weighs the change itself rather than the spread of "another set of that many items"
(which is several points wide on a few hundred pairs, and would hide every smaller regression).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import inside, locked, write_bytes_atomically


@dataclass
class ItemStore:
    directory: Path

    def path(self, model: str, name: str, metric: str) -> Path:
        file_name = re.sub(r"[^A-Za-z0-9._-]", "_", metric) + ".npz"  # "mteb:Task" -> "mteb_Task.npz"
        return inside(self.directory, Path(self.directory) / "items" / model / name / file_name, "accuracy items")

    def save(self, model: str, name: str, metric: str, groups) -> Path:
        arrays = {"kinds": np.array([group.unit for group in groups])}
        for index, group in enumerate(groups):
            if group.unit == "pairs":
                arrays[f"{index}.similarity"], arrays[f"{index}.gold"] = group.similarity, group.gold
                arrays[f"{index}.correlation"] = np.array(group.correlation)
            else:
                arrays[f"{index}.values"] = group.values
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        path = self.path(model, name, metric)
        with locked(Path(self.directory)):
            write_bytes_atomically(path, buffer.getvalue())
        return path

    def load(self, model: str, name: str, metric: str) -> list | None:
        """The stored groups (accuracy.items.PairItems / QueryItems), or None when none were stored or the
        file cannot be read (then the verdict falls back to this run's own interval)."""
        path = self.path(model, name, metric)
        if not path.exists():
            return None
        from ..measure.accuracy.items import PairItems, QueryItems

        try:
            with np.load(path, allow_pickle=False) as data:
                return [PairItems(data[f"{i}.similarity"], data[f"{i}.gold"], str(data[f"{i}.correlation"]))
                        if kind == "pairs" else QueryItems(data[f"{i}.values"])
                        for i, kind in enumerate(data["kinds"])]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
