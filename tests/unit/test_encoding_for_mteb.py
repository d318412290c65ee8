"""The encoder between mteb and the server: batches go out in parallel and come back in input order, every
evaluation encodes anew, progress is told before each task, and a repeated text is sent once, so that float noise
never decides a score."""

import sys
import zlib

import numpy as np
import pytest

from pytest_embedeval.measure.accuracy import ServerEncoder, evaluate, tasks_from_path

from support.clients import RecordingClient
from support.task_data import PAIRS, write_jsonl


# The module, not the function the package exports under the same name.
evaluate_module = sys.modules["pytest_embedeval.measure.accuracy.runner"]


def test_vectors_come_back_in_input_order_with_requests_in_parallel():
    client = RecordingClient(delay=0.01)
    encoder = ServerEncoder(client, batch_size=3, concurrency=4, dimensions=16)
    texts = [f"sentence number {i}" for i in range(50)]

    vectors = encoder.embed(texts)

    assert client.max_in_flight > 1
    assert set(client.dimensions_asked) == {16}  # `dimensions` reaches every request
    expected = np.stack([client.embed([t])[0] for t in texts])
    np.testing.assert_array_equal(vectors, expected)
    assert (encoder.texts_encoded, encoder.requests_sent) == (50, 17)
    assert encoder.encode_seconds > 0


def test_every_evaluation_encodes_no_cached_score_is_returned(sts_file, tmp_path, monkeypatch):
    monkeypatch.setenv("MTEB_CACHE", str(tmp_path / "mteb-cache"))
    encoder = ServerEncoder(RecordingClient())
    first = evaluate(encoder, tasks_from_path(sts_file))
    second = evaluate(encoder, tasks_from_path(sts_file))
    assert first[0].texts_encoded == second[0].texts_encoded == 2 * len(PAIRS)
    assert first[0].value == second[0].value
    assert first[0].metric == "data:pairs"


def test_progress_is_reported_before_each_task(sts_file, beir_folder):
    seen = []
    evaluate(ServerEncoder(RecordingClient()), tasks_from_path(sts_file) + tasks_from_path(beir_folder),
             progress=lambda name, index, total: seen.append((name, index, total)))
    assert seen == [("pairs", 1, 2), ("faq", 2, 2)]


# ---------------------------------------------------------------------------------------------
# Repeated texts: float noise never decides a score


def base_vector(text, dimensions=16):
    return np.random.default_rng(zlib.crc32(text.encode())).normal(size=dimensions)


class JitterClient:
    """A server's float noise: a text's vector moves by ~1e-7 (relative) with its place in the request,
    as SGLang's do (3e-8 seen for MiniLM). ``seed`` stands for one run on the server."""

    model = "jitter"

    def __init__(self, seed, scale=1e-6):
        self.seed, self.scale = seed, scale

    def embed(self, texts, dimensions=None):
        noise = [np.random.default_rng((self.seed, place)).normal(size=16) for place in range(len(texts))]
        return np.stack([base_vector(t) + self.scale * n for t, n in zip(texts, noise)]).astype(np.float32)


class EncoderWithoutDeduplication(ServerEncoder):
    """What ServerEncoder did before: every copy of a text is sent and gets its own vector."""

    def embed(self, texts):
        texts = list(texts)
        return np.concatenate([self.embed_batch(texts[i:i + self.batch_size])
                               for i in range(0, len(texts), self.batch_size)]).astype(np.float32)


@pytest.fixture
def repeated_pairs_file(tmp_path):
    # Every pair twice, and the first pair mirrored: the mirror's sentences sit in the other column,
    # which mteb encodes in a call of its own.
    mirrored = [(PAIRS[0][1], PAIRS[0][0], PAIRS[0][2])]
    records = [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in PAIRS * 2 + mirrored]
    return write_jsonl(tmp_path / "repeated.jsonl", records)


def test_a_repeated_text_is_sent_once_and_every_copy_gets_the_same_vector():
    client = RecordingClient()
    encoder = ServerEncoder(client, batch_size=2)
    vectors = encoder.embed(["a", "b", "a", "c", "b", "a"])
    assert client.sent == ["a", "b", "c"]
    assert (encoder.texts_encoded, encoder.requests_sent) == (3, 2)  # distinct texts sent, requests
    np.testing.assert_array_equal(vectors[[0, 2, 5]], np.stack([vectors[0]] * 3))
    np.testing.assert_array_equal(vectors[[1, 4]], np.stack([vectors[1]] * 2))
    np.testing.assert_array_equal(vectors, np.stack([client.embed([t])[0] for t in "abacba"]))


def test_a_file_that_repeats_pairs_scores_the_same_whatever_the_float_noise(repeated_pairs_file):
    (clean,) = evaluate(ServerEncoder(JitterClient(seed=0, scale=0.0)), tasks_from_path(repeated_pairs_file))
    for seed, batch_size in [(1, 32), (2, 7), (3, 3), (4, 1)]:
        encoder = ServerEncoder(JitterClient(seed), batch_size=batch_size)
        (noisy,) = evaluate(encoder, tasks_from_path(repeated_pairs_file))
        assert (noisy.value, noisy.interval) == (clean.value, clean.interval), (seed, batch_size)
    assert clean.items == 2 * len(PAIRS) + 1


def test_without_deduplication_the_same_noise_moves_the_score(repeated_pairs_file):
    # The premise of the test above: this noise does reach a score when copies get vectors of their own.
    (task,) = tasks_from_path(repeated_pairs_file)
    clean = evaluate_module._run_one(EncoderWithoutDeduplication(JitterClient(seed=0, scale=0.0)), task)
    noisy = [evaluate_module._run_one(EncoderWithoutDeduplication(JitterClient(seed), batch_size=7), task)
             for seed in (1, 2, 3)]
    assert {r.task_results[0].get_score() for r in noisy} != {clean.task_results[0].get_score()}
