"""Layer 6, a run: its settings from pytest's options, its session (every figure measured, judged and recorded
once) and its record (what the reports and the JSON file show)."""
