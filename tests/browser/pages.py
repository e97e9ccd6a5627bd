"""Fixtures and helpers shared by the page tests (test_pages, test_accessibility, test_csp).

A test module takes the fixtures by assigning them to module names (``demo = pages.demo``),
which is how pytest finds fixtures defined outside conftest.py."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connections

from monitoring.models import Patient

# A marker on `window` survives htmx swaps and is gone after any full page load.
SET_MARKER = "window.__noReload = 1"
MARKER_KEPT = "window.__noReload === 1"
CHART = "[data-chart-source]"
CHART_DRAWN = "[data-chart-source][data-chart-drawn] .main-svg"
# Troughs drawn in the chart: the traces the figure tags meta="troughs" (legend keys excluded).
CHART_POINTS = """el => el.data
    .filter(t => t.meta === 'troughs')
    .reduce((n, t) => n + t.x.filter(x => x !== null).length, 0)"""


@pytest.fixture
def demo(db) -> dict[str, Patient]:
    """The fictional demo patients DEMO-001 … DEMO-014, every alert code among them. The
    history is written relative to today, so the tests hold on any day."""
    call_command("seed_demo", force=True, verbosity=0)
    return {p.mrn: p for p in Patient.objects.filter(mrn__startswith="DEMO-")}


@pytest.fixture
def clinician(request, page_for):
    """A Chromium page signed in as a clinician, on the worklist (tests/browser/conftest.py).
    A fixed username keeps the screenshots the same whichever tests run. When the test also
    asks for `demo`, the patients exist before the worklist first loads."""
    if "demo" in request.fixturenames:
        request.getfixturevalue("demo")
    yield page_for("clinician", username="clinician")
    # ORM calls made while Playwright runs get their own connection; close it, or
    # PostgreSQL refuses to drop the test database at the end of the run.
    connections.close_all()


def open_patient(page, patient: Patient, query: str = "") -> None:
    """Load the patient page and wait until plotly has drawn the chart."""
    page.goto(f"/patients/{patient.pk}/{query}")
    page.wait_for_selector(CHART_DRAWN)
