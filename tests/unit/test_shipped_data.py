"""Checks on the evaluation data shipped in ``pytest_embedeval/data``.

Plain pytest with the standard library only: no plugin fixtures, no server, no network.
Every failure names the file and the offending line (``path:lineno``) so that a bad edit
to the data can be found and fixed directly.

The formats checked here are the documented formats for users' own data as well
(see ``pytest_embedeval/data/README.md``):

* STS: JSONL, one object per line with ``sentence1``, ``sentence2`` and ``score`` (0-5).
* Retrieval: BEIR layout, ``corpus.jsonl`` (``_id``, ``title``, ``text``),
  ``queries.jsonl`` (``_id``, ``text``) and ``qrels.tsv`` (``query-id``, ``corpus-id``,
  ``score``, with a header line).
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Overridable so the module can be copied elsewhere and pointed at a checkout.
DATA_DIR = Path(os.environ.get("EMBEDEVAL_SHIPPED_DATA_DIR", REPO_ROOT / "pytest_embedeval" / "data"))

LANGS = ("en", "zh")

MIN_STS_PAIRS = 320
MIN_PAIRS_PER_BIN = 40  # bins [0,1), [1,2), [2,3), [3,4), [4,5]
MIN_QUERIES = 32
MIN_PASSAGES = 320
MAX_RELEVANT_PER_QUERY = 3
QRELS_HEADER = ["query-id", "corpus-id", "score"]
ALLOWED_QREL_SCORES = {1, 2}

# Chinese text may contain code, product names and numbers (``git stash``, ``SQL``,
# ``CPU``), so "mostly CJK" is judged on letters only and allows a few mostly-Latin lines.
MIN_CJK_SHARE_OF_LETTERS = 0.5
MAX_LATIN_HEAVY_LINE_FRACTION = 0.05


# --------------------------------------------------------------------------- helpers


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _where(path: Path, lineno: int) -> str:
    return f"{_rel(path)}:{lineno}"


def _show(problems: list[str], limit: int = 20) -> str:
    shown = "\n  ".join(problems[:limit])
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"\n  {shown}{more}"


def _require_file(path: Path) -> None:
    if not path.is_file():
        pytest.fail(f"{_rel(path)}: shipped data file is missing")


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """Return ``(lineno, object)`` for each non-blank line; fail naming the bad line."""
    _require_file(path)
    rows = []
    problems = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                problems.append(f"{_where(path, lineno)}: blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{_where(path, lineno)}: invalid JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"{_where(path, lineno)}: expected a JSON object, got {type(obj).__name__}")
                continue
            rows.append((lineno, obj))
    if problems:
        pytest.fail("unreadable JSONL:" + _show(problems))
    return rows


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= cp <= 0x4DBF  # Extension A
        or 0x20000 <= cp <= 0x2EBEF  # Extensions B-F
        or 0xF900 <= cp <= 0xFAFF  # Compatibility Ideographs
    )


def _letters(text: str) -> tuple[int, int]:
    """(CJK ideographs, other letters) in ``text``."""
    cjk = other = 0
    for ch in text:
        if _is_cjk(ch):
            cjk += 1
        elif unicodedata.category(ch).startswith("L"):
            other += 1
    return cjk, other


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _score_bin(score: float) -> int:
    return min(int(math.floor(score)), 4)


# ------------------------------------------------------------------- file loaders


def sts_path(lang: str) -> Path:
    return DATA_DIR / "sts" / f"{lang}.jsonl"


def retrieval_dir(lang: str) -> Path:
    return DATA_DIR / "retrieval" / lang


def load_sts(lang: str) -> tuple[Path, list[tuple[int, dict]]]:
    path = sts_path(lang)
    rows = read_jsonl(path)
    problems = []
    for lineno, obj in rows:
        keys = set(obj)
        if keys != {"sentence1", "sentence2", "score"}:
            problems.append(
                f"{_where(path, lineno)}: keys {sorted(keys)}, expected ['score', 'sentence1', 'sentence2']"
            )
            continue
        for key in ("sentence1", "sentence2"):
            if not isinstance(obj[key], str):
                problems.append(f"{_where(path, lineno)}: {key} is {type(obj[key]).__name__}, not a string")
        score = obj["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            problems.append(f"{_where(path, lineno)}: score {score!r} is not a number")
    if problems:
        pytest.fail("malformed STS rows:" + _show(problems))
    return path, rows


def load_corpus(lang: str) -> tuple[Path, list[tuple[int, dict]]]:
    path = retrieval_dir(lang) / "corpus.jsonl"
    rows = read_jsonl(path)
    problems = []
    for lineno, obj in rows:
        keys = set(obj)
        if keys != {"_id", "title", "text"}:
            problems.append(f"{_where(path, lineno)}: keys {sorted(keys)}, expected ['_id', 'text', 'title']")
            continue
        for key in ("_id", "title", "text"):
            if not isinstance(obj[key], str):
                problems.append(f"{_where(path, lineno)}: {key} is {type(obj[key]).__name__}, not a string")
    if problems:
        pytest.fail("malformed corpus rows:" + _show(problems))
    return path, rows


def load_queries(lang: str) -> tuple[Path, list[tuple[int, dict]]]:
    path = retrieval_dir(lang) / "queries.jsonl"
    rows = read_jsonl(path)
    problems = []
    for lineno, obj in rows:
        keys = set(obj)
        if keys != {"_id", "text"}:
            problems.append(f"{_where(path, lineno)}: keys {sorted(keys)}, expected ['_id', 'text']")
            continue
        for key in ("_id", "text"):
            if not isinstance(obj[key], str):
                problems.append(f"{_where(path, lineno)}: {key} is {type(obj[key]).__name__}, not a string")
    if problems:
        pytest.fail("malformed query rows:" + _show(problems))
    return path, rows


def load_qrels(lang: str) -> tuple[Path, list[str], list[tuple[int, str, str, int]]]:
    """Return (path, header fields, [(lineno, query_id, corpus_id, score)])."""
    path = retrieval_dir(lang) / "qrels.tsv"
    _require_file(path)
    with path.open(encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # trailing newline
    if not lines:
        pytest.fail(f"{_rel(path)}: file is empty (expected the header line {QRELS_HEADER})")
    header = lines[0].rstrip("\r").split("\t")
    rows = []
    problems = []
    for lineno, line in enumerate(lines[1:], 2):
        line = line.rstrip("\r")
        if not line.strip():
            problems.append(f"{_where(path, lineno)}: blank line")
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            problems.append(f"{_where(path, lineno)}: {len(fields)} tab-separated fields, expected 3: {line!r}")
            continue
        qid, did, raw = fields
        if not re.fullmatch(r"-?\d+", raw.strip()):
            problems.append(f"{_where(path, lineno)}: score {raw!r} is not an integer")
            continue
        rows.append((lineno, qid, did, int(raw)))
    if problems:
        pytest.fail("malformed qrels lines:" + _show(problems))
    return path, header, rows


# ------------------------------------------------------------------------ STS tests


@pytest.mark.parametrize("lang", LANGS)
def test_sts_count(lang):
    path, rows = load_sts(lang)
    assert len(rows) >= MIN_STS_PAIRS, f"{_rel(path)}: {len(rows)} pairs, expected at least {MIN_STS_PAIRS}"


@pytest.mark.parametrize("lang", LANGS)
def test_sts_scores_in_range(lang):
    path, rows = load_sts(lang)
    bad = [
        f"{_where(path, lineno)}: score {obj['score']!r} outside [0, 5]"
        for lineno, obj in rows
        if not (math.isfinite(obj["score"]) and 0.0 <= obj["score"] <= 5.0)
    ]
    assert not bad, "STS scores out of range:" + _show(bad)


@pytest.mark.parametrize("lang", LANGS)
def test_sts_score_distribution_covers_every_bin(lang):
    path, rows = load_sts(lang)
    counts = Counter(_score_bin(obj["score"]) for _, obj in rows if 0.0 <= obj["score"] <= 5.0)
    labels = ["[0,1)", "[1,2)", "[2,3)", "[3,4)", "[4,5]"]
    short = [
        f"bin {labels[b]} has {counts.get(b, 0)} pairs, expected at least {MIN_PAIRS_PER_BIN}"
        for b in range(5)
        if counts.get(b, 0) < MIN_PAIRS_PER_BIN
    ]
    dist = ", ".join(f"{labels[b]}={counts.get(b, 0)}" for b in range(5))
    assert not short, f"{_rel(path)}: score distribution too uneven ({dist}):" + _show(short)


@pytest.mark.parametrize("lang", LANGS)
def test_sts_no_empty_sentences(lang):
    path, rows = load_sts(lang)
    bad = [
        f"{_where(path, lineno)}: {key} is empty"
        for lineno, obj in rows
        for key in ("sentence1", "sentence2")
        if not obj[key].strip()
    ]
    assert not bad, "empty STS sentences:" + _show(bad)


@pytest.mark.parametrize("lang", LANGS)
def test_sts_no_duplicate_pairs(lang):
    path, rows = load_sts(lang)
    first_seen: dict[tuple[str, str], int] = {}
    problems = []
    for lineno, obj in rows:
        a, b = _norm(obj["sentence1"]), _norm(obj["sentence2"])
        if a == b:
            problems.append(f"{_where(path, lineno)}: sentence1 and sentence2 are identical")
        key = (a, b) if a <= b else (b, a)  # (a, b) and (b, a) are the same pair
        if key in first_seen:
            problems.append(f"{_where(path, lineno)}: duplicates the pair on line {first_seen[key]}")
        else:
            first_seen[key] = lineno
    assert not problems, "duplicate STS pairs:" + _show(problems)


def test_sts_chinese_is_mostly_cjk():
    path, rows = load_sts("zh")
    texts = [(lineno, obj[key]) for lineno, obj in rows for key in ("sentence1", "sentence2")]
    _assert_mostly_cjk(path, texts)


def test_sts_english_has_no_cjk():
    path, rows = load_sts("en")
    bad = [
        f"{_where(path, lineno)}: {key} contains CJK characters: {obj[key]!r}"
        for lineno, obj in rows
        for key in ("sentence1", "sentence2")
        if _letters(obj[key])[0]
    ]
    assert not bad, "CJK text in the English STS file:" + _show(bad)


# ------------------------------------------------------------------ retrieval tests


@pytest.mark.parametrize("lang", LANGS)
def test_retrieval_counts(lang):
    cpath, corpus = load_corpus(lang)
    qpath, queries = load_queries(lang)
    assert len(corpus) >= MIN_PASSAGES, f"{_rel(cpath)}: {len(corpus)} passages, expected at least {MIN_PASSAGES}"
    assert len(queries) >= MIN_QUERIES, f"{_rel(qpath)}: {len(queries)} queries, expected at least {MIN_QUERIES}"


@pytest.mark.parametrize("lang", LANGS)
def test_retrieval_ids_unique_and_well_formed(lang):
    problems = []
    for path, rows, pattern in (
        (*load_corpus(lang), rf"{lang}-d\d{{4}}"),
        (*load_queries(lang), rf"{lang}-q\d{{3}}"),
    ):
        first_seen: dict[str, int] = {}
        for lineno, obj in rows:
            _id = obj["_id"]
            if not re.fullmatch(pattern, _id):
                problems.append(f"{_where(path, lineno)}: id {_id!r} does not match {pattern!r}")
            if _id in first_seen:
                problems.append(f"{_where(path, lineno)}: id {_id!r} already used on line {first_seen[_id]}")
            else:
                first_seen[_id] = lineno
    assert not problems, "bad retrieval ids:" + _show(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_retrieval_no_empty_or_duplicate_text(lang):
    problems = []
    for path, rows, fields in (
        (*load_corpus(lang), ("title", "text")),
        (*load_queries(lang), ("text",)),
    ):
        first_seen: dict[str, int] = {}
        for lineno, obj in rows:
            for key in fields:
                if not obj[key].strip():
                    problems.append(f"{_where(path, lineno)}: {key} is empty")
            text = _norm(obj["text"])
            if text in first_seen:
                problems.append(f"{_where(path, lineno)}: same text as line {first_seen[text]}")
            elif text:
                first_seen[text] = lineno
    assert not problems, "empty or duplicate retrieval text:" + _show(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_qrels_header(lang):
    path, header, _ = load_qrels(lang)
    assert header == QRELS_HEADER, f"{_where(path, 1)}: header {header}, expected {QRELS_HEADER} (tab-separated)"


@pytest.mark.parametrize("lang", LANGS)
def test_qrels_references(lang):
    path, _, rows = load_qrels(lang)
    query_ids = {obj["_id"] for _, obj in load_queries(lang)[1]}
    corpus_ids = {obj["_id"] for _, obj in load_corpus(lang)[1]}
    problems = []
    first_seen: dict[tuple[str, str], int] = {}
    for lineno, qid, did, score in rows:
        if qid not in query_ids:
            problems.append(f"{_where(path, lineno)}: query-id {qid!r} is not in queries.jsonl")
        if did not in corpus_ids:
            problems.append(f"{_where(path, lineno)}: corpus-id {did!r} is not in corpus.jsonl")
        if score not in ALLOWED_QREL_SCORES:
            problems.append(f"{_where(path, lineno)}: score {score}, expected one of {sorted(ALLOWED_QREL_SCORES)}")
        if (qid, did) in first_seen:
            problems.append(f"{_where(path, lineno)}: ({qid}, {did}) already judged on line {first_seen[qid, did]}")
        else:
            first_seen[qid, did] = lineno
    assert not problems, "bad qrels lines:" + _show(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_every_query_has_relevant_passages(lang):
    qpath, queries = load_queries(lang)
    _, _, rows = load_qrels(lang)
    judged: dict[str, list[int]] = defaultdict(list)
    for _, qid, _, score in rows:
        if score > 0:
            judged[qid].append(score)
    problems = []
    for lineno, obj in queries:
        scores = judged.get(obj["_id"], [])
        if not scores:
            problems.append(f"{_where(qpath, lineno)}: query {obj['_id']!r} has no relevant passage in qrels.tsv")
        elif 2 not in scores:
            problems.append(f"{_where(qpath, lineno)}: query {obj['_id']!r} has no passage with score 2 (answers it)")
        elif len(scores) > MAX_RELEVANT_PER_QUERY:
            problems.append(
                f"{_where(qpath, lineno)}: query {obj['_id']!r} has {len(scores)} relevant passages, "
                f"expected at most {MAX_RELEVANT_PER_QUERY}"
            )
    assert not problems, "queries without proper judgements:" + _show(problems)


def test_retrieval_chinese_is_mostly_cjk():
    cpath, corpus = load_corpus("zh")
    qpath, queries = load_queries("zh")
    _assert_mostly_cjk(cpath, [(lineno, obj["title"] + obj["text"]) for lineno, obj in corpus])
    _assert_mostly_cjk(qpath, [(lineno, obj["text"]) for lineno, obj in queries])


def test_retrieval_english_has_no_cjk():
    problems = []
    for path, rows, fields in (
        (*load_corpus("en"), ("title", "text")),
        (*load_queries("en"), ("text",)),
    ):
        for lineno, obj in rows:
            for key in fields:
                if _letters(obj[key])[0]:
                    problems.append(f"{_where(path, lineno)}: {key} contains CJK characters")
    assert not problems, "CJK text in the English retrieval files:" + _show(problems)


def _assert_mostly_cjk(path: Path, texts: list[tuple[int, str]]) -> None:
    """Every text has CJK; few lines are mostly Latin letters; the file as a whole is CJK."""
    no_cjk = []
    latin_heavy = []
    total_cjk = total_other = 0
    for lineno, text in texts:
        cjk, other = _letters(text)
        total_cjk += cjk
        total_other += other
        if cjk == 0:
            no_cjk.append(f"{_where(path, lineno)}: no Chinese characters in {text!r}")
        elif cjk / (cjk + other) < MIN_CJK_SHARE_OF_LETTERS:
            latin_heavy.append(f"{_where(path, lineno)}: only {cjk}/{cjk + other} letters are CJK in {text!r}")
    assert not no_cjk, "Chinese data without Chinese text:" + _show(no_cjk)
    allowed = int(MAX_LATIN_HEAVY_LINE_FRACTION * len(texts))
    assert len(latin_heavy) <= allowed, (
        f"{_rel(path)}: {len(latin_heavy)} of {len(texts)} texts are mostly Latin letters "
        f"(at most {allowed} allowed):" + _show(latin_heavy)
    )
    share = total_cjk / max(1, total_cjk + total_other)
    assert share >= 0.8, f"{_rel(path)}: only {share:.0%} of letters are CJK, expected at least 80%"
