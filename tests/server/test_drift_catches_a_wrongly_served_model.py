"""Drift against stored probe vectors: the correct server passes, a wrongly served model fails.

The wrong servers are real SGLang servers started the way a bad upgrade or a bad flag would:
with the prefix (radix) cache on, and with SGLang's own CLS pooling for a mean-pooled model.
"""

from dataclasses import replace

import pytest

from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.facts.registry import Registry


DRIFT_SUITE = "import pytest\n\n@pytest.mark.embed_drift\ndef test_drift():\n    pass\n"


@pytest.fixture
def recorded(pytester, embed_server):
    """Probe vectors recorded from the correct server into the inner project's baselines/."""
    pytester.makepyfile(DRIFT_SUITE)
    pytester.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm",
                       "--embed-update-baselines").assert_outcomes(passed=1)
    assert list((pytester.path / "baselines" / "vectors" / "minilm").glob("*.npz"))
    return pytester


def test_the_correct_server_passes_its_own_recording(recorded, embed_server):
    result = recorded.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["drift_min_cosine *1.000000 (any-sglang-float32, measured)*pass"])


class RadixCacheOn(SGLangServer):
    @property
    def argv(self):
        return [arg for arg in super().argv if arg != "--disable-radix-cache"]


@pytest.mark.parametrize("wrong", ["radix cache on", "CLS pooling"])
def test_a_wrongly_served_model_fails_the_drift_check_readably(recorded, tmp_path, wrong):
    minilm = Registry().resolve("minilm")
    server = (RadixCacheOn(minilm, device="cpu", log_path=tmp_path / "radix.log") if wrong == "radix cache on"
              else SGLangServer(replace(minilm, pooling="cls"), device="cpu", log_path=tmp_path / "cls.log"))
    with server:
        result = recorded.runpytest(f"--embed-url={server.url}", "--embed-model=minilm")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "drift_min_cosine regressed: measured 0.*, baseline 1.000000 (-0.*, tolerance 0.001; profile 'any-*",
        "measured as  float32 server vs stored vectors; worst: 0.* '*",
    ])
