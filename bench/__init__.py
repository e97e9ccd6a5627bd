"""Benchmarks of the performance budget: `python -m bench.run` or `make bench` (bench/run.py)."""

import tdm_site  # noqa: F401  (one BLAS thread, set before numpy loads)
