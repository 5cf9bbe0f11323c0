"""Benchmarks that print figures: `python -m benchmarks` (see docs/benchmarks.md).

Speed is measured here, never asserted in tests. Every ratio is measured side by side in one run,
on one thread, as the median of repeats.
"""
