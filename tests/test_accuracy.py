"""Accuracy through mteb: tasks from files, the server-backed encoder, and scores that mean something."""

import json
import os
import subprocess
import sys
import threading
import time
import zlib

import mteb
import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from scipy import stats

from pytest_embedeval.measure.accuracy import (
    CMTEB_STS_TASKS,
    ItemCapture,
    PairItems,
    QueryItems,
    ServerEncoder,
    TaskDataError,
    TaskScore,
    UnknownTarget,
    bootstrap_interval,
    evaluate,
    resolve_target,
    shipped_tasks,
    tasks_from_path,
)
from pytest_embedeval.measure.accuracy.items import score as items_score
from pytest_embedeval.measure.accuracy.tasks import shipped_data_dir
from pytest_embedeval.facts.metrics import metric
from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.judge.rules import compare
from pytest_embedeval.judge.verdicts import Outcome

# The module, not the function the package exports under the same name.
evaluate_module = sys.modules["pytest_embedeval.measure.accuracy.runner"]

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "A woman is cutting an onion.", 4.6),
    ("Kids are playing soccer on a field.", "Children play football outside.", 4.0),
    ("The cat sleeps on the sofa.", "A cat is sleeping on a couch.", 4.2),
    ("A chef is cooking pasta.", "Someone is making dinner.", 2.6),
    ("The train arrived late this morning.", "The morning train was delayed.", 4.4),
    ("A dog runs in the park.", "The stock market fell today.", 0.0),
    ("He is reading a newspaper.", "Mountains are covered in snow.", 0.2),
    ("A girl is painting a picture.", "A child is drawing.", 3.0),
    ("The sun is shining brightly.", "It is a rainy day.", 0.8),
]

DOCS = [
    {"_id": "paris", "title": "Paris", "text": "Paris is the capital and largest city of France."},
    {"_id": "nile", "title": "Nile", "text": "The Nile is the longest river in Africa and flows into the Mediterranean."},
    {"_id": "python", "title": "", "text": "Python is a programming language that emphasises readable code."},
    {"_id": "everest", "text": "Mount Everest is the highest mountain above sea level, in the Himalayas."},
    {"_id": "insulin", "title": "Insulin", "text": "Insulin is a hormone that regulates the amount of sugar in the blood."},
]
QUERIES = [
    {"_id": "q1", "text": "What is the capital of France?"},
    {"_id": "q2", "text": "Which is the longest river in Africa?"},
    {"_id": "q3", "text": "What is the tallest mountain in the world?"},
    {"_id": "q4", "text": "Which hormone controls blood sugar?"},
]
QRELS = [("q1", "paris"), ("q2", "nile"), ("q3", "everest"), ("q4", "insulin")]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def sts_file(tmp_path):
    return write_jsonl(tmp_path / "pairs.jsonl", [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in PAIRS])


@pytest.fixture
def beir_folder(tmp_path):
    folder = tmp_path / "faq"
    folder.mkdir()
    write_jsonl(folder / "corpus.jsonl", DOCS)
    write_jsonl(folder / "queries.jsonl", QUERIES)
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS))
    return folder


class RecordingClient:
    """An EmbeddingClient double: records what it is sent; a text's vector depends on the text only."""

    model = "recording"

    def __init__(self, dimensions=16, delay=0.0):
        self.sent, self.dimensions_asked = [], []
        self.delay, self.in_flight, self.max_in_flight = delay, 0, 0
        self.lock = threading.Lock()

    def embed(self, texts, dimensions=None):
        with self.lock:
            self.sent.extend(texts)
            self.dimensions_asked.append(dimensions)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay * (zlib.crc32(texts[0].encode()) % 5))  # batches finish out of order
        with self.lock:
            self.in_flight -= 1
        vectors = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=16) for t in texts])
        return vectors.astype(np.float32)


class NoiseEncoder(ServerEncoder):
    """What a broken deployment looks like to mteb: the server's vectors replaced by noise."""

    def embed_batch(self, texts):
        # Seeded by the texts, so that a run is repeatable whatever order the threads finish in.
        rng = np.random.default_rng(zlib.crc32("\n".join(texts).encode()))
        return rng.normal(size=(len(texts), self.spec.dimensions)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Tasks from files


def test_a_jsonl_file_becomes_an_sts_task_shaped_like_mtebs(sts_file):
    (task,) = tasks_from_path(sts_file)
    assert (task.metadata.name, task.metadata.type, task.metadata.main_score) == ("pairs", "STS", "cosine_spearman")
    assert (task.min_score, task.max_score) == (0, 5)
    task.load_data()
    test = task.dataset["test"]  # a monolingual mteb STS task: {split: Dataset}
    assert test.column_names == ["sentence1", "sentence2", "score"]
    assert test[0] == {"sentence1": PAIRS[0][0], "sentence2": PAIRS[0][1], "score": 4.8}


def test_line_breaks_inside_a_sentence_and_a_byte_order_mark_are_not_line_ends(tmp_path):
    path = tmp_path / "pairs.jsonl"
    records = [{"sentence1": "first\u2028line", "sentence2": "two", "score": 1}, {"sentence1": "a", "sentence2": "b", "score": 3}]
    path.write_text("\ufeff" + "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in records), encoding="utf-8")
    (task,) = tasks_from_path(path)
    task.load_data()
    assert task.dataset["test"]["sentence1"] == ["first\u2028line", "a"]


def test_a_beir_folder_becomes_a_retrieval_task_shaped_like_mtebs(beir_folder):
    (task,) = tasks_from_path(beir_folder, name="faq-v2")
    assert (task.metadata.name, task.metadata.type, task.metadata.main_score) == ("faq-v2", "Retrieval", "ndcg_at_10")
    task.load_data()
    split = task.dataset["default"]["test"]  # a monolingual mteb retrieval task: {"default": {split: ...}}
    assert split["corpus"].column_names == ["id", "title", "text"]
    assert split["corpus"][3] == {"id": "everest", "title": "", "text": DOCS[3]["text"]}
    assert split["queries"]["id"] == ["q1", "q2", "q3", "q4"]
    assert split["relevant_docs"] == {"q1": {"paris": 1}, "q2": {"nile": 1}, "q3": {"everest": 1}, "q4": {"insulin": 1}}


def test_the_shipped_tasks_load():
    tasks = shipped_tasks()
    assert [t.metadata.name for t in tasks] == [
        "EmbedEvalSTS-en", "EmbedEvalSTS-zh", "EmbedEvalRetrieval-en", "EmbedEvalRetrieval-zh"]
    assert [t.metadata.eval_langs for t in tasks] == [["eng-Latn"], ["cmn-Hans"], ["eng-Latn"], ["cmn-Hans"]]
    assert not any(t.is_user_data for t in tasks)
    for task in tasks:
        task.load_data()
        assert task.dataset


def sts_line(**overrides):
    record = {"sentence1": "a cat", "sentence2": "a dog", "score": 2.0, **overrides}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(("lines", "message"), [
    ([sts_line(), "{not json", sts_line()], r"pairs.jsonl:2: not valid JSON"),
    ([sts_line(), sts_line(score=...)], r"pairs.jsonl:2: missing key 'score'; every line needs 'sentence1', 'sentence2', 'score'"),
    ([sts_line(), sts_line(score=7)], r"pairs.jsonl:2: 'score' 7 is outside 0-5"),
    ([sts_line(), sts_line(score="high")], r"pairs.jsonl:2: 'score' must be a number"),
    ([sts_line(), sts_line(sentence2="  ")], r"pairs.jsonl:2: 'sentence2' is empty"),
    (["[1, 2]"], r"pairs.jsonl:1: expected a JSON object, got list"),
    ([sts_line(), "", sts_line()], r"all pairs have the same score"),
    ([sts_line()], r"needs at least 2 scored pairs, found 1"),
])
def test_a_malformed_sts_file_is_refused_with_its_file_and_line(tmp_path, lines, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskDataError, match=message.replace("(", r"\(")):
        tasks_from_path(path)


@pytest.mark.parametrize(("breakage", "message"), [
    (lambda f: (f / "qrels.tsv").unlink(), r"faq: not a retrieval folder: missing qrels.tsv"),
    (lambda f: (f / "queries.jsonl").write_text('{"_id": "q1"}\n'), r"queries.jsonl:1: missing key 'text'"),
    (lambda f: (f / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "y"}\n'),
     r"corpus.jsonl: '_id' 'd1' appears more than once"),
    (lambda f: (f / "qrels.tsv").write_text("q1\tparis\t1\n"), r"qrels.tsv:1: expected the header query-id<TAB>corpus-id<TAB>score"),
    (lambda f: (f / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tberlin\t1\n"),
     r"qrels.tsv:2: corpus-id 'berlin' is not in corpus.jsonl"),
    (lambda f: (f / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tparis\n"), r"qrels.tsv:2: expected 3 tab-separated"),
    (lambda f: (f / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tparis\tyes\n"), r"qrels.tsv:2: score must be an integer"),
])
def test_a_malformed_beir_folder_is_refused_with_what_is_wrong(beir_folder, breakage, message):
    breakage(beir_folder)
    with pytest.raises(TaskDataError, match=message):
        tasks_from_path(beir_folder)


def test_a_path_that_is_neither_jsonl_nor_folder_is_refused(tmp_path):
    (tmp_path / "pairs.csv").write_text("a,b,1\n")
    with pytest.raises(TaskDataError, match=r"pairs.csv: not a task file: expected a .jsonl file"):
        tasks_from_path(tmp_path / "pairs.csv")
    with pytest.raises(UnknownTarget, match=r"nothere.jsonl: no such file or folder"):
        resolve_target(str(tmp_path / "nothere.jsonl"))


def test_targets_name_presets_mteb_tasks_and_user_data(sts_file):
    assert [t.metadata.name for t in resolve_target("cmteb-sts")] == list(CMTEB_STS_TASKS)
    assert [t.metadata.main_score for t in resolve_target("cmteb-sts")] == ["cosine_spearman"] * 7
    assert len(resolve_target("cmteb")) == 31
    assert [t.metadata.name for t in resolve_target("T2Retrieval")] == ["T2Retrieval"]
    assert [t.metadata.name for t in resolve_target(str(sts_file))] == ["pairs"]
    with pytest.raises(UnknownTarget, match=r"'STS-nope' is not a preset \(embedeval, cmteb-sts, cmteb\)"):
        resolve_target("STS-nope")


# ---------------------------------------------------------------------------------------------
# The encoder, with a client double


@pytest.mark.parametrize(("alias", "query_prefix", "sts_prefix"), [
    # Qwen3's "{task}" gets the instruction mteb keeps for the task (here the file task's own); as mteb's own
    # Qwen3 model does, both sides of an STS pair get the STS instruction too.
    ("qwen3-4b", "Instruct: Given a question, retrieve passages that answer the question\nQuery:",
     "Instruct: Retrieve semantically similar text.\nQuery:"),
    ("bge-large-zh", "为这个句子生成表示以用于检索相关文章：", ""),
], ids=["qwen3-4b", "bge-large-zh"])
def test_each_model_gets_the_prompts_mteb_gives_it(sts_file, beir_folder, alias, query_prefix, sts_prefix):
    client = RecordingClient()
    encoder = ServerEncoder(client, Registry().resolve(alias))
    evaluate(encoder, tasks_from_path(beir_folder) + tasks_from_path(sts_file))

    queries = [query_prefix + q["text"] for q in QUERIES]
    documents = [(d.get("title", "") + " " + d["text"]).strip() for d in DOCS]  # mteb joins title and text
    sentences = [sts_prefix + p[0] for p in PAIRS] + [sts_prefix + p[1] for p in PAIRS]
    assert sorted(client.sent) == sorted(queries + documents + sentences)


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


def test_a_missing_mteb_dataset_offline_fails_fast_and_says_how_to_fetch_it(tmp_path):
    script = (
        "import time\n"
        "from pytest_embedeval.measure.accuracy import DatasetNotCached, ServerEncoder, evaluate, resolve_target\n"
        "class Unused:\n    model = 'unused'\n"
        "start = time.monotonic()\n"
        "try:\n    evaluate(ServerEncoder(Unused()), resolve_target('ATEC'))\n"
        "except DatasetNotCached as exc:\n    print(f'{time.monotonic() - start:.3f}'); print(exc)\n"
    )
    empty_home = tmp_path / "hf"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(empty_home),
           "HF_DATASETS_CACHE": str(empty_home / "datasets"), "MTEB_CACHE": str(tmp_path / "mteb")}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)

    seconds, message = run.stdout.strip().split("\n", 1)
    assert float(seconds) < 10.0, run.stdout  # no retries: an online attempt spends ~23 s retrying
    assert "mteb task ATEC: dataset not in the local Hugging Face cache" in message
    assert "embedeval prefetch --tasks ATEC" in message


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


# ---------------------------------------------------------------------------------------------
# The score's sampling error: a bootstrap over its items


def synthetic_pairs(n, seed, noise=0.75):
    """n STS pairs from a population whose Spearman correlation is known: gold scores and pair
    vectors (32 dims) whose cosine follows the same latent similarity, each with its own noise."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    gold = latent + noise * rng.normal(size=n)
    cosine = 1 / (1 + np.exp(-(latent + noise * rng.normal(size=n))))  # monotone: ranks are the latent's
    first = rng.normal(size=(n, 32))
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    other = rng.normal(size=(n, 32))
    other -= (other * first).sum(axis=1, keepdims=True) * first
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    second = cosine[:, None] * first + np.sqrt(1 - cosine[:, None] ** 2) * other
    similarity = (first * second).sum(axis=1) / np.linalg.norm(second, axis=1)
    pearson = 1 / (1 + noise ** 2)  # of the two noisy copies of the latent
    population_spearman = 6 / np.pi * np.arcsin(pearson / 2)  # for a bivariate normal
    return PairItems(similarity, gold), population_spearman


def test_resampled_ranks_are_scipys_average_ranks():
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 6, 60).astype(float)  # gold scores tie a lot
    similarity = rng.normal(size=60)
    similarity[5] = similarity[9]
    items = PairItems(similarity, gold)
    draws = rng.integers(0, 60, size=(20, 60))  # resamples repeat pairs: more ties
    expected = [stats.spearmanr(similarity[d], gold[d])[0] for d in draws]
    np.testing.assert_allclose(items.statistic(draws), expected, rtol=0, atol=1e-12)
    assert items_score([items]) == pytest.approx(stats.spearmanr(similarity, gold)[0], abs=1e-12)


def test_the_interval_covers_the_population_score_about_95_times_in_100():
    covered, half_widths = 0, []
    for seed in range(60):
        items, population = synthetic_pairs(150, seed)
        low, high = bootstrap_interval([items])
        covered += low <= population <= high
        half_widths.append((high - low) / 2)
    assert covered >= 52, covered  # 95% of 60 is 57; an interval that ignores the pairing covers far less
    assert np.mean(half_widths) < 0.15  # and it is not simply wide: ~0.11 for 150 pairs at rho 0.62


def test_the_interval_narrows_with_the_square_root_of_the_items():
    width = {}
    for n in (200, 800):
        low, high = bootstrap_interval([synthetic_pairs(n, seed=1)[0]])
        width[n] = high - low
    assert 0.35 < width[800] / width[200] < 0.7, width  # 1/sqrt(4) = 0.5


def test_the_same_items_give_the_same_interval():
    items, _ = synthetic_pairs(300, seed=3)
    assert bootstrap_interval([items]) == bootstrap_interval([items])


def test_each_group_is_resampled_within_itself():
    # A task on two subsets scores the mean of their scores; resampled apart, every resample of
    # "all perfect" and "all missed" averages exactly 0.5. Pooled, the mean would wander.
    groups = [QueryItems(np.ones(30)), QueryItems(np.zeros(30))]
    assert items_score(groups) == 0.5
    assert bootstrap_interval(groups) == (0.5, 0.5)


def test_too_few_items_give_no_interval():
    assert bootstrap_interval([QueryItems(np.array([1.0, 0.0]))]) is None
    assert bootstrap_interval([]) is None


@pytest.mark.parametrize(("interval", "items", "too_small"), [
    ((70.0, 74.0), 300, True),      # +-2 points
    ((71.6, 72.4), 5000, False),    # +-0.4
    (None, 2, True),                # too few items to resample
    ((100.0, 100.0), 12, True),     # every resample perfect, but 12 pairs cannot vouch for 1%
    ((100.0, 100.0), 400, False),   # rule of three: 3/400 < 1%
    (None, None, False),            # nothing known
])
def test_a_score_says_when_its_set_is_too_small_for_one_point(interval, items, too_small):
    task_score = TaskScore("data:x", "x", "cosine_spearman", 72.0, 1.0, 10, interval=interval, items=items,
                           item_unit="pairs")
    assert task_score.too_small_for_one_point is too_small


# ---------------------------------------------------------------------------------------------
# The items come from the run that scored


def non_blank_lines(path):
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def judged_queries(folder):
    """Queries with a relevant document: the ones mteb scores (it drops the others)."""
    rows = [line.split("\t") for line in (folder / "qrels.tsv").read_text().splitlines()[1:] if line.strip()]
    return len({query for query, _, relevance in rows if int(relevance) > 0})


def test_every_shipped_task_gets_an_interval_over_all_its_items():
    scores = evaluate(ServerEncoder(RecordingClient()), shipped_tasks())
    data = shipped_data_dir()
    expected = [non_blank_lines(data / "sts" / f"{code}.jsonl") for code in ("en", "zh")]
    expected += [judged_queries(data / "retrieval" / code) for code in ("en", "zh")]
    assert [s.items for s in scores] == expected
    assert [s.item_unit for s in scores] == ["pairs", "pairs", "queries", "queries"]
    for task_score in scores:
        low, high = task_score.interval
        assert low <= task_score.value <= high, task_score


def test_the_items_rebuild_mtebs_own_score_of_the_shipped_sts_tasks():
    encoder = ServerEncoder(RecordingClient())
    for task in shipped_tasks()[:2]:
        with ItemCapture(task, encoder) as capture:
            result = evaluate_module._run_one(encoder, task)
        groups = capture.groups()
        assert [len(g) for g in groups] == [non_blank_lines(task.source)]
        # Same vectors, same cosines: the Spearman over pairs is mteb's main score.
        assert items_score(groups) == pytest.approx(result.task_results[0].get_score(), abs=1e-6)


def test_the_capture_leaves_task_and_encoder_as_they_were(sts_file, beir_folder):
    encoder = ServerEncoder(RecordingClient())
    tasks = tasks_from_path(sts_file) + tasks_from_path(beir_folder)
    evaluate(encoder, tasks)
    assert "encode" not in vars(encoder)
    for task in tasks:
        assert not {"_evaluate_subset", "task_specific_scores"} & set(vars(task))
    # An encode of the instance's own (a user's patch) is put back, not dropped.
    own_encode = encoder.encode
    encoder.encode = own_encode
    evaluate(encoder, tasks_from_path(sts_file))
    assert vars(encoder)["encode"] is own_encode


def test_mtebs_own_sts_task_gets_an_interval_over_both_its_splits():
    # C-MTEB's STSB, its data put in place as a prefilled cache would load it (sentence1, sentence2,
    # score); it is scored on two splits, each resampled within itself.
    task = mteb.get_task("STSB")
    rows = {"sentence1": [a for a, _, _ in PAIRS], "sentence2": [b for _, b, _ in PAIRS],
            "score": [s for _, _, s in PAIRS]}
    task.dataset = DatasetDict({split: Dataset.from_dict(rows) for split in task.metadata.eval_splits})
    task.data_loaded = True
    (task_score,) = evaluate(ServerEncoder(RecordingClient()), [task])
    assert task_score.metric == "mteb:STSB"
    assert task_score.items == len(PAIRS) * len(task.metadata.eval_splits) == 20
    assert task_score.interval is not None


def test_a_main_score_the_items_cannot_rebuild_gets_no_interval(sts_file):
    (task,) = tasks_from_path(sts_file)
    task.metadata = task.metadata.model_copy(update={"main_score": "euclidean_spearman"})
    (task_score,) = evaluate(ServerEncoder(RecordingClient()), [task])
    assert task_score.main_score == "euclidean_spearman"
    assert (task_score.interval, task_score.items, task_score.too_small_for_one_point) == (None, None, False)


# ---------------------------------------------------------------------------------------------
# Against the real server


def shipped(name):
    return next(task for task in shipped_tasks() if task.metadata.name == name)


@pytest.fixture(scope="module")
def english_sts_score(embed_client, embed_model):
    encoder = ServerEncoder(embed_client, embed_model)
    (score,) = evaluate(encoder, [shipped("EmbedEvalSTS-en")])
    return score, encoder


@pytest.mark.server
def test_the_served_model_scores_plausibly_on_the_shipped_english_sts(english_sts_score):
    score, encoder = english_sts_score
    assert score.metric == "mteb:EmbedEvalSTS-en"
    assert 40 < score.value < 95, score
    assert encoder.texts_encoded == score.texts_encoded > 0
    # minilm: 74.91, 95% CI 68.50..80.07 over 359 pairs: a few hundred pairs cannot tell 1 point.
    assert score.items == non_blank_lines(shipped("EmbedEvalSTS-en").source)
    assert score.interval[0] < score.value < score.interval[1]
    assert score.too_small_for_one_point


@pytest.mark.server
def test_the_items_rebuild_mtebs_score_from_the_servers_vectors(embed_client, embed_model):
    encoder = ServerEncoder(embed_client, embed_model)
    for name in ("EmbedEvalSTS-en", "EmbedEvalSTS-zh"):
        task = shipped(name)
        with ItemCapture(task, encoder) as capture:
            result = evaluate_module._run_one(encoder, task)
        # The cosines of the vectors mteb scored, Spearman over pairs: mteb's main score to 1e-6.
        assert items_score(capture.groups()) == pytest.approx(result.task_results[0].get_score(), abs=1e-6), name


@pytest.mark.server
def test_noise_vectors_score_far_lower_on_the_same_task(english_sts_score, embed_client, embed_model):
    real, _ = english_sts_score
    (noise,) = evaluate(NoiseEncoder(embed_client, embed_model), [shipped("EmbedEvalSTS-en")])
    assert noise.value < 20 < real.value - 20, (noise, real)


@pytest.mark.server
def test_the_served_model_finds_the_obvious_documents(beir_folder, embed_client, embed_model):
    (score,) = evaluate(ServerEncoder(embed_client, embed_model), tasks_from_path(beir_folder))
    assert score.metric == "data:faq"
    assert score.value > 90, score


@pytest.mark.server
def test_the_served_model_scores_plausibly_on_the_shipped_english_retrieval(embed_client, embed_model):
    (score,) = evaluate(ServerEncoder(embed_client, embed_model), [shipped("EmbedEvalRetrieval-en")])
    assert 60 < score.value <= 100, score  # minilm: 89.8, the same as sentence-transformers in-process
    # Each query's nDCG@10 as mteb computed it; their mean is the score (checked in evaluate).
    assert score.items == judged_queries(shipped("EmbedEvalRetrieval-en").source)
    assert score.interval[0] < score.value < score.interval[1]


# The pairs of issue 16: 6 pairs written twice. Their score moved 99.64 -> 99.12 between two runs on one server
# when each copy of a sentence got a vector of its own.
ISSUE_16_PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A man is playing a guitar.", "A woman is slicing onions.", 0.2),
    ("The stock market fell sharply today.", "Shares dropped steeply on Monday.", 3.6),
    ("The stock market fell sharply today.", "A dog runs across the park.", 0.0),
    ("Kids are swimming in the lake.", "Children swim in a lake.", 4.6),
    ("Kids are swimming in the lake.", "The lake is frozen in winter.", 1.2),
] * 2


@pytest.mark.server
def test_a_file_that_repeats_pairs_scores_the_same_on_every_run(tmp_path, embed_client, embed_model):
    records = [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in ISSUE_16_PAIRS]
    path = write_jsonl(tmp_path / "ours.jsonl", records)
    # Other batch sizes put each sentence at other places in other requests: the noise the issue saw.
    runs = [evaluate(ServerEncoder(embed_client, embed_model, batch_size=size), tasks_from_path(path))[0]
            for size in (32, 5, 3)]
    assert len({(run.value, run.interval) for run in runs}) == 1, runs
    assert runs[0].items == 12 and runs[0].too_small_for_one_point


class PerturbedEncoder(ServerEncoder):
    """The server's vectors plus a fixed noise per text, ``scale`` times the vectors' own (unit) length."""

    scale = 0.0

    def embed_batch(self, texts):
        vectors = super().embed_batch(texts)
        # Seeded by the text: a text's noise is the same in every request, so runs are repeatable.
        noise = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=vectors.shape[1]) for t in texts])
        return (vectors + self.scale * noise / np.sqrt(vectors.shape[1])).astype(np.float32)


def perturbed(client, spec, scale):
    encoder = PerturbedEncoder(client, spec)
    encoder.scale = scale
    return encoder


@pytest.mark.server
def test_a_planted_ordering_change_on_300_pairs_is_still_caught(tmp_path, embed_client, embed_model):
    lines = [line for line in (shipped_data_dir() / "sts" / "en.jsonl").read_text().splitlines() if line.strip()]
    path = tmp_path / "sts300.jsonl"
    path.write_text("\n".join(lines[:300]) + "\n")
    score_metric = metric("data:sts300")  # the default tolerance of a task score: 0.5 points
    (baseline,) = evaluate(ServerEncoder(embed_client, embed_model), tasks_from_path(path))
    assert baseline.items == 300

    def verdict(scale):
        (measured,) = evaluate(perturbed(embed_client, embed_model, scale), tasks_from_path(path))
        return measured, compare(score_metric, measured.value, baseline.value, interval=measured.interval)[0]

    # Noise of a float's size is no regression (300 pairs alone cannot tell half a point: inconclusive).
    _, float_noise = verdict(1e-6)
    assert float_noise in (Outcome.PASSED, Outcome.INCONCLUSIVE)
    # The plant: noise twice as long as the (unit) vectors, which reorders the pairs' similarities (Kendall's
    # tau ~0.4 against the clean order). Spearman depends on that order alone, so its drop is the reordering.
    worse, caught = verdict(2.0)
    assert caught == Outcome.REGRESSED, (baseline, worse)
    assert worse.interval[1] < baseline.value - 0.5  # beyond both the tolerance and this set's own noise
