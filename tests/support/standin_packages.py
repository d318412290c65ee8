"""STAND-IN packages: pure-Python wheels of any name and version, written at test time, for offline installs.

A wheel is a zip of the package's modules and a ``NAME-VERSION.dist-info`` folder (METADATA, WHEEL, RECORD and,
when asked, entry_points.txt); writing one takes milliseconds and needs neither a build backend nor an index, so
environments can be built from them with ``pip install --no-index --find-links WHEELDIR``.

``delay_plugin_source`` is the module of ``embedeval-standin-delay``: a plugin of SGLang's own plugin framework
(the ``sglang.srt.plugins`` entry-point group, which SGLang loads in every server process) that holds each
``/v1/embeddings`` answer back by the version's planted delay, so that "which version made our server slower"
has a known answer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path


def wheel_name(name: str, version: str) -> str:
    return f"{_normalised(name)}-{version}-py3-none-any.whl"


def build_wheel(directory: Path, name: str, version: str, modules: dict[str, str],
                entry_points: dict[str, dict[str, str]] | None = None) -> Path:
    """A wheel of ``name`` at ``version`` in ``directory``, holding ``modules`` (path inside the wheel -> source)
    and ``entry_points`` (group -> {name: "module:function"})."""
    dist_info = f"{_normalised(name)}-{version}.dist-info"
    files = dict(modules)
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{dist_info}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: tests/support/standin_packages.py\n"
                                  "Root-Is-Purelib: true\nTag: py3-none-any\n")
    if entry_points:
        files[f"{dist_info}/entry_points.txt"] = "".join(
            f"[{group}]\n" + "".join(f"{key} = {target}\n" for key, target in targets.items()) + "\n"
            for group, targets in entry_points.items())
    record = [f"{path},sha256={_digest(text.encode())},{len(text.encode())}" for path, text in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    path = Path(directory) / wheel_name(name, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for inner, text in files.items():
            wheel.writestr(inner, text)
    return path


def build_module_wheel(directory: Path, name: str, version: str, source: str) -> Path:
    """A wheel whose one module (the package's name with underscores) holds ``source``."""
    return build_wheel(directory, name, version, {f"{_normalised(name)}.py": source})


# -- embedeval-standin-delay: a server-side slowdown, planted in chosen versions ----------------------------

DELAY_PACKAGE = "embedeval-standin-delay"
DELAY_MODULE = "embedeval_standin_delay"
# The embeddings handler every /v1/embeddings request is answered by (sglang 0.5.2x).
EMBEDDINGS_HANDLER = "sglang.srt.entrypoints.openai.serving_embedding.OpenAIServingEmbedding._handle_non_streaming_request"


def delay_plugin_source(version: str, delay_ms: float) -> str:
    return f'''"""STAND-IN {DELAY_PACKAGE} {version}: an SGLang plugin that answers /v1/embeddings {delay_ms} ms late."""

import asyncio

VERSION = "{version}"
DELAY_MS = {delay_ms!r}


async def _late(original, *args, **kwargs):
    await asyncio.sleep(DELAY_MS / 1000)
    return await original(*args, **kwargs)


def register():
    """Called by SGLang's plugin loader in each server process, before the server is built."""
    if DELAY_MS:
        from sglang.srt.plugins.hook_registry import HookRegistry, HookType

        HookRegistry.register("{EMBEDDINGS_HANDLER}", _late, HookType.AROUND)
'''


def build_delay_wheels(directory: Path, delays_ms: dict[str, float]) -> list[Path]:
    """One wheel of ``embedeval-standin-delay`` per version, each planting that version's delay."""
    return [build_wheel(directory, DELAY_PACKAGE, version, {f"{DELAY_MODULE}.py": delay_plugin_source(version, delay)},
                        {"sglang.srt.plugins": {"standin_delay": f"{DELAY_MODULE}:register"}})
            for version, delay in delays_ms.items()]


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
