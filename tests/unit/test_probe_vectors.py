"""Probe vectors: stored as float16 at no cost to the tolerance, the texts that moved most named, and probes that
share prefixes, so that a prefix cache shows."""

import numpy as np

from pytest_embedeval.measure.probes import PROBES, worst
from pytest_embedeval.store.vectors import VectorStore
from pytest_embedeval.facts.vector_math import row_cosines


def test_vectors_round_trip_as_float16(tmp_path):
    store = VectorStore(tmp_path)
    vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    path = store.save("m", "cpu-2c-sglang-float32", ["a", "b", "c"], vectors)
    assert path == tmp_path / "vectors" / "m" / "cpu-2c-sglang-float32.npz"
    texts, loaded = store.load("m", "cpu-2c-sglang-float32")
    assert texts == ["a", "b", "c"] and loaded.dtype == np.float32
    assert row_cosines(loaded, vectors).min() > 0.99999  # float16 costs far less than the tolerance
    assert store.load("m", "other-profile") is None


def test_worst_names_the_texts_that_moved_most():
    cosines = np.array([0.9999, 0.45, 0.98])
    assert worst(["same", "moved", "a bit"], cosines, count=2) == "worst: 0.450000 'moved'; 0.980000 'a bit'"


def test_probes_share_prefixes_so_a_prefix_cache_shows():
    assert any(b.startswith(a[:-1]) for a in PROBES for b in PROBES if a != b)
