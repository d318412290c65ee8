"""--embed-mteb-results: mteb's own result files for every accuracy task, which mteb's own tools load."""

import json

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

def test_accuracy_results_are_written_where_mteb_loads_them(pytester, standin, user_sts_suite):
    # A STAND-IN server: this test is about the files, not about the vectors.
    import mteb

    server = standin()
    result = pytester.runpytest(f"--embed-url={server.url}", "--embed-model=minilm", "--embed-mteb-results=results",
                                "--embed-report=report.json")
    result.assert_outcomes(passed=1)
    loaded = mteb.cache.ResultCache(pytester.path / "results").load_results(
        models=["embedeval/minilm"], include_remote=False, require_model_meta=False)
    (model,) = loaded.model_results
    (task,) = model.task_results
    (verdict,) = [v for v in json.loads((pytester.path / "report.json").read_text())["models"][0]["verdicts"]
                  if v["metric"] == "data:ours"]
    assert task.task_name == "ours" and 100 * task.get_score() == pytest.approx(verdict["measured"])
