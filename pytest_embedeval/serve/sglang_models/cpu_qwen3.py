"""Qwen3 (Qwen3-Embedding) buildable on a plain CPU: the rotary embedding without a GPU kernel.

SGLang 0.5.23 decides, while it constructs each RotaryEmbedding, whether to bind a compiled fallback kernel;
outside its CPU engine (SGLANG_USE_CPU_ENGINE, which needs sgl-kernel's CPU ops, absent from PyPI) it imports
``vllm._custom_ops`` for that and the model cannot even be built. The rotation itself has a pure-torch
implementation in the same class (``forward_native``), which is what a CPU without those kernels should run.

So, only when the model is being built on the CPU (SGLang builds it under ``with torch.device(...)``):
the rotary embeddings are constructed as on SGLang's CPU platform (no kernel is bound), then pinned to
``forward_native``. On any other device this class is SGLang's own, untouched. The class keeps SGLang's name
because the registry matches the ``architectures`` entry of config.json.
"""

from contextlib import contextmanager

import torch
from sglang.srt.layers.rotary_embedding import base as rotary_base
from sglang.srt.models import qwen3


@contextmanager
def _rotary_without_compiled_kernels():
    # The flag only chooses whether __init__ binds the fallback kernel; restoring it keeps the rest of the
    # process (and any other model) on SGLang's own choice.
    saved = rotary_base._is_cpu
    rotary_base._is_cpu = True
    try:
        yield
    finally:
        rotary_base._is_cpu = saved


class Qwen3ForCausalLM(qwen3.Qwen3ForCausalLM):
    def __init__(self, *args, **kwargs):
        if torch.get_default_device().type != "cpu":
            super().__init__(*args, **kwargs)
            return
        with _rotary_without_compiled_kernels():
            super().__init__(*args, **kwargs)
        for module in self.modules():
            if isinstance(module, rotary_base.RotaryEmbedding):
                # SGLang's dispatch would pick a GPU or AMX kernel where the host has CUDA or AMX.
                module._forward_method = module.forward_native


EntryClass = [Qwen3ForCausalLM]
