"""The memory marker: the server tree's memory after load (PSS on a CPU, NVML on a GPU, with the peak under
load); in a pair, the candidate's over the incumbent's after the same load."""

from __future__ import annotations

import math

from .target import Measured, Measurement, NotMeasurable, Target, batches


def embed_memory(target: Target, *, batch_size: int = 32, tokens: int = 128, requests: int = 16) -> Measured:
    """Memory of the server's process tree after load, and (on a GPU) the peak under load."""
    shape = f"after {requests} batches of {batch_size} x {tokens} tokens"
    figures = _memory(target, batches(target, batch_size, tokens, requests), shape, "server")
    if target.incumbent:
        if target.incumbent.server.process is None:  # judged as missing: the candidate's figures stand
            figures.append(Measurement("paired_memory_ratio", math.nan, None, None, shape, missing=(
                "the incumbent's memory cannot be measured: --embed-incumbent-url points at a server this run "
                "did not start")))
        else:
            figures.append(memory_figure(figures[0], _memory(target.incumbent, batches(
                target, batch_size, tokens, requests), shape, "the incumbent server's")[0]))
    return Measured(figures)


def _memory(target: Target, sent: list[list[str]], shape: str, whose: str) -> list[Measurement]:
    from ..memory import PeakSampler, tree_pss_bytes

    server = target.server
    if server.process is None:
        raise NotMeasurable(f"{whose} memory cannot be measured: --embed-url points at a server this run did not "
                            "start")
    if server.device == "cpu":
        target.load(sent, concurrency=4)
        return [Measurement("host_memory_bytes", sum(tree_pss_bytes(pid) for pid in server.root_pids()), None,
                            "PSS of the server's process trees after load (a fleet's: every worker's and the "
                            "gateway's)", shape)]
    from ..gpu import tree_gpu_memory

    members = getattr(server, "workers", [server])  # a fleet's GPU memory is its workers'

    def readings():
        return [tree_gpu_memory(m.process.pid, m.gpu_memory_before, list(m.gpus) if m.gpus is not None else None)
                for m in members]

    def sample():
        return sum(reading.bytes for reading in readings() if reading)

    with PeakSampler(sample, interval=0.2) as sampler:
        target.load(sent, concurrency=4)
    after = readings()
    if any(reading is None for reading in after):
        raise NotMeasurable("no GPU memory to measure: NVML is not available")
    total = sum(reading.bytes for reading in after)
    note = f"{'; '.join(reading.note() for reading in after)}; {server.memory_settings()}"
    return [Measurement("gpu_memory_bytes", total, None, note, shape),
            Measurement("gpu_memory_peak_bytes", max(sampler.peak, total), None, note, shape)]


def memory_figure(candidate: Measurement, incumbent: Measurement) -> Measurement:
    return Measurement("paired_memory_ratio", candidate.value / incumbent.value, None,
                       f"{candidate.metric} of both servers after the same load", candidate.shape,
                       pair=(incumbent.value, candidate.value))
