"""Stopping a server never waits without a timeout, not even for a process stuck in the kernel."""

import subprocess
import sys
import time

from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.facts.registry import Registry


class _StuckPopen(subprocess.Popen):
    """A process whose wait() never returns unless given a timeout (one stuck in the kernel, D state)."""

    def wait(self, timeout=None):
        if timeout is None:
            raise AssertionError("stop() waited for the server without a timeout")
        return super().wait(timeout)


def test_stop_bounds_every_wait(tmp_path):
    server = SGLangServer(Registry().resolve("minilm"), log_path=tmp_path / "s.log")
    server.process = _StuckPopen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    started = time.monotonic()
    server.stop(grace=1)
    assert time.monotonic() - started < 10
    assert server.process.poll() is not None
