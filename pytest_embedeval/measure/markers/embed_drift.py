"""The drift marker: the probe set's served vectors against those stored with the baselines, alone against
inside a batch; in a pair, the candidate's vectors against the incumbent's."""

from __future__ import annotations

import math

import numpy as np

from ...facts.vector_math import ShapeMismatch, is_half_precision, row_cosines
from .. import probes
from .target import Measured, Measurement, MeasurementError, Target


def embed_drift(target: Target) -> Measured:
    """Probe-set vectors against those stored with the baselines, and alone vs inside a batch.

    Tolerances are cosine distances from the recorded figure (1.0 when recorded on the same server); the
    defaults, for float32 and for half precision, are the metrics' own (``facts/metrics.py``).
    """
    texts = list(probes.PROBES)
    # One request per text, in order: a server that reuses cached prefix states shows it here.
    alone = np.asarray([target.client.embed([text])[0] for text in texts])
    batched = target.client.embed(texts)
    half = is_half_precision(target.server.dtype)
    norms = np.linalg.norm(alone, axis=1)
    figures = [Measurement("dimensions", alone.shape[1], None, "probe set"),
               Measurement("l2_norm_mean", float(norms.mean()), None,
                           f"probe set, norms {norms.min():.4f}..{norms.max():.4f}")]
    invariance = row_cosines(alone, batched, "batched", "alone")
    figures.append(Measurement("batch_invariance_min_cosine", float(invariance.min()), None,
                               "the same text alone and inside a batch; " + probes.worst(texts, invariance)))
    if target.incumbent:
        figures.append(drift_figure(target, texts, alone))
    stored = target.stored_vectors()
    if target.update:
        stored = stored or (texts, alone)  # the first recording compares with itself
    if stored is None:  # every other figure is judged all the same; this one has no baseline
        figures.append(Measurement("drift_min_cosine", math.nan, missing=(
            f"no stored probe vectors for {target.server.spec.alias}: run once with --embed-update-baselines "
            "to record them")))
        return Measured(figures)
    stored_texts, stored_vectors = stored
    if stored_texts != texts:
        raise MeasurementError("the stored probe texts differ from this version's: re-record them with "
                               "--embed-update-baselines")
    try:
        cosines = row_cosines(alone, stored_vectors, "served", "stored")
    except ShapeMismatch as exc:
        raise MeasurementError(f"drift: {exc}. If the new size is intended, re-record the probe vectors with "
                               "--embed-update-baselines") from None
    figures.append(Measurement("drift_min_cosine", float(cosines.min()), None,
                               f"{'half' if half else 'float32'} server vs stored vectors; "
                               + probes.worst(texts, cosines)))
    return Measured(figures, vectors=(texts, alone))


def drift_figure(target: Target, texts: list[str], candidate: np.ndarray) -> Measurement:
    """The worst cosine between the two servers' vectors of the same probe text."""
    incumbent = np.asarray([target.incumbent.client.embed([text])[0] for text in texts])
    cosines = row_cosines(candidate, incumbent, "candidate", "incumbent")
    return Measurement("paired_min_cosine", float(cosines.min()), None,
                       "candidate vs incumbent vectors of each probe text; " + probes.worst(texts, cosines))
