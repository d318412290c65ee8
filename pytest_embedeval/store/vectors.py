"""The store of probe vectors (``measure/probes.py``'s texts, as served) beside the baselines.

``<baselines>/vectors/<model>/<profile>.npz``.

float16 on disk: 2 bytes a dimension, and float16 rounding (~1e-3 relative) costs far less than the
drift check's 0.999 cosine tolerance.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import inside, locked, write_bytes_atomically


class VectorFileError(ValueError):
    """A stored vectors file that cannot be read: names the file and what to do."""


@dataclass
class VectorStore:
    """``<baselines>/vectors/<model>/<profile>.npz``: the probe texts and their vectors."""

    directory: Path

    def path(self, model: str, profile: str) -> Path:
        return inside(self.directory, Path(self.directory) / "vectors" / model / f"{profile}.npz", "probe vectors")

    def load(self, model: str, profile: str) -> tuple[list[str], np.ndarray] | None:
        path = self.path(model, profile)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return [str(t) for t in data["texts"]], data["vectors"].astype(np.float32)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise VectorFileError(f"{path}: not a probe-vectors file with 'texts' and 'vectors' ({exc}); restore "
                                  "it from version control or re-record it with --embed-update-baselines") from None

    def save(self, model: str, profile: str, texts: list[str], vectors: np.ndarray) -> Path:
        path = self.path(model, profile)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, texts=np.array(texts), vectors=np.asarray(vectors).astype(np.float16))
        with locked(Path(self.directory)):
            write_bytes_atomically(path, buffer.getvalue())
        return path
