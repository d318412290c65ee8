"""Fixes delivered through SGLang's external-model package mechanism.

SGLang imports every module of the package named by SGLANG_EXTERNAL_MODEL_PACKAGE and lets their
``EntryClass`` replace its own class for the same architecture. That fixes, in pure Python and with
no fork of SGLang, a pooling mismatch (BERT models trained with mean pooling) and a model SGLang cannot
build on a plain CPU (Qwen3: its rotary embedding imports a GPU kernel, see ``sglang_models.cpu_qwen3``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..facts.registry import ModelSpec

PACKAGE = "pytest_embedeval.serve.sglang_models"

# Architecture -> the pooling SGLang's own implementation applies to embedding models.
SGLANG_NATIVE_POOLING = {"BertModel": "cls"}

# (architecture, pooling the model needs) -> this package provides the class.
OVERRIDES = {("BertModel", "mean")}

# Architectures this package builds on device "cpu" where SGLang's own class cannot be built there.
CPU_BUILDS = {"Qwen3ForCausalLM"}


def architecture(spec: ModelSpec) -> str | None:
    local = spec.local_dir()
    if local is None or not (local / "config.json").is_file():
        return None
    architectures = json.loads((local / "config.json").read_text()).get("architectures") or [None]
    return architectures[0]


def needs_override(spec: ModelSpec, device: str | None = None) -> bool:
    arch = architecture(spec)
    if device == "cpu" and arch in CPU_BUILDS:
        return True
    return SGLANG_NATIVE_POOLING.get(arch, spec.pooling) != spec.pooling and (arch, spec.pooling) in OVERRIDES


def environment_for(spec: ModelSpec, device: str | None = None) -> dict[str, str]:
    """Variables the server needs so that it pools like the model was trained to, and can be built on ``device``."""
    return {"SGLANG_EXTERNAL_MODEL_PACKAGE": PACKAGE} if needs_override(spec, device) else {}


def package_root(folder: Path) -> Path:
    """A folder holding only a link to this package, for another virtualenv's PYTHONPATH."""
    root = Path(folder) / "embedeval-python-path"
    link = root / "pytest_embedeval"
    if not link.exists():
        root.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
    return root
