"""The pull request's one comment, rendered from a saved paired run: a hidden marker line that finds it again, the
headline verdict, the pair tables (speed and vectors, accuracy on the same items, memory), a chart of the paired
ratios, and what each side ran. Text from the report is made inert: it was written where the pull request's own
code ran."""

from __future__ import annotations

import html
import math
import re
import shlex
from dataclasses import replace

from .. import __version__
from ..facts.metrics import PAIRED_SCORE, Tolerance, metric
from ..judge.verdicts import Outcome, Verdict
from ..run.record import ModelRun, Run
from .tables import PAIRED, pair_table, table, verdict_table

MAX_COMMENT_CHARS = 65_000  # GitHub refuses a comment body over 65,536 characters
PER_BOOT = ("--port", "--host", "--config")  # a free port and a key file of each boot: no difference of the stack

_ICON = {"fail": "❌", "cannot tell": "❔", "pass": "✅"}


# -- the Markdown ---------------------------------------------------------------------------------


def marker(run: Run) -> str:
    """The hidden first line that finds this comment again: one comment per pull request and set of models."""
    models = ",".join(sorted(re.sub(r"[^\w./+-]", "_", name).replace("--", "-") for name in run.models))
    return f"<!-- pytest-embedeval: {models} -->"


def headline(run: Run) -> tuple[str, list[Verdict]]:
    """("fail" | "cannot tell" | "pass", the verdicts that say why). A run without a single conclusive paired
    figure cannot tell, whatever its other figures say: the pull request asked about the pair."""
    if failing := run.failing():
        return "fail", failing
    paired = [v for v in run.verdicts() if _is_paired(v)]
    unsettled = [v for v in paired if v.outcome in (Outcome.INCONCLUSIVE, Outcome.NO_BASELINE, Outcome.NOT_A_NUMBER)]
    return ("cannot tell", unsettled) if unsettled or not paired else ("pass", [])


def render(run: Run, run_url: str | None = None) -> str:
    """The whole comment: marker, headline, per model the pair tables, chart and what each side ran."""
    verdict, why = headline(run)
    lines = [marker(run), f"## {_ICON[verdict]} Embeddings, candidate against incumbent: {_title(verdict, why)}", ""]
    lines += _why_lines(verdict, why, run)
    for model_run in run.models.values():
        lines += _model_section(model_run, run.environment)
    created = f", run of {_text(run.created)}" if run.created else ""
    link = f" · [workflow run]({run_url})" if run_url else ""
    lines.append(f"<sub>pytest-embedeval {__version__}{created}{link}. Updated in place on every push.</sub>")
    body = "\n".join(lines) + "\n"
    if len(body) > MAX_COMMENT_CHARS:
        cut = "\n\n(cut at GitHub's comment limit: the whole report is the workflow run's artifact)\n"
        body = body[:MAX_COMMENT_CHARS - len(cut)] + cut
    return body


def _title(verdict: str, why: list[Verdict]) -> str:
    if verdict == "fail":
        counts: dict[str, int] = {}
        for v in why:
            counts[v.outcome.value] = counts.get(v.outcome.value, 0) + 1
        return ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    return verdict


def _why_lines(verdict: str, why: list[Verdict], run: Run) -> list[str]:
    if verdict == "pass":
        paired = [v for v in run.verdicts() if _is_paired(v)]
        improved = sum(v.outcome is Outcome.IMPROVED for v in paired)
        better = f", {improved} improved" if improved else ""
        return [f"No paired figure moved past its tolerance ({len(paired)} figures{better}).", ""]
    if not why:
        return [("This run measured no pair: start it with `--embed-incumbent-python` (or another "
                 "`--embed-incumbent-*` option) to compare the candidate with the incumbent."), ""]
    intro = "What fails:" if verdict == "fail" else "Not a pass: these figures cannot tell a change from none."
    return [intro, "", *(f"- {_text(v.reason())}" for v in why[:10]),
            *([f"- and {len(why) - 10} more"] if len(why) > 10 else []), ""]


def _model_section(model_run: ModelRun, environment: dict) -> list[str]:
    verdicts = [_escaped(v) for v in model_run.verdicts]
    incumbent = model_run.server.get("incumbent", {})
    described = _text(incumbent.get("described", "the incumbent server"))
    setting = (f"The candidate against {described}, measured side by side." if incumbent
               else "The candidate alone: this run had no incumbent.")
    lines = [f"### {_text(model_run.model)} on {_text(str(model_run.profile))}", "", setting, ""]
    accuracy = lambda v: v.metric.startswith(PAIRED_SCORE)
    memory = lambda v: v.metric == "paired_memory_ratio"
    groups = (("Speed and vectors", lambda v: not accuracy(v) and not memory(v)),
              ("Accuracy on the same items (candidate minus incumbent, points)", accuracy), ("Memory", memory))
    for title, belongs in groups:
        shown = pair_table([v for v in verdicts if belongs(v)], markdown=True)
        if shown:
            lines += [f"#### {title}", "", shown, ""]
    lines += _chart(verdicts)
    others = [v for v in verdicts if v.failing and not _is_paired(v)]
    if others:
        lines += ["#### The candidate's other failing figures", "", verdict_table(others, markdown=True), ""]
    return lines + _sides(model_run, incumbent, environment)


def _chart(verdicts: list[Verdict]) -> list[str]:
    """A Mermaid bar chart of the paired ratios (GitHub draws it), with the tolerance band as two lines."""
    ratios = [v for v in verdicts if v.unit == "ratio" and v.metric in PAIRED and math.isfinite(v.measured)]
    if not ratios:
        return []
    bands = [_band(v) for v in ratios]
    values = [v.measured for v in ratios] + [x for band in bands for x in band]
    low, high = min(values) - 0.02, max(values) + 0.02
    names = ", ".join(f'"{_axis_name(v)}"' for v in ratios)
    number = lambda xs: ", ".join(f"{x:.4f}" for x in xs)
    return ["```mermaid", "xychart-beta", '    title "Candidate / incumbent (bars; lines: the tolerance band)"',
            f"    x-axis [{names}]", f'    y-axis "ratio" {low:.2f} --> {high:.2f}',
            f"    bar [{number(v.measured for v in ratios)}]",
            f"    line [{number(b[0] for b in bands)}]", f"    line [{number(b[1] for b in bands)}]", "```", ""]


def _band(v: Verdict) -> tuple[float, float]:
    """1 -+ the tolerance the figure was judged with (a ratio's is relative: "5%")."""
    try:
        width = Tolerance.parse(v.tolerance).value
    except ValueError:
        width = metric(v.metric).tolerance.value
    return 1 - width, 1 + width


def _axis_name(v: Verdict) -> str:
    short = v.metric.removeprefix("paired_").removesuffix("_ratio")
    name = f"{short} ({v.shape})" if v.shape else short
    return re.sub(r"[^\w .:()-]", "", name)[:40]


def _sides(model_run: ModelRun, incumbent: dict, environment: dict) -> list[str]:
    """What each side ran: software, dtype, deployment, threads, machine, driver, and the server commands."""
    driver = environment.get("gpu_driver")
    driver_text = f"{driver} (CUDA {environment.get('cuda_driver')})" if driver else "none (CPU)"
    booted_here = incumbent.get("argv") is not None  # a server met by URL ran somewhere else
    rows = [("software", incumbent.get("software", "-"), model_run.software),
            ("dtype", incumbent.get("dtype", "-"), model_run.profile.dtype),
            ("OpenMP threads", incumbent.get("omp_threads") or "-", model_run.server.get("omp_threads") or "-"),
            ("machine", model_run.machine if booted_here else incumbent.get("url", "-"), model_run.machine),
            ("GPU driver", driver_text if booted_here else "-", driver_text)]
    if booted_here and model_run.server.get("argv"):
        theirs, ours = _flags(incumbent["argv"]), _flags(model_run.server["argv"])
        rows.append(("server flags only this side has", " ".join(f for f in theirs if f not in ours) or "-",
                     " ".join(f for f in ours if f not in theirs) or "-"))
    lines = ["#### What each side ran", "",
             table(("", "incumbent", "candidate"), [[_text(str(c)) for c in row] for row in rows], markdown=True), ""]
    commands = [(side, argv) for side, argv in (("incumbent", incumbent.get("argv")),
                                                ("candidate", model_run.server.get("argv"))) if argv]
    if commands:
        lines += ["<details><summary>The servers' command lines</summary>", ""]
        for side, argv in commands:
            lines += [f"{side}:", "", *_code(shlex.join(map(str, argv))), ""]
        lines += ["</details>", ""]
    return lines


def _flags(argv: list) -> list[str]:
    """A server's options as "--name value" words, less those that change on every boot (port, host, key file)."""
    words, flags = [str(word) for word in argv], []
    for i, word in enumerate(words):
        if word.startswith("--") and word.split("=", 1)[0] not in PER_BOOT:
            value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else None
            flags.append(word if value is None else f"{word} {value}")
    return flags


def _code(text: str) -> list[str]:
    """A fenced block no backtick in ``text`` can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, text, fence]


def _text(value: str) -> str:
    """Text from the report, made inert in Markdown: it came from the GPU runner, where the pull request's own
    code ran, so no table cell, tag or image of its making reaches the page."""
    return html.escape(" ".join(str(value).split()), quote=False).replace("|", "\\|")


def _escaped(v: Verdict) -> Verdict:
    return replace(v, metric=_text(v.metric), shape=v.shape and _text(v.shape),
                   tolerance=v.tolerance and _text(v.tolerance))


def _is_paired(v: Verdict) -> bool:
    return v.metric in PAIRED or v.metric.startswith(PAIRED_SCORE)
