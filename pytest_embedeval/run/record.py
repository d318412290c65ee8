"""The run record: what one run measured, per model, with the verdicts and where each server ran; the JSON
report and the CLI's input."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..facts.hardware import HardwareProfile
from ..facts.server_access import redact_url
from ..measure.timing import Timing
from ..judge.verdicts import Verdict

FORMAT = "pytest-embedeval/run/1"


def model_facts(spec) -> dict:
    return {"model": spec.model, "parameters": spec.parameters, "dimensions": spec.dimensions,
            "max_tokens": spec.max_tokens, "pooling": spec.pooling,
            "matryoshka": list(spec.matryoshka) if spec.matryoshka else None,
            "instructions": bool(spec.query_prompt)}


@dataclass
class ModelRun:
    model: str
    profile: HardwareProfile
    machine: str
    software: str
    server: dict = field(default_factory=dict)  # url, argv (API key redacted), boot_seconds
    facts: dict = field(default_factory=dict)  # the model's registry facts, so a report stands alone
    verdicts: list[Verdict] = field(default_factory=list)
    stored_files: list[str] = field(default_factory=list)  # drift vectors and timings written by an update
    timings: list[Timing] = field(default_factory=list)  # every request's latency, per marker measurement
    requests: dict = field(default_factory=dict)  # attempts and failed attempts of the counted client

    def measurements(self) -> dict[str, float]:
        """The last value recorded for each figure, by label (metric and shape)."""
        return {v.label: v.measured for v in self.verdicts}

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "profile": asdict(self.profile),
            "machine": self.machine,
            "software": self.software,
            "server": self.server,
            "facts": self.facts,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "stored_files": self.stored_files,
            "timings": [asdict(t) for t in self.timings],
            "requests": self.requests,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ModelRun":
        return cls(
            model=data["model"],
            profile=HardwareProfile(**data["profile"]),
            machine=data.get("machine", ""),
            software=data.get("software", ""),
            server=data.get("server", {}),
            facts=data.get("facts", {}),
            verdicts=[Verdict.from_dict(v) for v in data.get("verdicts", [])],
            stored_files=data.get("stored_files", []),
            timings=[Timing.from_dict(t) for t in data.get("timings", [])],
            requests=data.get("requests", {}),
        )


@dataclass
class Run:
    models: dict[str, ModelRun] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    environment: dict = field(default_factory=dict)

    def verdicts(self) -> list[Verdict]:
        return [v for run in self.models.values() for v in run.verdicts]

    def failing(self) -> list[Verdict]:
        """The verdicts the judge said fail the run."""
        return [v for v in self.verdicts() if v.failing]

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "plugin_version": __version__,
            "created": self.created,
            "environment": self.environment,
            "models": [run.to_dict() for run in self.models.values()],
        }, indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict, source: str = "report") -> "Run":
        if data.get("format") != FORMAT:
            raise ValueError(f"{source}: field 'format' is {data.get('format')!r}; expected {FORMAT!r} "
                             "(a report written by pytest --embed-report)")
        runs = [ModelRun.from_dict(m) for m in data.get("models", [])]
        return cls({r.model: r for r in runs}, data.get("created", ""), data.get("environment", {}))

    @classmethod
    def from_json(cls, path: Path) -> "Run":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable JSON run report ({exc})") from None
        return cls.from_dict(data, str(path))


def model_run_for(server, *, hardware: str | None = None, paired: bool = False) -> ModelRun:
    """A model's record, opened for its server: the identity of every figure it will hold (hardware, engine,
    dtype, deployment, paired), the machine, the software, and how the server was started."""
    deployment = server.deployment()
    detected, machine = where_it_runs(server, deployment)
    engine, software = server.engine_info()
    return ModelRun(
        model=server.spec.alias,
        profile=HardwareProfile(hardware or detected, engine, server.dtype, deployment, paired),
        machine=machine,
        software=software,
        server={"url": redact_url(server.url), "boot_seconds": server.boot_seconds, **launch_record(server)},
        facts=model_facts(server.spec),
    )


def where_it_runs(server, deployment: str) -> tuple[str, str]:
    """(hardware key, machine description) of the server's share of its machine. A server this run did not
    start runs on this machine only when its address is a loopback one; elsewhere its hardware is unknown
    (``--embed-hardware`` names it)."""
    from urllib.parse import urlsplit

    from ..facts.deployment import gpu_count
    from ..facts.hardware import UNKNOWN, describe
    from ..serve.remote import is_loopback

    if server.process is None and not is_loopback(urlsplit(server.url).hostname or ""):
        return UNKNOWN, f"the machine behind {redact_url(server.url)} (not this one)"
    return describe(server.device, getattr(server, "gpus", None), gpu_count(deployment))


def launch_record(server) -> dict:
    """How a booted server was started (argv with the key masked, OpenMP threads): both shape its timings.
    A server met by URL has no argv to show."""
    launch = getattr(server, "launch_record", None)
    return launch() if launch else {"argv": None}


def machine_info(model_run: ModelRun) -> dict:
    """What pytest-benchmark's machine info lacks: the baseline profile and the accelerator."""
    from ..store import profile_name

    return {"embedeval_profile": profile_name(model_run.profile), "embedeval_machine": model_run.machine}
