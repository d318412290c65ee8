"""The comparison with the reference: identical vectors pass, drift names the texts and how far they moved, NaN is
drift, a wrong dimension is refused, cosines ignore length, and a text near the window's limit fits it
exactly."""

import numpy as np
import pytest

from pytest_embedeval.measure.reference import _fit_to_tokens, compare_with_reference
from pytest_embedeval.facts.vector_math import ShapeMismatch, row_cosines as cosines


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_identical_vectors_pass():
    vectors = unit([[1, 2, 3], [3, 2, 1]])
    assert compare_with_reference(["a", "b"], vectors, vectors.copy(), 0.9999) is None


def test_drift_names_the_texts_and_how_far_they_moved():
    reference = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    served = unit([[1, 0, 0], [0.6, 0.8, 0], [0, 0.02, 1]])
    drift = compare_with_reference(["fine", "moved a lot", "moved a little"], served, reference, 0.9999)
    assert drift is not None
    assert drift.texts == ("moved a lot", "moved a little")
    assert drift.reason().startswith("2 of 3 texts drifted from the reference (cosine < 0.9999); worst 0.8")
    section = drift.section().splitlines()
    assert section[1].startswith("  0.800000") and "'moved a lot'" in section[1]  # worst first
    assert "'moved a little'" in section[2]


def test_nan_vectors_count_as_drift():
    reference = unit([[1, 0]])
    served = np.array([[np.nan, np.nan]], dtype=np.float32)
    assert compare_with_reference(["x"], served, reference, 0.5) is not None


def test_a_wrong_dimension_is_refused_naming_both_shapes():
    with pytest.raises(ShapeMismatch, match=r"served vectors are 2 x 2, reference vectors are 2 x 3"):
        compare_with_reference(["a", "b"], unit([[1, 0], [0, 1]]), unit([[1, 0, 0], [0, 1, 0]]), 0.9)


def test_cosines_do_not_depend_on_vector_length():
    a = np.array([[3.0, 4.0]])
    assert np.allclose(cosines(a * 10, a), [1.0])


def test_near_limit_texts_fit_the_window_exactly():
    def words(text):
        return len(text.split())

    fitted = _fit_to_tokens("one two three four five. ", words, 12)
    assert words(fitted) == 12
    assert fitted.startswith("one two three four five.")
