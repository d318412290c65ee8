"""The software and hardware a run came from, for the JSON report: enough to reproduce or explain it."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from .. import __version__
from .nvml import nvml
from .hardware import cpu_model, gpu_names

PACKAGES = ("sglang", "torch", "transformers", "sentence-transformers", "mteb", "openai", "numpy", "nvidia-ml-py")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def collect() -> dict:
    names, driver = gpu_names()
    cuda = None
    with nvml() as lib:
        if lib is not None:
            cuda_version = lib.nvmlSystemGetCudaDriverVersion()
            cuda = f"{cuda_version // 1000}.{cuda_version % 1000 // 10}"
    return {
        "plugin": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "gpus": names,
        "gpu_driver": driver,
        "cuda_driver": cuda,
        "packages": {name: _version(name) for name in PACKAGES},
    }
