"""mteb tasks read from files on this machine: STS pairs (JSONL) and BEIR retrieval folders.

Nothing here touches the network. Files are read and checked when the task is built, so that a
malformed line fails with its file and line number before any server time is spent.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata

STS_MIN_SCORE = 0
STS_MAX_SCORE = 5
BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")
QRELS_HEADER = ["query-id", "corpus-id", "score"]
SPLIT = "test"


class TaskDataError(ValueError):
    """A data file is missing, malformed or unusable; the message names the file (and line)."""


# ---------------------------------------------------------------------------------------------
# Reading and checking files


def _content_revision(*paths: Path) -> str:
    # mteb records a dataset revision with every score; the content hash says which data it was.
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _lines(path: Path) -> list[str]:
    # Split on "\n" only: str.splitlines would also split at U+2028 inside a JSON string.
    # utf-8-sig: a byte-order mark (Windows editors) would otherwise break the first line.
    try:
        return [line.rstrip("\r") for line in path.read_text(encoding="utf-8-sig").split("\n")]
    except UnicodeDecodeError as exc:
        raise TaskDataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _jsonl_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line, refusing bad JSON and missing keys."""
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(record, dict):
            raise TaskDataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in required if key not in record]
        if missing:
            raise TaskDataError(
                f"{path}:{number}: missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
                f"every line needs {', '.join(map(repr, required))}"
            )
        yield number, record


def _text(value: Any, where: str, key: str, *, allow_empty: bool = False) -> str:
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise TaskDataError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    # An embedding server refuses an empty input (SGLang answers 400), which would abort a long run.
    if not allow_empty and not value.strip():
        raise TaskDataError(f"{where}: {key!r} is empty")
    return value


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise TaskDataError(f"{where}: '_id' must be a non-empty string or integer, got {value!r}")
    return str(value)


def read_sts_jsonl(path: Path) -> dict[str, list]:
    """Columns sentence1, sentence2, score from a JSONL file of pairs scored 0-5."""
    columns: dict[str, list] = {"sentence1": [], "sentence2": [], "score": []}
    for number, record in _jsonl_records(path, ("sentence1", "sentence2", "score")):
        where = f"{path}:{number}"
        score = record["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise TaskDataError(f"{where}: 'score' must be a number from {STS_MIN_SCORE} to {STS_MAX_SCORE}, got {score!r}")
        if not STS_MIN_SCORE <= score <= STS_MAX_SCORE:
            raise TaskDataError(f"{where}: 'score' {score} is outside {STS_MIN_SCORE}-{STS_MAX_SCORE}")
        columns["sentence1"].append(_text(record["sentence1"], where, "sentence1"))
        columns["sentence2"].append(_text(record["sentence2"], where, "sentence2"))
        columns["score"].append(float(score))
    # A correlation needs at least two pairs whose scores differ; otherwise mteb reports NaN.
    if len(columns["score"]) < 2:
        raise TaskDataError(f"{path}: needs at least 2 scored pairs, found {len(columns['score'])}")
    if len(set(columns["score"])) < 2:
        raise TaskDataError(f"{path}: all pairs have the same score; a correlation needs different scores")
    return columns


def _beir_paths(folder: Path) -> tuple[Path, Path, Path]:
    corpus, queries = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels = folder / "qrels.tsv"
    if not qrels.is_file() and (folder / "qrels" / f"{SPLIT}.tsv").is_file():
        qrels = folder / "qrels" / f"{SPLIT}.tsv"  # BEIR's own layout
    missing = [path.name for path in (corpus, queries, qrels) if not path.is_file()]
    if missing:
        raise TaskDataError(
            f"{folder}: not a retrieval folder: missing {', '.join(missing)} "
            f"(a BEIR folder holds {', '.join(BEIR_FILES)})"
        )
    return corpus, queries, qrels


def read_beir_folder(folder: Path) -> RetrievalSplitData:
    """Corpus, queries and relevance judgements of a BEIR folder, in the shape mteb's retrieval expects."""
    corpus_path, queries_path, qrels_path = _beir_paths(folder)

    corpus: dict[str, list[str]] = {"id": [], "title": [], "text": []}
    for number, record in _jsonl_records(corpus_path, ("_id", "text")):
        where = f"{corpus_path}:{number}"
        corpus["id"].append(_id(record["_id"], where))
        corpus["title"].append(_text(record.get("title"), where, "title", allow_empty=True))
        corpus["text"].append(_text(record["text"], where, "text", allow_empty=bool(corpus["title"][-1].strip())))
    queries: dict[str, list[str]] = {"id": [], "text": []}
    for number, record in _jsonl_records(queries_path, ("_id", "text")):
        where = f"{queries_path}:{number}"
        queries["id"].append(_id(record["_id"], where))
        queries["text"].append(_text(record["text"], where, "text"))
    for path, ids in ((corpus_path, corpus["id"]), (queries_path, queries["id"])):
        if not ids:
            raise TaskDataError(f"{path}: no records")
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            duplicate = next(i for i in ids if i in seen or seen.add(i))
            raise TaskDataError(f"{path}: '_id' {duplicate!r} appears more than once")

    corpus_ids, query_ids = set(corpus["id"]), set(queries["id"])
    relevant: dict[str, dict[str, int]] = {}
    rows = list(csv.reader(_lines(qrels_path), delimiter="\t"))
    if not rows or [cell.strip() for cell in rows[0]] != QRELS_HEADER:
        raise TaskDataError(
            f"{qrels_path}:1: expected the header {'<TAB>'.join(QRELS_HEADER)}, got {rows[0] if rows else 'an empty file'}"
        )
    for number, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        where = f"{qrels_path}:{number}"
        if len(row) != 3:
            raise TaskDataError(f"{where}: expected 3 tab-separated columns (query-id, corpus-id, score), got {len(row)}")
        query_id, corpus_id, score = (cell.strip() for cell in row)
        if query_id not in query_ids:
            raise TaskDataError(f"{where}: query-id {query_id!r} is not in {queries_path.name}")
        if corpus_id not in corpus_ids:
            raise TaskDataError(f"{where}: corpus-id {corpus_id!r} is not in {corpus_path.name}")
        try:
            relevant.setdefault(query_id, {})[corpus_id] = int(score)
        except ValueError:
            raise TaskDataError(f"{where}: score must be an integer, got {score!r}") from None
    if not any(score > 0 for docs in relevant.values() for score in docs.values()):
        raise TaskDataError(f"{qrels_path}: no query has a relevant document (a score above 0)")

    return RetrievalSplitData(
        corpus=Dataset.from_dict(corpus),
        queries=Dataset.from_dict(queries),
        relevant_docs=relevant,
        top_ranked=None,
    )


def _guess_language(texts: list[str]) -> str:
    # Only mteb's metadata needs a language; Han characters are the one case worth telling apart.
    sample = "".join(texts[:200])
    letters = [c for c in sample if c.isalpha()]
    han = sum("\u4e00" <= c <= "\u9fff" for c in letters)
    return "cmn-Hans" if letters and han / len(letters) > 0.3 else "eng-Latn"


# ---------------------------------------------------------------------------------------------
# Tasks


class FileSTSTask(AbsTaskSTS):
    """STS pairs read from a JSONL file. Build one with ``sts_task_from_jsonl``.

    Each task gets its own subclass holding its metadata: mteb's ``unload_data`` drops an
    instance's own ``metadata`` after a run, and looks prompts up through class-level metadata.
    """

    source: Path
    is_user_data: bool = True
    min_score = STS_MIN_SCORE
    max_score = STS_MAX_SCORE

    def __init__(self, pairs: dict[str, list] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pairs = pairs if pairs is not None else read_sts_jsonl(self.source)

    def load_data(self, num_proc: int | None = None, *, timer: Any = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        # A monolingual STS task's dataset is {split: Dataset}, as load_dataset would return it.
        self.dataset = DatasetDict({SPLIT: Dataset.from_dict(self._pairs)})
        self.data_loaded = True


class FileRetrievalTask(AbsTaskRetrieval):
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv). Build one with ``retrieval_task_from_folder``."""

    source: Path
    is_user_data: bool = True

    def __init__(self, split_data: RetrievalSplitData | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._split_data = split_data if split_data is not None else read_beir_folder(self.source)

    def load_data(self, num_proc: int | None = None, *, timer: Any = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        # A monolingual retrieval task's dataset is {"default": {split: RetrievalSplitData}}.
        # mteb filters the queries of the split data in place: hand it a copy.
        data = self._split_data
        self.dataset = {"default": {SPLIT: RetrievalSplitData(
            corpus=data["corpus"], queries=data["queries"],
            relevant_docs={q: dict(docs) for q, docs in data["relevant_docs"].items()}, top_ranked=None,
        )}}
        self.data_loaded = True


def _metadata(*, name: str, task_type: str, main_score: str, source: Path, revision: str, language: str,
              description: str, prompt: dict[str, str] | None = None) -> TaskMetadata:
    return TaskMetadata(
        name=name,
        description=description,
        dataset={"path": str(source), "revision": revision},
        type=task_type,
        category="t2t",
        modalities=["text"],
        eval_splits=[SPLIT],
        eval_langs=[language],
        main_score=main_score,
        prompt=prompt,
        dialect=[],
        bibtex_citation="",
    )


def _subclass(base: type, name: str, metadata: TaskMetadata, source: Path, user_data: bool) -> type:
    class_name = base.__name__ + "_" + re.sub(r"\W", "_", name)
    return type(class_name, (base,), {"metadata": metadata, "source": source, "is_user_data": user_data,
                                      "__module__": __name__})


def sts_task_from_jsonl(path: str | Path, name: str | None = None, *, language: str | None = None,
                        description: str | None = None, user_data: bool = True) -> FileSTSTask:
    """An mteb STS task (main score cosine Spearman) over a JSONL file of {sentence1, sentence2, score 0-5}."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: no such file")
    pairs = read_sts_jsonl(path)
    name = name or path.stem
    metadata = _metadata(
        name=name, task_type="STS", main_score="cosine_spearman", source=path, revision=_content_revision(path),
        language=language or _guess_language(pairs["sentence1"]),
        description=description or f"Semantic similarity of sentence pairs scored 0-5, from {path.name}.",
    )
    return _subclass(FileSTSTask, name, metadata, path, user_data)(pairs=pairs)


def retrieval_task_from_folder(path: str | Path, name: str | None = None, *, language: str | None = None,
                               description: str | None = None, user_data: bool = True) -> FileRetrievalTask:
    """An mteb retrieval task (main score nDCG@10) over a BEIR folder."""
    path = Path(path)
    split_data = read_beir_folder(path)
    name = name or path.name
    metadata = _metadata(
        name=name, task_type="Retrieval", main_score="ndcg_at_10", source=path,
        revision=_content_revision(*_beir_paths(path)),
        language=language or _guess_language(split_data["queries"]["text"]),
        description=description or f"Retrieve the relevant documents for each query, from {path.name}.",
        # The instruction instruction-following models (Qwen3's "{task}") get for the queries.
        prompt={"query": "Given a question, retrieve passages that answer the question"},
    )
    return _subclass(FileRetrievalTask, name, metadata, path, user_data)(split_data=split_data)


def tasks_from_path(path: str | Path, name: str | None = None) -> list[FileSTSTask | FileRetrievalTask]:
    """The task in a user's file or folder: a ``.jsonl`` file is STS pairs, a BEIR folder is retrieval."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".jsonl":
            raise TaskDataError(
                f"{path}: not a task file: expected a .jsonl file of STS pairs "
                "(sentence1, sentence2, score 0-5) or a BEIR retrieval folder"
            )
        return [sts_task_from_jsonl(path, name)]
    if path.is_dir():
        return [retrieval_task_from_folder(path, name)]
    raise TaskDataError(f"{path}: no such file or folder")


# ---------------------------------------------------------------------------------------------
# The project's own data


def shipped_data_dir() -> Path:
    return Path(str(resources.files("pytest_embedeval") / "data"))


SHIPPED_LANGUAGES = {"en": ("eng-Latn", "English"), "zh": ("cmn-Hans", "Chinese")}


def shipped_tasks(data_dir: Path | None = None) -> list[FileSTSTask | FileRetrievalTask]:
    """EmbedEvalSTS-en, EmbedEvalSTS-zh, EmbedEvalRetrieval-en, EmbedEvalRetrieval-zh: four tasks, one per
    language and kind, so that each language has its own score rather than an average over both."""
    data_dir = data_dir or shipped_data_dir()
    tasks: list[FileSTSTask | FileRetrievalTask] = []
    try:
        for code, (language, words) in SHIPPED_LANGUAGES.items():
            tasks.append(sts_task_from_jsonl(
                data_dir / "sts" / f"{code}.jsonl", f"EmbedEvalSTS-{code}", language=language, user_data=False,
                description=f"pytest-embedeval's {words} sentence pairs, scored 0-5 by similarity.",
            ))
        for code, (language, words) in SHIPPED_LANGUAGES.items():
            tasks.append(retrieval_task_from_folder(
                data_dir / "retrieval" / code, f"EmbedEvalRetrieval-{code}", language=language, user_data=False,
                description=f"pytest-embedeval's {words} questions over a small passage corpus.",
            ))
    except TaskDataError as exc:
        raise TaskDataError(f"the data shipped with pytest-embedeval is incomplete: {exc}") from None
    return tasks
