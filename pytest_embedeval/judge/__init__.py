"""Layer 5, the judge: the one place a figure meets its baseline and tolerance (``rules``), and the verdict
it gives (``verdicts``). Reads the store; never writes it."""
