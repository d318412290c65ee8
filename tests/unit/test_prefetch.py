"""`embedeval prefetch`: it refuses to run offline, and the shipped tasks, files in the package, need no download."""

from pytest_embedeval.cli import main as embedeval


def test_prefetch_refuses_to_run_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert embedeval(["prefetch", "--tasks", "cmteb-sts"]) == 2
    assert "unset HF_HUB_OFFLINE" in capsys.readouterr().err


def test_prefetch_skips_the_tasks_read_from_files(monkeypatch, capsys):
    # The shipped tasks are files in the package: nothing to download, so this reaches no network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert embedeval(["prefetch", "--tasks", "embedeval"]) == 0
    assert "prefetch" not in capsys.readouterr().out
