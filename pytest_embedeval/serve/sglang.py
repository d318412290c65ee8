"""One owner for one SGLang server's whole life: argv, launch, readiness, log, teardown.

Works without pytest: ``with SGLangServer(spec, device="cpu") as server: ...``.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from ..facts.registry import ModelSpec
from ..facts.server_access import API_KEY_ENV, auth_headers
from . import compat, external
from .argv import build_argv, read_user_config, redact, split_config
from .processes import stop_tree
from .ports import LOCALHOST, describe_pid, free_port, listeners, port_taken, tree_pids
from .watchdog import end_session, mask_file, start_watchdog

class ServerError(RuntimeError):
    """The server could not be started or stopped; the message carries the tail of its log."""


def detect_device() -> str:
    """'cuda' when NVML sees at least one GPU, else 'cpu'."""
    from ..facts.nvml import nvml

    with nvml() as lib:
        return "cuda" if lib is not None and lib.nvmlDeviceGetCount() > 0 else "cpu"


# SGLang 0.5.23 logs this when its HTTP port is taken, and then hangs instead of exiting.
_BIND_FAILED = b"error while attempting to bind on address"


THIS_MACHINE = ("127.0.0.1", "localhost", "::1")  # never through a proxy
LOG_LINE = 300  # characters of one log line an error shows: SGLang logs all its server_args on one line
BOOT_REPORT_EVERY = 15.0  # seconds between progress lines while a server boots


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
    cpu_threads: int | None = None  # OMP_NUM_THREADS on a CPU unless the user set it; None = one per core
    python: str = sys.executable  # another virtualenv's python runs its own SGLang (a paired incumbent)
    offline: bool = True  # False only when the user allowed downloads (--embed-allow-downloads)
    any_sglang: bool = False  # --embed-any-sglang: boot an SGLang outside the tested range all the same
    progress: Callable[[str], None] | None = field(default=None, repr=False)  # a line every BOOT_REPORT_EVERY s

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self.log_path = Path(self.log_path or f"sglang-{self.spec.alias}-{self.port}.log")
        self.process: subprocess.Popen | None = None
        self._started_at: float | None = None  # the server process's start time (psutil's), which tells it from a
        # later process given the same PID
        self.watchdog: subprocess.Popen | None = None
        self.boot_seconds: float | None = None
        self.gpu_memory_before: dict[int, int] = {}  # per GPU, for NVML's device-level fallback

    def __hash__(self) -> int:
        return id(self)

    @property
    def url(self) -> str:
        # A server listening on every address is still reached, by this run, over loopback.
        host = LOCALHOST if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """Where the key travels to SGLang: a YAML file next to the log (pytest's private temporary
        directory), readable by the user only, and removed as soon as the server is ready."""
        return self.log_path.with_name(f"{self.log_path.stem}.sglang-config.yaml")

    @property
    def argv(self) -> list[str]:
        return build_argv(
            self.spec, device=self.device, port=self.port, host=self.host,
            extra_args=self.extra_args, config_path=self.config_path if self.api_key else None,
            python=self.python,
        )

    def environment(self) -> dict[str, str]:
        # The key never rides in the environment: /proc/PID/environ is readable by the user's other
        # processes and is inherited by everything SGLang starts. It reaches SGLang through the file.
        env = {name: value for name, value in os.environ.items()
               if name != API_KEY_ENV and not (self.api_key and value == self.api_key)}
        # SGLang sends its own warm-up request to itself with `requests`, which honours HTTP_PROXY: behind a
        # corporate proxy that request went to the proxy and SGLang killed itself (exit -9) mid-boot.
        for variable in ("NO_PROXY", "no_proxy"):
            env[variable] = ",".join(filter(None, [env.get(variable), *THIS_MACHINE]))
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            # Nothing at run time may reach the hub unless the user allowed it: a missing file must fail.
            if self.offline:
                env[variable] = "1"
            else:
                env.pop(variable, None)
        fixes = external.environment_for(self.spec, self.device)
        if fixes and self.python != sys.executable:
            # Another virtualenv imports the fixes from a folder that holds this package alone: its own
            # torch and SGLang must not be shadowed by ours.
            fixes["PYTHONPATH"] = os.pathsep.join(filter(None, [str(external.package_root(self.log_path.parent)),
                                                                env.get("PYTHONPATH")]))
        env.update(fixes)
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in self.gpus)
        if self.omp_threads:
            env["OMP_NUM_THREADS"] = self.omp_threads
        return env

    @property
    def omp_threads(self) -> str | None:
        """The OpenMP threads it runs with: the user's OMP_NUM_THREADS, else ``cpu_threads`` on a CPU, else
        None (torch's own, one per core)."""
        if "OMP_NUM_THREADS" in os.environ:
            return os.environ["OMP_NUM_THREADS"]
        return str(self.cpu_threads) if self.device == "cpu" and self.cpu_threads else None

    def launch_record(self) -> dict:
        """How it was started, for the run's record: argv with the key masked, and OpenMP threads."""
        return {"argv": redact(self.argv, self.api_key), "omp_threads": self.omp_threads}

    def write_config(self) -> None:
        """The ``--config`` YAML that carries the key: mode 0600, with the user's own --config merged in."""
        import yaml

        _, user_config = split_config([*self.spec.server_args, *self.extra_args])
        settings = dict(read_user_config(user_config)) if user_config else {}
        if self.api_key.startswith("-"):
            raise ValueError("the API key begins with '-', which SGLang's argument parser reads as an option: "
                             "choose a key that begins with a letter or digit")
        settings["api-key"] = self.api_key  # as SGLang turns keys into options: "--" + key, dashes kept
        path = self.config_path
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        # O_EXCL: never write the key through a file (or link) someone else put there first.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(settings, out)

    def remove_config(self) -> None:
        if self.api_key:
            try:
                self.config_path.unlink()
            except FileNotFoundError:
                pass

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "SGLangServer":
        self.launch()
        return self.wait()

    def launch(self) -> "SGLangServer":
        """Start the process and its watchdog, without waiting: a fleet launches all its workers, then waits."""
        if self.process is not None:
            raise ServerError("server already started")
        try:
            self._launch()
        except BaseException:
            self.remove_config()  # the key's file never outlives a start that failed before the server ran
            raise
        _live.add(self)
        try:
            self._start_watchdog()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_watchdog(self) -> None:
        # If pytest is killed (-9, the OOM killer) no teardown runs: this small process notices and ends the
        # server's whole session, which PR_SET_PDEATHSIG alone does not (it reaches the server's root only;
        # SGLang's detokenizer and resource tracker outlived it). It also removes the key's file and masks the log.
        self.watchdog = start_watchdog(self.process.pid, self.environment(), self.api_key, remove=self.config_path,
                                       mask=self.log_path)

    def wait(self) -> "SGLangServer":
        """Block until the launched server is ready; stop it if it never is."""
        try:
            self.wait_until_ready()
        except BaseException:  # a timeout, a dead server, Ctrl-C: never leave it behind
            self.stop()
            raise
        self.remove_config()  # read once, at SGLang's start; nothing reads it again
        mask_file(self.log_path, self.api_key)
        self.boot_seconds = time.monotonic() - self._started
        return self

    def _launch(self) -> None:
        try:
            argv = self._supported_argv()
            if self.api_key:
                self.write_config()
            else:
                _, user_config = split_config([*self.spec.server_args, *self.extra_args])
                if user_config:
                    read_user_config(user_config)
        except (ValueError, compat.IncompatibleSGLang) as exc:
            raise ServerError(f"cannot start SGLang for {self.spec.alias!r}: {exc}") from None
        if port_taken(self.host, self.port):
            owners = ", ".join(describe_pid(pid) for pid, _ in listeners(self.port, self.host)) or "another process"
            raise ServerError(
                f"cannot start SGLang for {self.spec.alias!r}: port {self.port} on {self.host} is already in use "
                f"by {owners}; stop it, or let the plugin pick a free port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.device != "cpu":
            from ..facts.nvml import device_used_bytes

            self.gpu_memory_before = device_used_bytes(list(self.gpus) if self.gpus is not None else None)
        # 0600: SGLang writes its server arguments, key included, into this log before we can mask it.
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self._started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                # Its own session: Ctrl-C in the terminal reaches pytest only, and pytest's
                # teardown stops the server in order instead of racing it. The session (and process
                # group) id is the server's PID: the watchdog and stop() find every worker by it.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        try:  # the process itself, by PID and start time: teardown never signals a later owner of the PID
            self._started_at = psutil.Process(self.process.pid).create_time()
        except psutil.NoSuchProcess:
            pass  # gone already: nothing of it to stop by its PID

    def _supported_argv(self) -> list[str]:
        """The command line, checked against the SGLang that will run it: a version in the tested range (or
        --embed-any-sglang), and none of the plugin's optional flags that version does not know."""
        install = compat.installed(self.python)
        install.check(insist=self.any_sglang)
        users = {a.split("=", 1)[0] for a in (*self.spec.server_args, *self.extra_args) if a.startswith("--")}
        argv = self.argv
        return install.supported(argv, {a for a in argv if a.startswith("--")} - users)

    def wait_until_ready(self) -> None:
        """Ready = our process is alive, /health answers 200 (after a real forward pass), and the socket
        that answered belongs to our server's process tree, not to whoever else took the port.

        /health needs no key, and none is sent before the owner is known: a squatter on the port never
        gets it. No proxy either: a request to this machine must not leave it.
        """
        started = time.monotonic()
        deadline, next_report = started + self.boot_timeout, started + BOOT_REPORT_EVERY
        owner_checked = False
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            while True:
                if self.progress and time.monotonic() > next_report:  # a boot may take minutes: say where it is
                    last = (self.log_tail(1).strip() or "(nothing logged yet)")[-160:]
                    self.progress(f"booting SGLang for {self.spec.alias}: {time.monotonic() - started:.0f} s; {last}")
                    next_report += BOOT_REPORT_EVERY
                code = self.process.poll()
                if code is not None:
                    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    raise ServerError(
                        f"SGLang server for {self.spec.alias!r} {how} during boot, before it was ready.\n"
                        f"Log: {self.log_path}\n{self.log_tail()}"
                    )
                if self._bind_failed():  # checked once more after ready: SGLang logs it and hangs
                    raise ServerError(
                        f"SGLang server for {self.spec.alias!r} could not listen on {self.host}:{self.port}: "
                        f"the port was taken while it booted "
                        f"({', '.join(describe_pid(pid) for pid, _ in listeners(self.port, self.host)) or 'owner gone'})."
                        f"\nLog: {self.log_path}\n{self.log_tail()}"
                    )
                status = None
                try:
                    status = http.get(f"{self.url}/health").status_code
                except (httpx.ReadTimeout, httpx.WriteTimeout):
                    status = "no answer"  # connected: something listens there
                except httpx.TransportError:
                    pass  # the port stays closed while weights load
                if status is not None and not owner_checked:
                    self.check_port_owner()
                    owner_checked = True
                if status == 200 and not self._bind_failed():
                    return
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"SGLang server for {self.spec.alias!r} was not ready after {self.boot_timeout:.0f} s "
                        f"(--embed-boot-timeout); it was stopped.\nLog: {self.log_path}\n{self.log_tail()}"
                    )
                time.sleep(self.poll_interval)

    def check_port_owner(self) -> None:
        """Raise ServerError unless the socket listening on our port belongs to our server's tree.

        Between the free-port check and SGLang's bind another process can take the port; its answers
        would then be measured as ours (seen: "ready" in 0.6 s while SGLang died with EADDRINUSE).
        """
        # Where this run's clients connect (127.0.0.1 for a wildcard host, ::1 too for "localhost"), and
        # where the server was asked to bind: a squatter on any of them would answer in its place.
        found = set(listeners(self.port, urlsplit(self.url).hostname)) | set(listeners(self.port, self.host))
        ours = tree_pids(self.process.pid)
        if not ours:
            return  # our server died: the next poll reports its exit code and log
        if not found:
            if sys.platform.startswith("linux"):  # Linux shows every socket: an answer with no listener is foreign
                raise ServerError(
                    f"something answered on {self.url} in place of the SGLang server for {self.spec.alias!r}, but no "
                    f"socket listening on port {self.port} is visible on this machine (another network namespace, "
                    f"a proxy or a forwarded port?): its answers cannot be taken as this server's.\n"
                    f"Log: {self.log_path}\n{self.log_tail()}"
                )
            return  # this platform does not show sockets' owners: nothing to check against
        foreign = [pid for pid, _ in sorted(found, key=str) if pid not in ours]
        if foreign:
            raise ServerError(
                f"port {self.port} on {self.host} taken by {describe_pid(foreign[0])}: it "
                f"answered in place of the SGLang server for {self.spec.alias!r}, whose results would have been "
                "that process's. Stop that process (or run again: the plugin picks a new free port each run).\n"
                f"Log: {self.log_path}\n{self.log_tail()}"
            )

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
            info = httpx.get(f"{self.url}/get_server_info", timeout=10.0, trust_env=False,
                             headers=auth_headers(self.api_key)).json()
        except (httpx.HTTPError, ValueError):
            return "server settings unavailable"
        return (f"mem_fraction_static {info.get('mem_fraction_static')}, "
                f"KV pool {info.get('max_total_num_tokens')} tokens (a static reservation, not what the weights need)")

    def deployment(self) -> str:
        """The flags of this launch that change results (a figure's identity): the user's own, from
        --embed-server-arg and the model's table, beyond what the plugin gives every launch of a built-in alias."""
        from ..facts.deployment import from_args
        from ..facts.registry import standard_args

        model_args = () if standard_args(self.spec) else self.spec.server_args
        return from_args([*model_args, *self.extra_args])

    def engine_info(self) -> tuple[str, str]:
        """(engine, software versions) for the baseline's provenance, as the server's own python has them."""
        if self.python != sys.executable:
            code = ("from importlib.metadata import version as v; "
                    "print(f\"sglang {v('sglang')}, torch {v('torch')}, transformers {v('transformers')}\")")
            found = subprocess.run([self.python, "-c", code], capture_output=True, text=True, timeout=60)
            return "sglang", (found.stdout.strip() or "unknown") + f" ({self.python})"
        from importlib.metadata import version

        return "sglang", f"sglang {version('sglang')}, torch {version('torch')}, transformers {version('transformers')}"

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def root_pids(self) -> list[int]:
        """The processes whose trees are this server (its memory is theirs)."""
        return [self.process.pid] if self.process is not None else []

    def stop(self, grace: float = 15.0) -> None:
        """End the whole process tree: SIGTERM, then SIGKILL for whatever outlives the grace.

        Every wait here has a timeout: a process stuck in the kernel (D state) must not hang pytest.
        """
        _live.discard(self)
        self.remove_config()
        if self.process is None:
            return
        if self._pid_is_ours():
            stop_tree(self._tree(), grace)
            # Workers that re-parented away from the tree still belong to the server's session. (The kernel
            # reuses no PID that is still a session id, so while any of them lives the PID is ours.)
            end_session(self.process.pid, grace=0.0)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # unkillable (D state); reported by the leftover checks, never waited on forever
        if self.watchdog is not None:
            self.watchdog.kill()
            try:
                self.watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        mask_file(self.log_path, self.api_key)

    def _tree(self) -> list[psutil.Process]:
        """The server and its descendants; [] once the server itself is gone."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _pid_is_ours(self) -> bool:
        """False when the server's PID now names another process: ours exited, was reaped, and the kernel gave
        the PID to a new one (recognised by its start time). An unreaped child's PID cannot be reused."""
        if self.process.poll() is None:
            return True
        try:
            return psutil.Process(self.process.pid).create_time() == self._started_at
        except psutil.NoSuchProcess:
            return True  # nobody holds it: its session's leftovers, if any, are ours
        except psutil.Error:
            return False

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
        return log_tail(self.log_path, lines, self.api_key)


def log_tail(path, lines: int, secret: str | None = None) -> str:
    """The log's last ``lines`` lines, each cut to LOG_LINE characters, the secret masked; read in one pass that
    keeps only those lines (a gateway logs every request)."""
    try:
        with open(path, errors="replace") as log:
            tail = "".join(_cut(line) for line in deque(log, maxlen=lines))
    except OSError:
        return "(no log)"
    if secret:
        tail = tail.replace(secret, "***").replace(repr(secret)[1:-1], "***")
    return tail


def _cut(line: str) -> str:
    if len(line) <= LOG_LINE + 1:
        return line
    return f"{line[:LOG_LINE]} ... ({len(line.rstrip()) - LOG_LINE} more characters in the log)\n"
