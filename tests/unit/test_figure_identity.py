"""A figure knows what it measured: the flags that change results are its deployment, in one spelling; its GPU count
is the server's share; and a server on another machine has no hardware until it is named."""

import textwrap
from types import SimpleNamespace

import pytest

from pytest_embedeval.facts.deployment import from_args, from_server_info, gpu_count
from pytest_embedeval.facts.hardware import UNKNOWN, HardwareProfile
from pytest_embedeval.judge.rules import Figure, Judge, Policy
from pytest_embedeval.run.record import where_it_runs
from pytest_embedeval.store.baselines import BaselineStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_the_flags_that_change_results_are_the_deployment_in_one_spelling():
    assert from_args(["--tp", "2", "--quantization=fp8", "--log-level", "info", "--enable-metrics"]) == \
        "--quantization fp8 --tp-size 2"
    assert from_args(["--tensor-parallel-size", "2"]) == from_args(["--tp-size=2"])
    assert from_args([]) == ""
    # A running server's report: what the plugin gives every CPU server it boots is no deployment of the user's.
    cpu = ["--device", "cpu", "--attention-backend", "torch_native"]
    assert from_server_info({"attention_backend": "torch_native", "tp_size": 1}, cpu) == ""
    assert from_server_info({"attention_backend": "triton", "tp_size": 2, "quantization": "fp8"}, cpu) == \
        "--attention-backend triton --quantization fp8 --tp-size 2"
    assert gpu_count("--dp-size 2 --tp-size 2") == 4 and gpu_count("") == 1


def test_the_gpu_count_in_the_key_is_the_servers_share_not_every_visible_gpu(monkeypatch):
    from pytest_embedeval.facts import hardware

    monkeypatch.setattr(hardware, "gpu_names", lambda indexes=None: (["NVIDIA H100 80GB HBM3"] * 8, "580.1"))
    assert hardware.describe("cuda", None, uses=2)[0] == "h100-80gb-x2"
    assert hardware.describe("cuda", None, uses=1)[0] == "h100-80gb-x1"


def test_a_server_on_another_machine_has_no_hardware_until_it_is_named(tmp_path):
    remote = SimpleNamespace(process=None, url="http://10.0.0.5:30000", device="cpu")
    assert where_it_runs(remote, "")[0] == UNKNOWN
    local = SimpleNamespace(process=None, url="http://127.0.0.1:30000", device="cpu", gpus=None)
    assert where_it_runs(local, "")[0].startswith("cpu-")

    (tmp_path / "m.toml").write_text(textwrap.dedent("""
        model = "m"
        [profiles.p]
        hardware = "cpu-2c-amd-epyc"
        engine = "sglang"
        dtype = "float32"
        source = "measured"
        date = "2026-12-01"
        [profiles.p.metrics]
        "latency_p50_ms (batch 1 x 128 tokens)" = 30.0
    """))
    judge = Judge(BaselineStore(tmp_path), Policy(update=True))
    here = HardwareProfile(UNKNOWN, "sglang", "float32")
    verdict = judge.verdict("m", Figure("latency_p50_ms (batch 1 x 128 tokens)", 31.0), here, half_precision=False)
    assert "name it with --embed-hardware KEY" in verdict.reason()
    change, = judge.changes([verdict], here, BaselineStore(tmp_path).for_model("m"))
    assert change.refused and "unknown hardware" in change.action
