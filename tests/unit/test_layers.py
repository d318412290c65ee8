"""The package's layers: an import only goes down, and no modules import each other in a circle.

The layers, top to bottom, are the sub-packages (README, "Development"); a module may import its own layer
and those below it. Read from the source (every import, function-level ones too), so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_embedeval

PACKAGE = Path(pytest_embedeval.__file__).parent
# Top first. The face is the package's top level: plugin.py, cli.py and __init__.py.
LAYERS = ("face", "report", "run", "judge", "store", "measure", "serve", "facts")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # the package's __init__: its version, which facts read (environment, the run record)
        return "facts"
    return parts[1] if parts[1] in LAYERS else "face"


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports (a name imported from a package counts as the package,
    unless the name is a module of its own)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source not in known:
                continue
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    found.discard(module)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {module: imported(module, path, known) for module, path in known.items()}


def test_every_module_sits_in_a_layer():
    assert {layer(m) for m in modules()} <= set(LAYERS)


def test_imports_only_go_down():
    rank = {name: index for index, name in enumerate(LAYERS)}
    upward = [f"{module} ({layer(module)}) imports {target} ({layer(target)})"
              for module, targets in graph().items() for target in sorted(targets)
              if rank[layer(target)] < rank[layer(module)]]
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_no_circle_of_imports():
    edges = graph()
    circles, state = [], {}

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not circles, "circles:\n" + "\n".join(circles)


def test_the_checker_sees_an_upward_import(tmp_path):
    # The reader itself: a facts module importing the judge is found.
    path = tmp_path / "x.py"
    path.write_text("from ..judge import rules\n")
    known = {"pytest_embedeval.judge": PACKAGE, "pytest_embedeval.judge.rules": PACKAGE}
    assert imported("pytest_embedeval.facts.x", path, known) == {"pytest_embedeval.judge.rules"}


def test_the_readme_shows_every_layer_in_its_place():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Development", 1)[1].split("```")[1]
    shown = [line.split()[0].rstrip("/") for line in block.splitlines()[2:] if line.startswith("  ") and line[2] != " "]
    # The face's own sub-packages (upgrade/) follow its modules.
    face_packages = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py")
                           if path.parent.name not in LAYERS)
    assert shown == ["plugin.py,", *face_packages, *LAYERS[1:]]  # top first, as LAYERS
