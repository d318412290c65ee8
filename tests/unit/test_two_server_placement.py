"""Room for two servers: one GPU shared or one each, the CPU's cores halved, an incumbent python that is not there
named, and the options' old names still pairing for one release."""

import pytest

from pytest_embedeval.run import settings as settings_module
from pytest_embedeval.serve.placement import NoRoomForTwo, placement, share_one_gpu
from pytest_embedeval.serve.serving import server_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_two_servers_on_one_gpu_share_what_is_free():
    fraction = share_one_gpu(0, 80e9, 78e9, [4_020_000_000, 326_000_000], ["qwen3-4b", "bge-large-zh"])
    assert fraction == pytest.approx(0.85 / 2 * 78 / 80)


def test_two_servers_that_cannot_fit_one_gpu_are_refused_with_the_numbers():
    with pytest.raises(NoRoomForTwo, match=r"two servers on GPU 0 \(12.0 GB free of 80.0 GB\): each may take 5.1 GB, "
                                           r"but qwen3-4b needs 9.6 GB \(weights 8.0 GB plus 20% for its KV cache\)"):
        share_one_gpu(0, 80e9, 12e9, [4_020_000_000, 4_020_000_000], ["qwen3-4b", "qwen3-4b"])


def paired_settings(tmp_path, **options):
    values = {"embed_model": ["minilm"], "embed_server_arg": [], "embed_incumbent_server_arg": [""], **options}
    ini = {"embed_model": [], "embed_device": "auto", "embed_boot_timeout": "600", "embed_request_timeout": "120",
           "embed_baselines": "baselines"}
    return settings_module.read(lambda name: values.get(name), ini.get, tmp_path)


def test_with_two_gpus_the_incumbent_gets_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr("pytest_embedeval.serve.placement.gpu_count", lambda: 2)
    settings = paired_settings(tmp_path)
    assert placement(settings, "cuda", None) == ((0,), None, None)
    assert placement(settings, "cuda", None, incumbent=True) == ((1,), None, None)


def test_two_servers_sharing_the_cpu_get_half_its_cores_each_and_a_users_own_setting_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    paired = paired_settings(tmp_path, embed_device="cpu")
    spec = paired.specs[0]
    pair = [server_for(spec, paired, tmp_path, incumbent=side) for side in (False, True)]
    assert [server.environment()["OMP_NUM_THREADS"] for server in pair] == ["8", "8"]
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert server_for(spec, paired, tmp_path).environment()["OMP_NUM_THREADS"] == "1"
    # A lone server keeps torch's thread per core: halving it would halve its throughput for nothing.
    lone = paired_settings(tmp_path, embed_device="cpu", embed_incumbent_server_arg=None)
    assert "OMP_NUM_THREADS" not in server_for(spec, lone, tmp_path).environment()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert server_for(spec, paired, tmp_path).environment()["OMP_NUM_THREADS"] == "2"


def test_an_incumbent_python_that_is_not_there_is_named(tmp_path):
    with pytest.raises(settings_module.SettingsError, match="--embed-incumbent-python /nowhere/bin/python: no "
                                                            "executable python there"):
        paired_settings(tmp_path, embed_incumbent_python="/nowhere/bin/python")


def test_the_options_old_names_still_pair_for_one_release_with_a_warning(tmp_path):
    # In 0.1 the incumbent options were --embed-reference-*; a CI file that still says so keeps working.
    with pytest.warns(settings_module.OptionDeprecated, match="--embed-reference-url is deprecated: use "
                                                               "--embed-incumbent-url"):
        settings = paired_settings(tmp_path, embed_incumbent_server_arg=None,
                                   embed_reference_url="http://127.0.0.1:1")
    assert settings.incumbent.url == "http://127.0.0.1:1"
