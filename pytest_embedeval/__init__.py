"""pytest-embedeval: regression tests for embedding-model deployments.

PYTEST_DONT_REWRITE: a library, not test code; it asserts nothing, and an editable install that pytest cannot
rewrite would otherwise warn in every in-process run after the first ("Module already imported").
"""

__version__ = "0.1.0"
