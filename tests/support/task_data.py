"""Scored pairs and a small BEIR folder as users write them, and counts of what the shipped tasks hold: the task
data the accuracy tests of both lanes share."""

import json

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


def non_blank_lines(path):
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def judged_queries(folder):
    """Queries with a relevant document: the ones mteb scores (it drops the others)."""
    rows = [line.split("\t") for line in (folder / "qrels.tsv").read_text().splitlines()[1:] if line.strip()]
    return len({query for query, _, relevance in rows if int(relevance) > 0})
