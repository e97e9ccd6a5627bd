"""monitoring.datestamps prints date-times as the template's date filter does."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.template import engines
from django.utils import timezone

from monitoring import datestamps

FILTERS = '{{ t|date:"c" }}|{{ t|date:"Y-m-d H:i" }}|{{ t|date:"Y-m-d" }}'


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC", "America/New_York"])
def test_the_same_text_as_the_date_filter(zone):
    template = engines["django"].from_string(FILTERS)
    start = datetime(2025, 3, 29, 23, 30, 15, 120, tzinfo=ZoneInfo("UTC"))  # around DST
    with timezone.override(zone):
        for hours in range(0, 72, 5):
            moment = start + timedelta(hours=hours)
            expected = template.render({"t": moment})
            ours = f"{datestamps.iso(moment)}|{datestamps.minute(moment)}|{datestamps.day(moment)}"
            assert ours == expected
