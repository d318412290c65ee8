"""What can be measured, which way is better, and how much change is noise.

Tolerances are written with their unit so a wrong one is caught on load: relative ones as "10%"
(times, bytes, rates), absolute ones as plain numbers in the metric's own unit (score points).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

HIGHER, LOWER, EXACT = "higher", "lower", "exact"


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool

    @classmethod
    def parse(cls, raw: object) -> "Tolerance":
        """``"10%"`` is relative, a number is absolute. Raises ValueError with the expected form."""
        if isinstance(raw, str):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", raw)
            if not match:
                raise ValueError(f"expected a percentage like \"10%\" or a number, got {raw!r}")
            return cls(float(match.group(1)) / 100, relative=True)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
            raise ValueError(f"expected a percentage like \"10%\" or a finite non-negative number, got {raw!r}")
        return cls(float(raw), relative=False)

    def band(self, baseline: float) -> float:
        """How far from the baseline a measurement may land and still be noise."""
        return abs(baseline) * self.value if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str  # HIGHER, LOWER or EXACT
    tolerance: Tolerance
    description: str
    fixed_baseline: float | None = None  # the same everywhere: never stored, never updated, never accepted
    pair_unit: str | None = None  # a paired figure: the unit of the incumbent's and the candidate's own values
    half_precision: Tolerance | None = None  # the default for a half-precision server, which rounds every layer
    sides: tuple[str, str] = ("incumbent", "candidate")  # a paired figure's two sides, as its sentence names them

    @property
    def hardware_bound(self) -> bool:
        """Times, rates and memory depend on the machine; scores, vectors and shapes only on engine and dtype."""
        return self.unit in ("ms", "s", "tokens/s", "req/s", "B")

    def check_tolerance(self, tolerance: Tolerance) -> None:
        """Times, bytes and rates scale with the machine: their tolerance must be relative."""
        if self.tolerance.relative and not tolerance.relative:
            raise ValueError(f"{self.name} takes a relative tolerance like \"{self.tolerance}\", got {tolerance}")
        if not self.tolerance.relative and tolerance.relative:
            raise ValueError(f"{self.name} takes a tolerance in {self.unit}, like {self.tolerance}, got {tolerance}")


def _m(name, unit, better, tolerance, description, fixed_baseline=None, pair_unit=None, half=None,
       sides=("incumbent", "candidate")) -> Metric:
    return Metric(name, unit, better, Tolerance.parse(tolerance), description, fixed_baseline, pair_unit,
                  None if half is None else Tolerance.parse(half), sides)


def _paired(name, better, tolerance, description, pair_unit, unit="ratio", baseline=1.0, half=None,
            sides=("incumbent", "candidate")) -> Metric:
    # Candidate against an incumbent server measured in the same minutes: equal servers give 1 (or 0).
    return _m(name, unit, better, tolerance, description, fixed_baseline=baseline, pair_unit=pair_unit, half=half,
              sides=sides)


CATALOGUE: dict[str, Metric] = {m.name: m for m in (
    _m("gpu_memory_bytes", "B", LOWER, "10%", "GPU memory of the server's processes after load"),
    _m("gpu_memory_peak_bytes", "B", LOWER, "10%", "peak GPU memory under load"),
    _m("host_memory_bytes", "B", LOWER, "15%", "PSS of the server's process tree"),
    _m("latency_p50_ms", "ms", LOWER, "15%", "median request latency"),
    _m("latency_p90_ms", "ms", LOWER, "20%", "90th percentile request latency"),
    _m("latency_p99_ms", "ms", LOWER, "30%", "99th percentile request latency"),
    _m("latency_mean_ms", "ms", LOWER, "15%", "mean request latency"),
    _m("throughput_tokens_per_s", "tokens/s", HIGHER, "10%", "input tokens embedded per second"),
    _m("throughput_requests_per_s", "req/s", HIGHER, "10%", "requests completed per second"),
    _m("max_throughput_tokens_per_s", "tokens/s", HIGHER, "10%", "the best tokens/s of a concurrency sweep"),
    _m("boot_seconds", "s", LOWER, "50%", "launch to ready"),
    _m("cmteb_avg", "points", HIGHER, 0.5, "C-MTEB average main score, 0-100"),
    _m("cmteb_sts_avg", "points", HIGHER, 0.5, "average of the 7 C-MTEB STS tasks, 0-100"),
    _m("stsb_spearman", "points", HIGHER, 0.5, "STS-B cosine Spearman, 0-100"),
    _m("reference_min_cosine", "cosine", HIGHER, 0.0001, "worst cosine of served vs reference vectors",
       half=0.001),
    _m("drift_min_cosine", "cosine", HIGHER, 0.001, "worst cosine of the probe set vs its stored vectors",
       half=0.01),
    _m("l2_norm_mean", "norm", EXACT, 0.01, "mean L2 norm of the probe vectors (1 when the server normalises)"),
    # A text's vector does not depend on what else is in its batch: 1 on every server, never a stored figure.
    _m("batch_invariance_min_cosine", "cosine", HIGHER, 0.0001, "worst cosine of a text alone vs in a batch",
       fixed_baseline=1.0, half=0.001),
    _m("dimensions", "dims", EXACT, 0, "length of the served vectors"),
    _m("context_length", "tokens", EXACT, 0, "longest input the server accepts"),
    # A healthy server fails no request: retries that hide failures must not hide the figure.
    _m("failed_requests_percent", "%", LOWER, 0, "request attempts that got a server error or no answer",
       fixed_baseline=0.0),
    # Paired figures: the two servers' windows alternate, so both see the same noise and the ratio keeps the
    # difference; that is why their tolerances can be a third of the stored-baseline ones.
    _paired("paired_latency_p50_ratio", LOWER, "5%", "median of the request pairs' latency ratios, candidate / incumbent",
            "ms"),
    _paired("paired_latency_mean_ratio", LOWER, "5%", "candidate / incumbent mean latency, paired requests", "ms"),
    _paired("paired_throughput_ratio", HIGHER, "5%", "candidate / incumbent tokens/s, paired windows", "tokens/s"),
    _paired("paired_memory_ratio", LOWER, "10%", "candidate / incumbent memory of the server", "B"),
    # A fleet's own figures, its parts measured in the same minutes and judged as paired ones: equal workers give 1,
    # and a gateway that adds nothing gives 1.
    _paired("fleet_balance_ratio", LOWER, "15%", "the slowest worker's median latency over the other workers', "
            "requests through the gateway", "ms", sides=("the other workers", "the slowest worker")),
    _paired("gateway_overhead_ratio", LOWER, "10%", "median of the request pairs' latency ratios, through the gateway "
            "/ straight to the worker it chose", "ms", sides=("straight to the worker", "through the gateway")),
    _m("dead_workers", "workers", LOWER, 0, "workers of the fleet that exited during the run", fixed_baseline=0.0),
    # Two servers of the same files and dtype compute the same vectors: to ~1e-7 in float32.
    _paired("paired_min_cosine", HIGHER, 0.0001, "worst cosine of a probe text, candidate vs incumbent vectors",
            None, unit="cosine", half=0.001),
)}

# Scores of any mteb task or user data set: "mteb:<TaskName>" and "data:<name>", 0-100 points.
SCORE_FAMILIES = ("mteb:", "data:")
PAIRED_SCORE = "paired:"  # paired:mteb:<TaskName>: the candidate's score minus the incumbent's


def metric(name: str) -> Metric:
    """The metric's definition; raises KeyError naming the known ones."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    if name.startswith(SCORE_FAMILIES) and len(name.split(":", 1)[1]) > 0:
        return _m(name, "points", HIGHER, 0.5, f"main score of {name.split(':', 1)[1]}, 0-100")
    if name.startswith(PAIRED_SCORE) and name.removeprefix(PAIRED_SCORE).startswith(SCORE_FAMILIES):
        score = name.removeprefix(PAIRED_SCORE)
        # Half the stored tolerance: the same items on both sides, so their own spread cancels.
        return _paired(name, HIGHER, 0.25, f"candidate - incumbent score of {score.split(':', 1)[1]}, points",
                       "points", unit="points", baseline=0.0)
    raise KeyError(
        f"unknown metric {name!r}; known: {', '.join(CATALOGUE)}, or mteb:<TaskName> / data:<name> for task scores"
    )


def label(metric_name: str, shape: str | None) -> str:
    """A figure's name in files and tables: the metric, and the shape it was measured at when it has one:
    ``latency_p50_ms (batch 1 x 16 tokens)``. Two shapes are two figures; they never judge each other."""
    return f"{metric_name} ({shape})" if shape else metric_name


def parse_label(text: str) -> tuple[str, str | None]:
    """``"latency_p50_ms (batch 1 x 16 tokens)"`` -> ``("latency_p50_ms", "batch 1 x 16 tokens")``."""
    match = re.fullmatch(r"(\S+) \((.+)\)", text)
    return (match.group(1), match.group(2)) if match else (text, None)
