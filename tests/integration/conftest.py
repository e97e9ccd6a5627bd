"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def fits(monkeypatch) -> list[int]:
    """Counts the PK fits (the real fit runs): one entry per call of ``pk.fit``."""
    from monitoring import forecasting

    calls: list[int] = []
    real = forecasting.pk.fit

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(forecasting.pk, "fit", counted)
    return calls
