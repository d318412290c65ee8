"""Layer 1, facts: what every other layer reads and nothing here imports from them: the model table, the
hardware, the metric catalogue, NVML, names, the options and key the plugin owns on a server, vector arithmetic."""
