"""Model directories made from the embedded MiniLM's files, for the tests of both lanes."""

from pathlib import Path

from pytest_embedeval.facts.registry import embedded_minilm_dir


def copy_of_minilm(directory: Path, config_text: str) -> Path:
    """MiniLM's files (weights linked, not copied) with another config.json."""
    source = embedded_minilm_dir()
    directory.mkdir()
    for entry in source.iterdir():
        if entry.name not in ("config.json", "onnx", "openvino"):
            (directory / entry.name).symlink_to(entry)
    (directory / "config.json").write_text(config_text)
    return directory
