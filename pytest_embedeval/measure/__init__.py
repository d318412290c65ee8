"""Measurements of a running server; free of pytest."""
