"""One owner for one SGLang server's whole life: argv, launch, readiness, log, teardown.

Works without pytest: ``with SGLangServer(spec, device="cpu") as server: ...``.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from ..registry import ModelSpec
from . import auth_headers, external

LOCALHOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server could not be started or stopped; the message carries the tail of its log."""


def detect_device() -> str:
    """'cuda' when NVML sees at least one GPU, else 'cpu'."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return "cuda" if pynvml.nvmlDeviceGetCount() > 0 else "cpu"
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return "cpu"


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on the port (SO_REUSEADDR, as uvicorn binds: TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


# SGLang 0.5.23 logs this when its HTTP port is taken, and then hangs instead of exiting.
_BIND_FAILED = b"error while attempting to bind on address"


# SGLang's defaults are tuned for GPUs and hurt on a CPU: a 14.6 GB KV pool (the pool is sized
# from free memory) and a scheduler that spins one core at 100% between requests. bf16 has no
# fast CPU kernels here, and triton / flex attention fail at warm-up, so say torch_native.
CPU_ARGS = (
    "--device", "cpu",
    "--dtype", "float32",
    "--attention-backend", "torch_native",
    "--max-total-tokens", "16384",
    "--sleep-on-idle",
)


def build_argv(
    spec: ModelSpec,
    *,
    device: str,
    port: int,
    host: str = LOCALHOST,
    extra_args: tuple[str, ...] | list[str] = (),
    api_key: str | None = None,
    python: str = sys.executable,
) -> list[str]:
    """SGLang's command line for this model. A list, never a shell string."""
    argv = [
        python, "-m", "sglang.launch_server",
        "--model-path", spec.model,
        "--served-model-name", spec.alias,
        "--is-embedding",
        "--host", host,
        "--port", str(port),
        # The prefix (radix) cache reuses the hidden states of a shared prefix across requests.
        # Encoder models attend bidirectionally, so a cached [CLS] and prefix are wrong for the
        # next text: cosine 0.44 against the reference for BERT models. Embeddings gain nothing
        # from it anyway: every request is a single forward pass.
        "--disable-radix-cache",
        # sentence-transformers truncates over-long inputs to the model's window; so must the server,
        # or one long document in a benchmark corpus (C-MTEB retrieval has many) stops the whole run.
        "--allow-auto-truncate",
    ]
    if device == "cpu":
        argv += CPU_ARGS
    if spec.trust_remote_code:
        argv.append("--trust-remote-code")
    if api_key:
        argv += ["--api-key", api_key]
    argv += list(spec.server_args)
    argv += list(extra_args)
    return argv


def redact(argv: list[str], secret: str | None) -> list[str]:
    """The argv as it may be shown to people."""
    return ["***" if secret and arg == secret else arg for arg in argv]


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if pytest itself is killed (SIGKILL, OOM killer),
    # the kernel sends the server SIGTERM, and SGLang's own handler takes its workers down.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_live: set["SGLangServer"] = set()


@atexit.register
def _stop_all_live() -> None:
    for server in list(_live):
        server.stop()


@dataclass
class SGLangServer:
    spec: ModelSpec
    device: str = "cpu"
    log_path: Path | None = None
    host: str = LOCALHOST
    port: int | None = None
    extra_args: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)  # a repr reaches tracebacks (a failing test's arguments)
    boot_timeout: float = 600.0
    poll_interval: float = 0.2
    gpus: tuple[int, ...] | None = None  # pinned with CUDA_VISIBLE_DEVICES; None = what the environment says

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self.log_path = Path(self.log_path or f"sglang-{self.spec.alias}-{self.port}.log")
        self.process: subprocess.Popen | None = None
        self.boot_seconds: float | None = None
        self.gpu_memory_before: dict[int, int] = {}  # per GPU, for NVML's device-level fallback

    def __hash__(self) -> int:
        return id(self)

    @property
    def url(self) -> str:
        # A server listening on every address is still reached, by this run, over loopback.
        return f"http://{LOCALHOST if self.host in ('0.0.0.0', '::', '') else self.host}:{self.port}"

    @property
    def argv(self) -> list[str]:
        return build_argv(
            self.spec, device=self.device, port=self.port, host=self.host,
            extra_args=self.extra_args, api_key=self.api_key,
        )

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Nothing at run time may reach the hub: a missing file must fail, not download.
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
        env.update(external.environment_for(self.spec))
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in self.gpus)
        return env

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "SGLangServer":
        if self.process is not None:
            raise ServerError("server already started")
        if port_taken(self.host, self.port):
            raise ServerError(
                f"cannot start SGLang for {self.spec.alias!r}: port {self.port} on {self.host} is already in use "
                "(another server, or one that outlived its run); free it or pick another port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.device != "cpu":
            from ..measure.gpu import device_used_bytes

            self.gpu_memory_before = device_used_bytes(list(self.gpus) if self.gpus is not None else None)
        log = open(self.log_path, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            # Its own session: Ctrl-C in the terminal reaches pytest only, and pytest's
            # teardown stops the server in order instead of racing it.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        _live.add(self)
        try:
            self.wait_until_ready()
        except BaseException:  # a timeout, a dead server, Ctrl-C: never leave it behind
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - started
        return self

    def wait_until_ready(self) -> None:
        """Ready = the process is alive and /health answers 200 (after a real forward pass)."""
        deadline = time.monotonic() + self.boot_timeout
        with httpx.Client(timeout=5.0, headers=auth_headers(self.api_key)) as http:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise ServerError(
                        f"SGLang server for {self.spec.alias!r} exited with code {code} during boot.\n"
                        f"Log: {self.log_path}\n{self.log_tail()}"
                    )
                if self._bind_failed():
                    raise ServerError(
                        f"SGLang server for {self.spec.alias!r} could not listen on {self.host}:{self.port}: "
                        f"the port was taken while it booted.\nLog: {self.log_path}\n{self.log_tail()}"
                    )
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # the port stays closed while weights load
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"SGLang server for {self.spec.alias!r} was not ready after {self.boot_timeout:.0f} s "
                        f"(--embed-boot-timeout); it was stopped.\nLog: {self.log_path}\n{self.log_tail()}"
                    )
                time.sleep(self.poll_interval)

    @property
    def dtype(self) -> str:
        """The --dtype SGLang will use: the last one given wins, as in argparse."""
        argv = self.argv
        values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--dtype"]
        values += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--dtype=")]
        return values[-1] if values else "auto"

    def served_model(self) -> str:
        return self.spec.alias

    def memory_settings(self) -> str:
        """The settings that decide how much GPU memory SGLang reserves up front."""
        try:
            info = httpx.get(f"{self.url}/get_server_info", timeout=10.0,
                             headers=auth_headers(self.api_key)).json()
        except (httpx.HTTPError, ValueError):
            return "server settings unavailable"
        return (f"mem_fraction_static {info.get('mem_fraction_static')}, "
                f"KV pool {info.get('max_total_num_tokens')} tokens (a static reservation, not what the weights need)")

    def engine_info(self) -> tuple[str, str]:
        """(engine, software versions) for the baseline's provenance."""
        from importlib.metadata import version

        return "sglang", f"sglang {version('sglang')}, torch {version('torch')}, transformers {version('transformers')}"

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        """End the whole process tree: SIGTERM, then SIGKILL for whatever outlives the grace."""
        _live.discard(self)
        if self.process is None:
            return
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=grace)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        # Workers that re-parented away from the tree still belong to the server's session.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def __enter__(self) -> "SGLangServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- diagnostics ------------------------------------------------------------------------

    def _bind_failed(self) -> bool:
        try:
            with open(self.log_path, "rb") as log:
                return _BIND_FAILED in log.read()
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                tail = "".join(deque(log, maxlen=lines))
        except OSError:
            return "(no log)"
        return tail.replace(self.api_key, "***") if self.api_key else tail
