"""Benchmarks (issue 7): ``python -m bench.run`` or ``make bench``; see bench/run.py."""
