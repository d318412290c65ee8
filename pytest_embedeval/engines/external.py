"""Pooling fixes delivered through SGLang's external-model package mechanism.

SGLang imports every module of the package named by SGLANG_EXTERNAL_MODEL_PACKAGE and lets their
``EntryClass`` replace its own class for the same architecture. That fixes a pooling mismatch in
pure Python, with no fork of SGLang.
"""

from __future__ import annotations

import json

from ..registry import ModelSpec

PACKAGE = "pytest_embedeval.engines.sglang_models"

# Architecture -> the pooling SGLang's own implementation applies to embedding models.
SGLANG_NATIVE_POOLING = {"BertModel": "cls"}

# (architecture, pooling the model needs) -> this package provides the class.
OVERRIDES = {("BertModel", "mean")}


def architecture(spec: ModelSpec) -> str | None:
    local = spec.local_dir()
    if local is None or not (local / "config.json").is_file():
        return None
    architectures = json.loads((local / "config.json").read_text()).get("architectures") or [None]
    return architectures[0]


def needs_override(spec: ModelSpec) -> bool:
    arch = architecture(spec)
    return SGLANG_NATIVE_POOLING.get(arch, spec.pooling) != spec.pooling and (arch, spec.pooling) in OVERRIDES


def environment_for(spec: ModelSpec) -> dict[str, str]:
    """Variables the server needs so that it pools like the model was trained to."""
    return {"SGLANG_EXTERNAL_MODEL_PACKAGE": PACKAGE} if needs_override(spec) else {}
