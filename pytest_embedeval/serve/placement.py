"""Where each server of a run runs: pinned GPUs (one per xdist worker), and the share of a GPU or of the
CPU that each of two paired servers gets when they share a machine."""

from __future__ import annotations

from typing import NamedTuple

# On one GPU each of two servers gets this share of what is free for its static pool (weights and KV
# cache); the rest stays for activations and CUDA graphs, as SGLang's own default leaves ~12% of a GPU.
_PAIR_SHARE = 0.85 / 2
# The least KV-cache room worth booting a server for, as a fraction of its weights.
_KV_ROOM = 0.2


class NoRoomForTwo(ValueError):
    """Two servers do not fit on the one GPU they would share: the sentence gives the numbers."""


class Allotment(NamedTuple):
    """What one server of the run gets of the machine."""

    gpus: tuple[int, ...] | None  # pinned GPUs; None = what the environment says
    memory_fraction: float | None = None  # SGLang's --mem-fraction-static when two servers share one GPU
    cpu_threads: int | None = None  # OpenMP threads when two servers share the CPU; None = torch's own


def placement(settings, device: str, worker: str | None, incumbent: bool = False) -> Allotment:
    """Where one server of the run runs.

    A paired run that boots both servers gives each its own GPU where two are there to use; on one GPU
    both share it, each with a static memory fraction sized for two, or the run refuses with the numbers.
    On a CPU each gets half the cores (see paired_cpu_threads).
    """
    gpus = worker_gpus(settings.gpus, worker, device)
    pair = settings.incumbent
    if pair is None or pair.url or settings.url:
        return Allotment(gpus)
    if device == "cpu":
        return Allotment(gpus, cpu_threads=paired_cpu_threads())
    usable = list(settings.gpus) if settings.gpus else list(range(gpu_count()))
    if worker is None and len(usable) >= 2:
        return Allotment((usable[1 if incumbent else 0],))
    index = (gpus or (usable[0],))[0] if usable else 0
    from ..facts.nvml import gpu_memory

    total, free = gpu_memory([index]).get(index, (0, 0))
    if not total:
        return Allotment(gpus)
    specs = [settings.specs[0], pair.spec]
    return Allotment(gpus, share_one_gpu(index, total, free, [s.parameter_count for s in specs],
                                         [s.alias for s in specs]))


def fleet_placement(settings, device: str, workers: int, incumbent: bool = False,
                    xdist_worker: str | None = None) -> list[Allotment]:
    """Where each worker of a fleet runs: on a CPU, an equal share of the cores (one thread each at the least); on
    GPUs, a GPU each, a paired run's incumbent fleet on the next ones, and under pytest-xdist each xdist worker's
    fleet on GPUs of its own. NoRoomForTwo when there are too few GPUs."""
    pair = settings.incumbent
    fleets = 2 if pair is not None and not pair.url and not settings.url else 1
    if device == "cpu":
        from ..facts.hardware import usable_cores

        return [Allotment(None, cpu_threads=max(1, usable_cores() // (workers * fleets)))] * workers
    usable = list(settings.gpus) if settings.gpus else list(range(gpu_count()))
    runs = int(xdist_worker.removeprefix("gw")) if xdist_worker else 0  # the xdist workers before this one
    needed = workers * fleets * (runs + 1)
    if len(usable) < needed:
        xdist = f" for xdist worker {xdist_worker} (each has fleets of its own)" if xdist_worker else ""
        raise NoRoomForTwo(
            f"a fleet of {workers} workers{' beside an incumbent fleet' if fleets == 2 else ''} needs "
            f"{workers * fleets} GPUs, one per worker{xdist}, and this run may use {len(usable)} "
            f"({'--embed-gpus' if settings.gpus else 'all NVML sees'}): ask for fewer with --embed-workers"
            f"{' or pytest -n' if xdist_worker else ''}, or name more GPUs with --embed-gpus")
    first = workers * fleets * runs + (workers if incumbent else 0)
    return [Allotment((usable[first + index],)) for index in range(workers)]


def paired_cpu_threads() -> int:
    """OpenMP threads for each of two servers that share the CPU: half its cores each.

    With torch's default, a thread per core each, a forward pass waits for whichever of its threads the
    other server (or any busy process) has descheduled: one busy core made a lone minilm server's p50 on a
    2-core machine 2.2 times as long (57.6 -> 127.1 ms); with one thread, 1.14 times (60.5 -> 68.9 ms).
    On Intel AMX and Arm hosts SGLang binds a thread to each core of a NUMA node itself after reading
    this, unless SGLANG_CPU_OMP_THREADS_BIND says otherwise.
    """
    from ..facts.hardware import usable_cores

    return max(1, usable_cores() // 2)


def share_one_gpu(index: int, total: int, free: int, parameters: list[int | None], names: list[str]) -> float:
    """SGLang's --mem-fraction-static for each of two servers on GPU ``index``; NoRoomForTwo when they cannot fit."""
    fraction = _PAIR_SHARE * free / total
    room = fraction * total
    gb = 1e9
    for name, count in zip(names, parameters):
        needed = (count or 0) * 2 * (1 + _KV_ROOM)  # 16-bit weights plus the least KV cache worth having
        if needed > room:
            raise NoRoomForTwo(
                f"a paired run would put two servers on GPU {index} ({free / gb:.1f} GB free of {total / gb:.1f} GB): "
                f"each may take {room / gb:.1f} GB, but {name} needs {needed / gb:.1f} GB (weights "
                f"{count * 2 / gb:.1f} GB plus {_KV_ROOM:.0%} for its KV cache). Give the incumbent a GPU of its own "
                "(--embed-gpus 0,1), or point --embed-incumbent-url at a server running elsewhere")
    return fraction


def gpu_count() -> int:
    from ..facts.hardware import gpu_names

    return len(gpu_names()[0])


def worker_gpus(gpus: tuple[int, ...] | None, worker: str | None, device: str) -> tuple[int, ...] | None:
    """The GPUs one server may use: under pytest-xdist, one GPU per worker, round-robin (gw0 the first).

    Without --embed-gpus, workers on a GPU host still get one GPU each, so that ``pytest -n 4`` does
    not boot four servers onto GPU 0.
    """
    if worker is None:
        return gpus
    if gpus is None:
        if device == "cpu":
            return None
        count = gpu_count()
        if count == 0:
            return None
        gpus = tuple(range(count))
    return (gpus[int(worker.removeprefix("gw")) % len(gpus)],)
