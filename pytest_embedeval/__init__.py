"""pytest-embedeval: regression tests for embedding-model deployments."""

__version__ = "0.1.0"
