"""A fleet on the 2-core machine: two minilm workers (one thread each) behind the real gateway (smg), booted by the
plugin or met at --embed-url; a worker killed mid-run, a worker slowed by a hop, pytest killed with -9, SIGTERM or Ctrl-C."""

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.serve.gateway import Gateway
from pytest_embedeval.serve.sglang import SGLangServer
from support.sessions import processes_in_sessions
from support.slow_hop import SlowHop

ROOT = Path(__file__).parents[2]
KEY = "sk-fleet-test-4b1d"

FLEET_TEST = '''
import pytest

@pytest.mark.embed_fleet(requests=60, warmup=10)
def test_fleet():
    pass
'''


CLIENTS_TEST = '''
import pytest

@pytest.mark.embed_throughput(batch_size=4, tokens=32, concurrency=4, requests=32, processes=2)
def test_from_two_client_processes():
    pass
'''


def test_the_example_suite_passes_through_a_booted_fleet_with_per_worker_figures(pytester):
    pytester.makepyfile(test_fleet=FLEET_TEST, test_clients=CLIENTS_TEST)
    shutil.copy(ROOT / "examples" / "test_embedding_server.py", pytester.path)
    result = pytester.runpytest_subprocess("--embed-model=minilm", "--embed-workers=2", "--embed-report=run.json",
                                           timeout=900)
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*2 workers behind SGLang's gateway*",
                                 "*embedeval: minilm, the fleet (2 workers behind the gateway)*",
                                 "*fleet_balance_ratio (batch 1 x 128 tokens)*pass*",
                                 "*gateway_overhead_ratio (batch 1 x 128 tokens)*pass*"])
    (model,) = json.loads((pytester.path / "run.json").read_text())["models"]
    assert "--fleet-workers 2 --fleet-policy round_robin" in model["profile"]["deployment"]
    assert len(model["server"]["workers"]) == 2 and model["server"]["gateway"]["software"].startswith("smg 1.13")
    verdicts = {v["shape"] and f"{v['metric']} ({v['shape']})" or v["metric"]: v for v in model["verdicts"]}
    for worker in (1, 2):
        figure = verdicts[f"latency_p50_ms (batch 1 x 128 tokens, worker {worker} of 2)"]
        assert figure["subject"].startswith(f"worker {worker} of 2 (http://127.0.0.1:")
        assert "30 of 60 requests (50%)" in figure["note"]  # round robin
    overhead = verdicts["gateway_overhead_ratio (batch 1 x 128 tokens)"]
    print(f"gateway overhead {overhead['measured']:.3f}x, CI {overhead['interval']}, "
          f"balance {verdicts['fleet_balance_ratio (batch 1 x 128 tokens)']['measured']:.3f}x")
    assert overhead["pair"][1] > overhead["pair"][0] * 0.9  # through the gateway is never far faster than direct
    assert verdicts["failed_requests_percent"]["measured"] == 0
    clients = verdicts["throughput_requests_per_s (batch 4 x 32 tokens, concurrency 4, 2 client processes)"]
    assert clients["measured"] > 0 and "client: 2 processes, " in clients["note"]  # what the client itself spent


KILLED_WORKER = '''
import os, signal, time

def test_a_worker_dies(embed_server, embed_client):
    victim = embed_server.workers[1].process
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(30)
    for _ in range(10):  # the gateway fails over to the worker that is left
        assert len(embed_client.embed(["still served"])) == 1

def test_after_it(embed_client):
    assert len(embed_client.embed(["still served"])) == 1
'''


def test_a_worker_killed_mid_run_fails_the_test_it_died_in_and_names_it(pytester):
    pytester.makepyfile(test_killed=KILLED_WORKER)
    result = pytester.runpytest_subprocess("--embed-model=minilm", "--embed-workers=2", timeout=600)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_a_worker_dies*_", "*dead_workers regressed (worker 2 of 2 (http://127.0.0.1:*) was killed by signal 9)*"])
    assert "test_after_it" not in result.stdout.str().split("short test summary")[1]  # named once, where it died


PIDS_THEN_WAIT = '''
import json, os, time
from pathlib import Path

def test_wait(embed_server):
    Path(os.environ["FLEET_PIDS"]).write_text(json.dumps(embed_server.root_pids()))
    time.sleep(600)
'''


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["kill -9", "SIGTERM", "Ctrl-C"])
def test_pytest_killed_or_interrupted_leaves_no_process_of_the_fleet(pytester, inner_run, monkeypatch, sig):
    pytester.makepyfile(test_wait=PIDS_THEN_WAIT)
    pids = pytester.path / "pids.json"
    monkeypatch.setenv("FLEET_PIDS", str(pids))
    run = inner_run("--embed-model=minilm", "--embed-workers=2", "-s")
    run.wait_for(pids.exists, 600, "the fleet to be ready")
    sessions = set(json.loads(pids.read_text()))  # each a session leader: a worker's or the gateway's
    assert len(sessions) == 3 and processes_in_sessions(sessions)
    run.process.send_signal(sig)  # kill -9: the watchdogs end the fleet; the others: pytest's own teardown
    run.process.wait(60)
    deadline = time.monotonic() + 20
    while (left := processes_in_sessions(sessions)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], [" ".join(p.cmdline())[:120] for p in left]


SLOW_HOP_SECONDS = 0.030


@pytest.fixture
def fleet_with_a_slow_worker(tmp_path):
    """Two real workers, the second reached through a hop that holds each answer 30 ms, behind a real gateway that
    the test, not the plugin, runs. A fixed hold weighs less the slower the minute: 12 ms read 1.24x on a quiet
    machine (46 ms requests) but 1.150x, just inside the 15% tolerance, on a busy one (63 ms); 30 ms still reads 1.3x
    on 100 ms requests."""
    spec = Registry().resolve("minilm")
    workers = [SGLangServer(spec, device="cpu", api_key=KEY, cpu_threads=1, log_path=tmp_path / f"worker{i}.log")
               for i in (1, 2)]
    try:
        for worker in workers:
            worker.launch()
        for worker in workers:
            worker.wait()
        with SlowHop(workers[1].port, delay=SLOW_HOP_SECONDS) as hop:
            gateway = Gateway([workers[0].url, hop.url], KEY, tmp_path / "gateway.log",
                              env=workers[0].environment())
            with gateway.start():
                yield gateway, hop
    finally:
        for worker in workers:
            worker.stop()


def test_a_worker_slowed_by_a_hop_is_named_by_the_balance_figure_through_embed_url(pytester, monkeypatch,
                                                                                      fleet_with_a_slow_worker):
    gateway, hop = fleet_with_a_slow_worker
    pytester.makepyfile(test_fleet=FLEET_TEST)
    monkeypatch.setenv("EMBEDEVAL_API_KEY", KEY)
    result = pytester.runpytest_subprocess("--embed-model=minilm", f"--embed-url={gateway.url}", timeout=600)
    result.assert_outcomes(failed=1)
    # Numbered by URL: the hop's port against the first worker's.
    result.stdout.fnmatch_lines([f"*fleet_balance_ratio (batch 1 x 128 tokens) regressed (worker ? of 2 "
                                 f"({hop.url})): the slowest worker * ms vs the other workers * ms*"])
    assert KEY not in result.stdout.str()
