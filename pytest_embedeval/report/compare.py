"""The comparison article's table, measured: models side by side, the article's figure beside each."""

from __future__ import annotations

from pathlib import Path

from ..store.baselines import ModelBaselines
from .tables import table
from ..run.record import ModelRun
from ..judge.verdicts import format_value
from ..facts.metrics import metric, parse_label

# (row label, metric name); the memory row takes GPU memory, else host memory.
ROWS = (
    ("memory", ("gpu_memory_bytes", "host_memory_bytes")),
    ("latency p50 (bs=1, 128 tokens)", ("latency_p50_ms",)),
    ("latency p99", ("latency_p99_ms",)),
    ("max throughput", ("max_throughput_tokens_per_s", "throughput_tokens_per_s")),
    ("C-MTEB average", ("cmteb_avg",)),
    ("C-MTEB STS average", ("cmteb_sts_avg",)),
    ("STS-B", ("stsb_spearman",)),
    ("shipped STS (en)", ("mteb:EmbedEvalSTS-en",)),
    ("shipped STS (zh)", ("mteb:EmbedEvalSTS-zh",)),
    ("shipped retrieval (en)", ("mteb:EmbedEvalRetrieval-en",)),
    ("shipped retrieval (zh)", ("mteb:EmbedEvalRetrieval-zh",)),
)


ARTICLE_SHAPE = "batch 1 x 128 tokens"  # the article's latency figures: one input of 128 tokens


def _measured(run: ModelRun, names: tuple[str, ...]) -> tuple[str, float] | None:
    """(label, value) of the first metric of ``names`` the run measured, at the article's shape where it was."""
    values = run.measurements()
    for name in names:
        labels = sorted((found for found in values if parse_label(found)[0] == name),
                        key=lambda found: parse_label(found)[1] != ARTICLE_SHAPE)
        if labels:
            return labels[0], values[labels[0]]
    return None


def _article(baselines: ModelBaselines | None, figure_label: str) -> str:
    profile = baselines.profiles.get("article") if baselines else None
    name = parse_label(figure_label)[0]
    entry = profile and (profile.metrics.get(figure_label) or profile.metrics.get(name))
    if entry is None:
        return ""
    shown = format_value(entry.value, metric(name).unit)
    return f" (article {shown}{', disputed' if entry.disputed else ''})"


def comparison_table(runs: list[ModelRun], baselines: dict[str, ModelBaselines], markdown: bool = False) -> str:
    headers = ["", *(f"{run.model} [{run.profile.hardware}]" for run in runs)]

    def fact(run: ModelRun, name: str, shown=str) -> str:
        value = run.facts.get(name)
        return shown(value) if value not in (None, "") else "-"

    rows = [
        ["parameters", *(fact(r, "parameters") for r in runs)],
        ["context length", *(fact(r, "max_tokens", lambda v: f"{v} tokens") for r in runs)],
        ["dimensions", *(fact(r, "dimensions") for r in runs)],
        ["Matryoshka", *(fact(r, "matryoshka", lambda v: f"{v[0]}-{v[1]}") if r.facts.get("matryoshka") else "no"
                         for r in runs)],
        ["instructions", *(fact(r, "instructions", lambda v: "yes" if v else "no") for r in runs)],
    ]
    for label, names in ROWS:
        cells = []
        for run in runs:
            found = _measured(run, names)
            if found is None:
                cells.append("-")
            else:
                figure_label, value = found
                cells.append(format_value(value, metric(parse_label(figure_label)[0]).unit)
                             + _article(baselines.get(run.model), figure_label))
        if any(cell != "-" for cell in cells):
            rows.append([label, *cells])
    return table(headers, rows, markdown)


def _series(run: ModelRun) -> list[tuple[str, list[float], float]]:
    """(label, p50/p90/p99 ms, tokens/s) of the run's server, and of its paired incumbent where there is one."""
    found = _measured(run, ("max_throughput_tokens_per_s", "throughput_tokens_per_s"))
    latencies = [(_measured(run, (name,)) or ("", 0.0))[1] for name in _PERCENTILES]
    series = [(run.model, latencies, found[1] if found else 0.0)]
    pairs = {v.metric: v.pair for v in run.verdicts if v.pair}
    if "paired_latency_p50_ratio" in pairs or "paired_throughput_ratio" in pairs:
        p50 = pairs.get("paired_latency_p50_ratio", (float("nan"),))[0]
        tokens = pairs.get("paired_throughput_ratio", (0.0,))[0]
        series.append((f"{run.model} (incumbent)", [p50, float("nan"), float("nan")], tokens))
    return series


_PERCENTILES = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms")


def chart(runs: list[ModelRun], path: Path) -> Path:
    """Latency percentiles and throughput per model (and per paired incumbent: p50 only), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(10, 4))
    series = [entry for run in runs for entry in _series(run)]
    width = 0.8 / max(len(series), 1)
    for i, (label, percentiles, tokens) in enumerate(series):
        latency.bar([p + i * width for p in range(3)], percentiles, width, label=label)
        throughput.bar([label], [tokens])
    latency.set_xticks([p + width * (len(series) - 1) / 2 for p in range(3)], ["p50", "p90", "p99"])
    latency.set_ylabel("latency (ms)")
    latency.set_title("request latency")
    latency.legend()
    throughput.set_ylabel("tokens/s")
    throughput.set_title("throughput (best measured)")
    hardware = ", ".join(sorted({run.profile.hardware for run in runs}))
    figure.suptitle(f"Measured on {hardware}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
