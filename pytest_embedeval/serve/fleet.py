"""A fleet: N SGLang workers behind SGLang's model gateway, started, watched and stopped as one server.

It answers what a run asks of one server (its URL is the gateway's; its model, dtype and software are its
workers'), and what only a fleet can answer: which workers it has and which of them died.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .gateway import Gateway, version as gateway_version
from .sglang import SGLangServer


@dataclass
class DeadWorker:
    index: int  # 1-based, as the report names it: "worker 2 of 2"
    of: int
    url: str
    how: str  # "was killed by signal 9", "exited with code 1"

    def __str__(self) -> str:
        return f"worker {self.index} of {self.of} ({self.url}) {self.how}"


@dataclass(eq=False)
class Fleet:
    workers: list[SGLangServer]
    gateway: Gateway
    boot_seconds: float | None = field(default=None, init=False)

    # -- what a run asks of any server ---------------------------------------------------------------

    @property
    def first(self) -> SGLangServer:
        return self.workers[0]

    @property
    def spec(self):
        return self.first.spec

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def api_key(self) -> str:
        return self.gateway.api_key

    @property
    def device(self) -> str:
        return self.first.device

    @property
    def dtype(self) -> str:
        return self.first.dtype

    @property
    def python(self) -> str:
        return self.first.python

    @property
    def gpus(self):
        pinned = [gpu for worker in self.workers for gpu in (worker.gpus or ())]
        return tuple(pinned) if pinned else None

    @property
    def process(self):
        return self.gateway.process  # a process this run started: its figures are of this machine

    @property
    def log_path(self):
        return self.gateway.log_path

    def served_model(self) -> str:
        return self.first.served_model()

    def memory_settings(self) -> str:
        return self.first.memory_settings()

    def deployment(self) -> str:
        """The workers' flags, and the fleet's shape: a fleet's figures never meet one server's."""
        return " ".join(filter(None, [self.first.deployment(), f"--fleet-workers {len(self.workers)}",
                                      f"--fleet-policy {self.gateway.policy}"]))

    def engine_info(self) -> tuple[str, str]:
        engine, software = self.first.engine_info()
        return engine, f"{software}, {gateway_version()}"

    def launch_record(self) -> dict:
        from .argv import redact

        return {**self.first.launch_record(), "workers": [w.url for w in self.workers],
                "gateway": {"argv": redact(self.gateway.argv, self.api_key), "policy": self.gateway.policy,
                            "software": gateway_version()}}

    def root_pids(self) -> list[int]:
        return [member.process.pid for member in (*self.workers, self.gateway) if member.process is not None]

    def worker_urls(self) -> list[str]:
        return [w.url for w in self.workers]

    # -- life ----------------------------------------------------------------------------------------

    def start(self) -> "Fleet":
        import time

        started = time.monotonic()
        try:
            for worker in self.workers:  # all boot at once: a fleet is ready as soon as its slowest worker
                worker.launch()
            for worker in self.workers:
                worker.wait()
            self.gateway.start()
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        self.gateway.stop()  # first: nothing routes to a worker that is going away
        for worker in self.workers:
            worker.stop()

    def __enter__(self) -> "Fleet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def is_alive(self) -> bool:
        return self.gateway.process is not None and self.gateway.process.poll() is None and not self.dead_workers()

    def dead_workers(self) -> list[DeadWorker]:
        dead = []
        for index, worker in enumerate(self.workers, 1):
            code = worker.process.poll() if worker.process is not None else None
            if code is not None:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                dead.append(DeadWorker(index, len(self.workers), worker.url, how))
        return dead

    def log_tail(self, lines: int = 40) -> str:
        parts = [f"gateway ({self.gateway.log_path}):\n{self.gateway.log_tail(lines // 2)}"]
        for dead in self.dead_workers():
            worker = self.workers[dead.index - 1]
            parts.append(f"{dead} ({worker.log_path}):\n{worker.log_tail(lines // 2)}")
        return "\n".join(parts)
