"""The library imports without pytest: every module SGLang's own processes or the CLI may load, imported in a fresh
python, leaves pytest out (with mteb and SGLang among them, that takes seconds)."""

import subprocess
import sys


LIBRARY_IMPORTS = """
import importlib, pkgutil, sys
import pytest_embedeval
skipped = ("pytest_embedeval.plugin", "pytest_embedeval.data", "pytest_embedeval.serve.sglang_models")
for module in pkgutil.walk_packages(pytest_embedeval.__path__, "pytest_embedeval."):
    if not module.name.startswith(skipped):
        importlib.import_module(module.name)
        assert "pytest" not in sys.modules and "_pytest" not in sys.modules, module.name
print("imported without pytest")
"""


def test_the_library_imports_without_pytest():
    # SGLang's own processes import from engines/, the CLI reads reports: none of them should load pytest.
    done = subprocess.run([sys.executable, "-c", LIBRARY_IMPORTS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "imported without pytest" in done.stdout, done.stderr[-3000:]
