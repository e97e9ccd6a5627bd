"""Benchmarks of the performance budget: `python -m bench.run` or `make bench` (bench/run.py)."""
