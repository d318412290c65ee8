"""Layer 3, measuring: the markers (``markers/``), the load generator, statistics, memory, the probe texts, the
in-process reference model and accuracy through mteb. Free of pytest; imports serving and facts only."""
