"""Settings as users give them: ini values checked with a sentence, GPUs shared out to xdist workers."""

import pytest

from pytest_embedeval.run import settings as settings_module
from pytest_embedeval.serve import placement
from pytest_embedeval.serve.serving import server_for
from pytest_embedeval.serve.placement import worker_gpus


@pytest.fixture
def four_gpus(monkeypatch):
    # A faked device count: the assignment is the logic under test, NVML is not.
    monkeypatch.setattr(placement, "gpu_count", lambda: 4)


def test_xdist_workers_on_a_gpu_host_get_one_gpu_each_round_robin(four_gpus):
    assert [worker_gpus(None, f"gw{i}", "cuda") for i in range(5)] == [(0,), (1,), (2,), (3,), (0,)]
    assert worker_gpus((2, 3), "gw1", "cuda") == (3,)
    assert worker_gpus(None, None, "cuda") is None  # a lone run: what CUDA_VISIBLE_DEVICES says
    assert worker_gpus(None, "gw1", "cpu") is None


def test_an_ini_value_that_is_not_a_number_is_a_usage_error_naming_it(pytester):
    pytester.makepyfile("def test_x(embed_model):\n    pass\n")
    result = pytester.runpytest("-o", "embed_boot_timeout=ten", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini value embed_boot_timeout = 'ten': expected a number of seconds, like 600*"])


def read(tmp_path, **options):
    values = {"embed_model": ["minilm"], "embed_server_arg": [], **options}
    ini = {"embed_model": [], "embed_device": "cpu", "embed_boot_timeout": "600", "embed_request_timeout": "120",
           "embed_baselines": "baselines"}
    return settings_module.read(lambda name: values.get(name), ini.get, tmp_path)


def test_allowing_downloads_reaches_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as an earlier test of this session may have left it
    spec = read(tmp_path).specs[0]
    allowed = server_for(spec, read(tmp_path, embed_allow_downloads=True), tmp_path)
    assert "HF_HUB_OFFLINE" not in allowed.environment()
    assert server_for(spec, read(tmp_path), tmp_path).environment()["HF_HUB_OFFLINE"] == "1"


def test_a_hardware_key_that_would_leave_the_store_is_refused(tmp_path):
    with pytest.raises(settings_module.SettingsError, match="--embed-hardware key '../../x' cannot be used"):
        read(tmp_path, embed_hardware="../../x")
