"""What the tests of both lanes share and that is not a test: the STAND-IN server, stand-in models, inner runs,
task data and user suites. tests/conftest.py puts tests/ on sys.path, so test modules import ``support.<name>``."""
