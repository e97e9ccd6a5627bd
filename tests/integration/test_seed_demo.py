"""seed_demo: fictional patients that between them raise every alert code, loaded once."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from monitoring import rules
from monitoring.models import Patient, TroughLevel

pytestmark = pytest.mark.django_db


def test_demo_data_raises_every_alert_code_and_is_idempotent(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo login: demo / demo-clinic-2026" in out.getvalue()
    raised = {code for p in Patient.objects.all() for code in p.alerts}
    assert raised == set(rules.ALERT_CODES)
    counts = (Patient.objects.count(), TroughLevel.objects.count())
    call_command("seed_demo", stdout=io.StringIO())
    assert (Patient.objects.count(), TroughLevel.objects.count()) == counts


def test_demo_data_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo")
    assert Patient.objects.count() == 0
