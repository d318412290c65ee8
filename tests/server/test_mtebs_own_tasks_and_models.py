"""mteb's own tasks and models, looked up by name in its registries: presets and task names resolve to their
tasks, each model gets the prompts mteb gives it, mteb's own STS task gets an interval over both its splits,
and a dataset missing offline fails fast with the command that fetches it. Reading mteb's registries takes
seconds, hence this lane."""

import os
import subprocess
import sys

import pytest

from pytest_embedeval.measure.accuracy import (
    CMTEB_STS_TASKS, ServerEncoder, UnknownTarget, evaluate, resolve_target, tasks_from_path,
)
from pytest_embedeval.facts.registry import Registry

from support.clients import RecordingClient
from support.task_data import DOCS, PAIRS, QUERIES


def test_targets_name_presets_mteb_tasks_and_user_data(sts_file):
    assert [t.metadata.name for t in resolve_target("cmteb-sts")] == list(CMTEB_STS_TASKS)
    assert [t.metadata.main_score for t in resolve_target("cmteb-sts")] == ["cosine_spearman"] * 7
    assert len(resolve_target("cmteb")) == 31
    assert [t.metadata.name for t in resolve_target("T2Retrieval")] == ["T2Retrieval"]
    assert [t.metadata.name for t in resolve_target(str(sts_file))] == ["pairs"]
    with pytest.raises(UnknownTarget, match=r"'STS-nope' is not a preset \(embedeval, cmteb-sts, cmteb\)"):
        resolve_target("STS-nope")


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


def test_mtebs_own_sts_task_gets_an_interval_over_both_its_splits():
    # C-MTEB's STSB, its data put in place as a prefilled cache would load it (sentence1, sentence2,
    # score); it is scored on two splits, each resampled within itself.
    import mteb
    from datasets import Dataset, DatasetDict

    task = mteb.get_task("STSB")
    rows = {"sentence1": [a for a, _, _ in PAIRS], "sentence2": [b for _, b, _ in PAIRS],
            "score": [s for _, _, s in PAIRS]}
    task.dataset = DatasetDict({split: Dataset.from_dict(rows) for split in task.metadata.eval_splits})
    task.data_loaded = True
    (task_score,) = evaluate(ServerEncoder(RecordingClient()), [task])
    assert task_score.metric == "mteb:STSB"
    assert task_score.items == len(PAIRS) * len(task.metadata.eval_splits) == 20
    assert task_score.interval is not None


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
