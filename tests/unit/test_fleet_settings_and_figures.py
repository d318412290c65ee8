"""A fleet as users ask for it and as the judge reads it, without a server: options and model tables, each worker's
place, the gateway's command line (parsed by smg's own parser, with no key on it), the figures and their sentences."""

import math

import numpy as np
import pytest

from pytest_embedeval.facts.hardware import HardwareProfile
from pytest_embedeval.judge.rules import Figure, Judge, Policy
from pytest_embedeval.measure.markers.embed_fleet import balance_figure
from pytest_embedeval.run import settings as settings_module
from pytest_embedeval.serve import placement
from pytest_embedeval.serve.fleet import Fleet
from pytest_embedeval.serve.gateway import Gateway
from pytest_embedeval.serve.serving import server_for
from pytest_embedeval.store import Store


def read(tmp_path, **options):
    values = {"embed_model": ["minilm"], "embed_server_arg": [], **options}
    ini = {"embed_model": [], "embed_device": "cpu", "embed_boot_timeout": "600", "embed_request_timeout": "120",
           "embed_baselines": "baselines"}
    return settings_module.read(lambda name: values.get(name), ini.get, tmp_path)


def test_workers_from_the_option_build_a_fleet_of_workers_behind_one_gateway_with_one_key(tmp_path, monkeypatch):
    monkeypatch.setattr("pytest_embedeval.facts.hardware.usable_cores", lambda: 2)
    fleet = server_for(read(tmp_path).specs[0], read(tmp_path, embed_workers=2), tmp_path)
    assert isinstance(fleet, Fleet) and len(fleet.workers) == 2
    assert [w.cpu_threads for w in fleet.workers] == [1, 1]  # two workers share two cores, a thread each
    assert fleet.gateway.worker_urls == [w.url for w in fleet.workers]
    assert {w.api_key for w in fleet.workers} == {fleet.gateway.api_key} and fleet.api_key  # the key on every hop
    assert fleet.deployment() == "--fleet-workers 2 --fleet-policy round_robin"
    assert fleet.gateway.api_key not in " ".join(fleet.gateway.argv)  # it travels through a pipe
    one = server_for(read(tmp_path).specs[0], read(tmp_path), tmp_path)
    assert not isinstance(one, Fleet)  # the default: one server, no gateway


def test_the_gateways_command_line_is_one_smgs_own_parser_accepts(tmp_path):
    from smg.launch_router import parse_router_args

    gateway = Gateway(["http://127.0.0.1:30001", "http://127.0.0.1:30002"], "sk-x", tmp_path / "g.log",
                      policy="power_of_two")
    parsed = parse_router_args([*gateway.argv[3:], "--api-key", "sk-x"])  # after python -m MODULE
    assert parsed.worker_urls == gateway.worker_urls and parsed.policy == "power_of_two"
    assert (parsed.host, parsed.port, parsed.api_key) == ("127.0.0.1", gateway.port, "sk-x")


def test_a_models_table_sets_its_fleet_and_the_option_wins(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.embedeval.models.wide]\nmodel = "sentence-transformers/all-MiniLM-L6-v2"\ndimensions = 384\n'
        'max_tokens = 256\nworkers = 3\ngateway_policy = "least_load"\n')
    spec = read(tmp_path, embed_model=["wide"]).specs[0]
    assert (spec.workers, spec.gateway_policy) == (3, "least_load")
    fleet = server_for(spec, read(tmp_path, embed_model=["wide"]), tmp_path)
    assert len(fleet.workers) == 3 and fleet.gateway.policy == "least_load"
    chosen = server_for(spec, read(tmp_path, embed_model=["wide"], embed_workers=2,
                                   embed_gateway_policy="random"), tmp_path)
    assert len(chosen.workers) == 2 and chosen.gateway.policy == "random"


@pytest.mark.parametrize("field, value, message", [
    ("workers", "0", "field 'workers' must be a positive integer"),
    ("gateway_policy", '"fastest"', "field 'gateway_policy' must be one of round_robin, random, power_of_two"),
])
def test_a_bad_fleet_field_in_a_models_table_names_file_field_and_choices(tmp_path, field, value, message):
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.embedeval.models.wide]\nmodel = "x/y"\ndimensions = 384\nmax_tokens = 256\n{field} = {value}\n')
    with pytest.raises(settings_module.SettingsError) as caught:
        read(tmp_path, embed_model=["wide"])
    assert "pyproject.toml: [tool.embedeval.models.wide]" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize("options, message", [
    ({"embed_workers": 0}, "--embed-workers 0: give the number of SGLang workers to boot, 1 or more"),
    ({"embed_workers": 2, "embed_url": "http://127.0.0.1:30000"},
     "--embed-url tests one that is already running (point it at the gateway: the plugin asks it for its workers)"),
])
def test_fleet_options_that_cannot_be_met_are_refused_with_the_fix(tmp_path, options, message):
    with pytest.raises(settings_module.SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read(tmp_path, **options)


def test_on_gpus_each_worker_gets_its_own_and_too_few_are_refused_with_the_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(placement, "gpu_count", lambda: 4)
    settings = read(tmp_path, embed_workers=2)
    assert [a.gpus for a in placement.fleet_placement(settings, "cuda", 2)] == [(0,), (1,)]
    with pytest.raises(placement.NoRoomForTwo, match=r"a fleet of 5 workers needs 5 GPUs, one per worker, and this "
                                                     r"run may use 4 \(all NVML sees\)"):
        placement.fleet_placement(settings, "cuda", 5)
    # Under pytest-xdist each xdist worker's fleet has GPUs of its own.
    assert [a.gpus for a in placement.fleet_placement(settings, "cuda", 2, xdist_worker="gw1")] == [(2,), (3,)]
    with pytest.raises(placement.NoRoomForTwo, match=r"for xdist worker gw2 \(each has fleets of its own\)"):
        placement.fleet_placement(settings, "cuda", 2, xdist_worker="gw2")


def samples(median_ms: float, count: int = 100, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median_ms / 1000 * (1 + 0.03 * rng.standard_normal(count)))


NAMES = {"http://w1": "worker 1 of 2 (http://w1)", "http://w2": "worker 2 of 2 (http://w2)"}


def judged(figure, tmp_path):
    """The judge's verdict on a fleet figure, with no stored baselines: fleet figures need none."""
    profile = HardwareProfile("cpu-2c", "sglang", "float32", "--fleet-workers 2 --fleet-policy round_robin", False)
    return Judge(Store(tmp_path).baselines, Policy()).verdict(
        "minilm", Figure(f"{figure.metric} ({figure.shape})", figure.value, figure.interval, figure.note, figure.pair,
                         figure.missing, figure.subject), profile, half_precision=False)


def test_a_worker_a_fifth_slower_fails_the_balance_figure_which_names_it(tmp_path):
    by_worker = {"http://w1": samples(48.0, seed=1), "http://w2": samples(48.0 * 1.2, seed=2)}
    verdict = judged(balance_figure(by_worker, NAMES, "note", "batch 1 x 128 tokens"), tmp_path)
    assert verdict.failing and verdict.measured == pytest.approx(1.2, rel=0.03)
    assert verdict.reason().startswith("fleet_balance_ratio (batch 1 x 128 tokens) regressed (worker 2 of 2 "
                                       "(http://w2)): the slowest worker 57.")
    assert "vs the other workers 48." in verdict.reason()


def test_equal_workers_pass_the_balance_figure(tmp_path):
    by_worker = {"http://w1": samples(48.0, seed=3), "http://w2": samples(48.0, seed=4)}
    verdict = judged(balance_figure(by_worker, NAMES, "note", "batch 1 x 128 tokens"), tmp_path)
    assert verdict.outcome.value == "pass" and not verdict.failing


def test_a_worker_the_gateway_never_used_fails_the_balance_figure_naming_it(tmp_path):
    figure = balance_figure({"http://w1": samples(48.0), "http://w2": []}, NAMES, "note", "batch 1 x 128 tokens")
    assert math.isinf(figure.value) and figure.subject == "worker 2 of 2 (http://w2)"
    assert judged(figure, tmp_path).failing
