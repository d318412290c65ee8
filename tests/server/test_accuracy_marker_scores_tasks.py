"""embed_accuracy as users write it, against the real server: a shipped task scored through mteb, their own data a
task with a baseline, and a preset whose data is not cached names the command that fills it."""

import json

from pytest_embedeval.run.record import Run


def test_shipped_sts_is_scored_through_mteb_against_the_server(pytester, embed_server):
    pytester.makepyfile("import pytest\n\n@pytest.mark.embed_accuracy(task='EmbedEvalSTS-en')\ndef test_sts():\n    pass\n")
    result = pytester.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*embed_accuracy: task 1/1 EmbedEvalSTS-en (minilm)*",
                                 "mteb:EmbedEvalSTS-en * 7?.?? points*no baseline"])


def test_the_users_own_sts_file_is_a_task_with_a_baseline(pytester, embed_server):
    # 6 pairs written twice, as a user's file repeats sentences: on a fresh machine this once scored 99.64
    # on update and 99.12 a second later (issue 16), each copy of a sentence getting its own float noise.
    pairs = [("A man is playing a guitar.", "A man plays the guitar.", 4.8),
             ("A man is playing a guitar.", "A woman is slicing onions.", 0.2),
             ("The stock market fell sharply today.", "Shares dropped steeply on Monday.", 3.6),
             ("The stock market fell sharply today.", "A dog runs across the park.", 0.0),
             ("Kids are swimming in the lake.", "Children swim in a lake.", 4.6),
             ("Kids are swimming in the lake.", "The lake is frozen in winter.", 1.2)] * 2
    data = pytester.path / "ours.jsonl"
    data.write_text("\n".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) for a, b, s in pairs))
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.embed_accuracy(task={str(data)!r})\ndef test_ours():\n    pass\n")
    args = (f"--embed-url={embed_server.url}", "--embed-model=minilm")
    pytester.runpytest(*args, "--embed-update-baselines").assert_outcomes(passed=1)
    assert '"data:ours" = ' in (pytester.path / "baselines" / "minilm.toml").read_text()

    result = pytester.runpytest(*args, "--embed-report=run.json")
    result.stdout.fnmatch_lines(["data:ours *points (any-*, measured)*pass"])  # a score: any hardware's profile
    (verdict,) = [v for v in Run.from_json(pytester.path / "run.json").verdicts() if v.metric == "data:ours"]
    # Not "within the tolerance": the same score. Identical sentences get identical vectors, so the
    # order of the similarities, and with it Spearman, no longer depends on float noise.
    assert abs(verdict.measured - verdict.baseline) < 1e-6, verdict  # the store keeps 6 decimals


def test_a_preset_whose_data_is_not_cached_says_which_command_fills_it(pytester, embed_server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile("import pytest\n\n@pytest.mark.embed_accuracy(task='cmteb-sts')\ndef test_cmteb_sts():\n    pass\n")
    result = pytester.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.embed_accuracy: no measurement: *LCQMC*embedeval prefetch --tasks*"])
