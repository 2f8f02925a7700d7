"""vidzoo benchmark scripts (run them as `python benchmarks/<script>.py`)."""
