"""Which hardware a measurement came from: the key a baseline is stored and looked up under.

Keys are coarse on purpose ("a100-80gb-x1", "cpu-2c"): an A100 80GB in SXM or PCIe form is the
same baseline class, and the exact model and driver are kept as provenance beside the figures.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass

ANY = "any"
UNKNOWN = "unknown"  # a server on another machine (--embed-url) whose hardware nobody named

# Form factors and memory kinds that do not change which baseline applies.
_NOISE_WORDS = {"nvidia", "geforce", "tesla", "sxm", "sxm2", "sxm4", "sxm5", "pcie", "hbm3", "hbm3e", "nvl", "mig"}


@dataclass(frozen=True)
class HardwareProfile:
    """Where and how a server ran: every part of a figure's identity that is not the figure's own shape."""

    hardware: str  # the server's share: "a100-80gb-x1" (the GPUs it uses), "cpu-2c-amd-epyc"; UNKNOWN
    engine: str  # "sglang"
    dtype: str  # as the server was configured: "float32", "bfloat16", "auto"
    deployment: str = ""  # the server flags that change results ("--quantization fp8 --tp-size 2"); "" = none
    paired: bool = False  # it shared the machine with a paired incumbent server (half the cores, or GPU memory)

    def __str__(self) -> str:
        parts = [self.hardware, self.engine, self.dtype, self.deployment, "paired" if self.paired else ""]
        return " / ".join(part for part in parts if part)


def gpu_hardware_id(names: list[str]) -> str:
    """``["NVIDIA A100-SXM4-80GB"]`` -> ``"a100-80gb-x1"``."""
    words = [w for w in re.split(r"[^a-z0-9]+", names[0].lower()) if w and w not in _NOISE_WORDS]
    return f"{'-'.join(words)}-x{len(names)}"


def cpu_hardware_id() -> str:
    """``cpu-2c-intel-xeon``: the cores this process may use and the processor's family, since an AMD EPYC
    and an Intel Xeon with two cores each time the same server 15% apart."""
    return f"cpu-{usable_cores()}c-{cpu_family(cpu_model())}"


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as taskset or a container sets it), not the host's."""
    if hasattr(os, "sched_getaffinity"):  # not on macOS
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_family(model: str) -> str:
    """``Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz`` -> ``intel-xeon-platinum-8375c``."""
    text = re.sub(r"\((r|tm)\)|@.*$|\bcpu\b|\bprocessor\b|\b\d+-core\b", " ", model.lower())
    words = re.findall(r"[a-z0-9]+", text)
    return "-".join(words[:4]) or "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names(indexes: list[int] | None = None) -> tuple[list[str], str | None]:
    """Names of the GPUs (all, or those at ``indexes``) and the driver version; ([], None) without NVML."""
    from .nvml import nvml

    with nvml() as lib:
        if lib is None:
            return [], None
        chosen = indexes if indexes is not None else range(lib.nvmlDeviceGetCount())
        names = [lib.nvmlDeviceGetName(lib.nvmlDeviceGetHandleByIndex(i)) for i in chosen]
        return [n.decode() if isinstance(n, bytes) else n for n in names], lib.nvmlSystemGetDriverVersion()


def visible_gpu_indexes() -> list[int] | None:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    return [int(i) for i in visible.split(",") if i.strip().isdigit()]


def describe(device: str, gpus: tuple[int, ...] | None = None, uses: int | None = None) -> tuple[str, str]:
    """(hardware key, machine description) for the device a server runs on: its share of the machine, the GPUs
    pinned to it, else the first ``uses`` visible ones (SGLang takes as many as tp x dp x pp)."""
    if device != "cpu":
        names, driver = gpu_names(list(gpus) if gpus is not None else visible_gpu_indexes())
        if gpus is None and uses:
            names = names[:uses]
        if names:
            return gpu_hardware_id(names), f"{names[0]} x{len(names)}, driver {driver}"
    return cpu_hardware_id(), f"{cpu_model()} ({usable_cores()} cores)"
