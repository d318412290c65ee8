"""Accuracy through mteb: tasks from files, the server-backed encoder, and scores that mean something."""

import json
import os
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest

from pytest_embedeval.accuracy import (
    CMTEB_STS_TASKS,
    ServerEncoder,
    TaskDataError,
    UnknownTarget,
    evaluate,
    resolve_target,
    shipped_tasks,
    tasks_from_path,
)
from pytest_embedeval.registry import Registry

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


@pytest.mark.parametrize(("alias", "query_prefix"), [
    # Qwen3's "{task}" gets the instruction mteb keeps for the task (here the file task's own).
    ("qwen3-4b", "Instruct: Given a question, retrieve passages that answer the question\nQuery:"),
    ("bge-large-zh", "为这个句子生成表示以用于检索相关文章："),
], ids=["qwen3-4b", "bge-large-zh"])
def test_the_query_prompt_goes_to_queries_only(sts_file, beir_folder, alias, query_prefix):
    client = RecordingClient()
    encoder = ServerEncoder(client, Registry().resolve(alias))
    evaluate(encoder, tasks_from_path(beir_folder) + tasks_from_path(sts_file))

    queries = [query_prefix + q["text"] for q in QUERIES]
    documents = [(d.get("title", "") + " " + d["text"]).strip() for d in DOCS]  # mteb joins title and text
    sentences = [p[0] for p in PAIRS] + [p[1] for p in PAIRS]  # STS: both sides as they are
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
        "from pytest_embedeval.accuracy import DatasetNotCached, ServerEncoder, evaluate, resolve_target\n"
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
