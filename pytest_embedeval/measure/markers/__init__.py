"""The markers: each one a plain function from a server (``Target``) and its arguments to what it measured.

    @pytest.mark.embed_latency(batch_size=1, tokens=128, tolerance="10%")
    def test_latency(): ...

A marker measures and returns ``Measured``; it judges nothing. Its arguments are of two kinds, declared
apart: the measuring function's own (``batch_size``, ``tokens``...) and the judge's (``JUDGED_BY``: how far
a figure may move), which the run session hands to the judge. Nothing here imports pytest, and the heavy
imports wait until a marker runs. One module per marker, its paired variant beside it.
"""

from __future__ import annotations

import inspect

from .embed_accuracy import embed_accuracy
from .embed_drift import embed_drift
from .embed_fleet import embed_fleet
from .embed_latency import embed_latency
from .embed_memory import embed_memory
from .embed_throughput import embed_throughput
from .target import Measured, Measurement, MeasurementError, NotMeasurable, Target

__all__ = ["MARKERS", "JUDGED_BY", "TIMED", "Measured", "Measurement", "MeasurementError", "NotMeasurable",
           "Target", "arguments", "bind", "help_line"]

MARKERS = {f.__name__: f for f in (embed_latency, embed_throughput, embed_memory, embed_accuracy, embed_drift,
                                    embed_fleet)}
# The judge's arguments each marker takes: a tolerance ("10%", or a number in the metric's unit) for its
# figures against their baselines, and one for its paired figures against the built-in 1 (or 0).
JUDGED_BY = {"embed_latency": ("tolerance", "paired_tolerance"),
             "embed_throughput": ("tolerance", "paired_tolerance"),
             "embed_memory": ("tolerance", "paired_tolerance"),
             "embed_accuracy": ("tolerance",),
             "embed_drift": ("tolerance", "paired_tolerance"),
             # Per-worker latencies against their baselines; balance and overhead, measured in the same minutes, as
             # paired figures against the built-in 1.
             "embed_fleet": ("tolerance", "paired_tolerance")}
# Timed figures move with the machine's moment: the session measures a regressed one a second time.
TIMED = ("embed_latency", "embed_throughput", "embed_fleet")


def signature(name: str) -> inspect.Signature:
    """The marker's whole signature: the measuring function's arguments, then the judge's (keyword only)."""
    measuring = [p for p in inspect.signature(MARKERS[name]).parameters.values() if p.name != "target"]
    judging = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in JUDGED_BY[name]]
    return inspect.Signature(measuring + judging)


def bind(name: str, args: tuple, kwargs: dict) -> inspect.BoundArguments:
    """Check a marker's arguments against its signature; a misspelling names the accepted ones."""
    whole = signature(name)
    try:
        return whole.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"@pytest.mark.{name}: {exc}; accepted arguments: {', '.join(whole.parameters)}") from None


def arguments(name: str, args: tuple, kwargs: dict) -> tuple[dict, dict]:
    """A marker's arguments by name, split into (the measuring function's, the judge's)."""
    bound = bind(name, args, kwargs).arguments
    judging = {key: bound.pop(key) for key in JUDGED_BY[name] if key in bound}
    return dict(bound), judging


def help_line(name: str) -> str:
    params = [f"{n}={p.default!r}" for n, p in signature(name).parameters.items()]
    return f"{name}({', '.join(params)}): {inspect.getdoc(MARKERS[name]).splitlines()[0]}"
