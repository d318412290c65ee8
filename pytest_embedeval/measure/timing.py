"""A timed figure's samples: every request's latency in seconds, and the shape that produced them.

``store/timings.py`` is its store (pytest-benchmark's JSON format).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Timing:
    """One marker measurement: every request's latency in seconds, and the shape that produced them."""

    name: str  # "latency batch 1 x 128 tokens": equal names are comparable
    samples: list[float]
    params: dict = field(default_factory=dict)  # batch_size, tokens, concurrency
    test: str = ""  # the pytest node id
    extra: dict = field(default_factory=dict)  # figures that are not timings (tokens/s, ...)

    @classmethod
    def from_dict(cls, data: dict) -> "Timing":
        return cls(**data)


def timing_name(kind: str, batch_size: int, tokens: int, concurrency: int = 1) -> str:
    shape = f"batch {batch_size} x {tokens} tokens"
    return f"{kind} {shape}" if concurrency == 1 else f"{kind} {shape}, concurrency {concurrency}"
