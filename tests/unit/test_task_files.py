"""A user's data becomes an mteb task (a JSONL file of scored pairs an STS task, a BEIR folder a retrieval task), a
malformed one is refused with its file and line, and the shipped tasks load."""

import json

import pytest

from pytest_embedeval.measure.accuracy import (
    TaskDataError, UnknownTarget, resolve_target, shipped_tasks, tasks_from_path,
)

from support.task_data import DOCS, PAIRS


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
