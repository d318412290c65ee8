"""GPU memory through NVML. On this CPU machine the fallbacks run; on a GPU machine the real path.

The real path needs a process tree that holds GPU memory. SGLang is not on the GPU check machine,
so a stand-in tree (a parent whose child allocates with torch) plays the server there.
"""

import subprocess
import sys
import time

import pytest

from pytest_embedeval.serve.sglang import detect_device
from pytest_embedeval.facts.hardware import describe
from pytest_embedeval.facts.nvml import device_used_bytes
from pytest_embedeval.measure.gpu import DEVICE_DELTA, PER_PROCESS, tree_gpu_memory
from pytest_embedeval.measure.memory import PeakSampler

HAS_GPU = detect_device() == "cuda"
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no GPU visible to NVML on this machine")

GIB = 1 << 30


def test_without_nvml_gpus_there_is_nothing_to_report():
    if HAS_GPU:
        pytest.skip("this machine has a GPU: the real path is tested below")
    assert device_used_bytes() == {}
    assert tree_gpu_memory(1, before={}) is None
    hardware, machine = describe("cuda")  # asked for a GPU, finds none: the CPU profile, said plainly
    assert hardware.startswith("cpu-") and "cores" in machine


# The "scheduler": takes 3 GiB and waits. The "server": starts it and waits.
CHILD = "import sys, torch; b = torch.empty(3 << 30, dtype=torch.uint8, device='cuda'); torch.cuda.synchronize(); print('allocated', flush=True); sys.stdin.read()"
TREE = "import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdin=subprocess.PIPE); sys.stdin.read(); c.stdin.close(); c.wait()"


@pytest.fixture
def gpu_tree():
    before = device_used_bytes()
    tree = subprocess.Popen([sys.executable, "-c", TREE, CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert tree.stdout.readline().strip() == "allocated"
    yield tree, before
    tree.stdin.close()
    tree.wait(60)


@needs_gpu
def test_per_process_memory_of_the_whole_tree(gpu_tree):
    tree, before = gpu_tree
    reading = tree_gpu_memory(tree.pid, before)
    print("per-process reading:", reading, reading.note())
    assert reading.method == PER_PROCESS
    assert 3 * GIB <= reading.bytes < 3 * GIB + 1 * GIB  # the block plus the CUDA context


@needs_gpu
def test_device_delta_when_nvml_cannot_see_the_trees_pids(gpu_tree):
    tree, before = gpu_tree
    # Our own pid owns no GPU memory: exactly what a container without the host pid namespace sees.
    reading = tree_gpu_memory(subprocess.Popen(["sleep", "5"]).pid, before)
    print("device-level reading:", reading, reading.note())
    assert reading.method == DEVICE_DELTA and "device memory used now minus before" in reading.note()
    assert reading.bytes >= 3 * GIB


@needs_gpu
def test_the_sampler_sees_the_peak_and_the_hardware_key_names_the_gpu(gpu_tree):
    tree, before = gpu_tree
    with PeakSampler(lambda: tree_gpu_memory(tree.pid, before).bytes, interval=0.05) as sampler:
        time.sleep(0.5)
    assert sampler.peak >= 3 * GIB
    hardware, machine = describe("cuda")
    print("hardware key:", hardware, "|", machine)
    assert hardware.endswith("-x1") and not hardware.startswith(("cpu", "nvidia"))
    assert "driver" in machine
