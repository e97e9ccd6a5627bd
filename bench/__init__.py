"""Benchmarks; importing tdm_site first sets one BLAS thread before numpy loads."""

import tdm_site  # noqa: F401
