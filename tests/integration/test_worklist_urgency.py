"""The worklist's order by clinical weight, its reviews, and its sortable columns."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from monitoring.models import Patient
from tests.integration.test_worklist import add_patients, load, stamp

pytestmark = pytest.mark.django_db

URL = reverse("monitoring:worklist")

CLINIC = [
    # mrn, value, hours from dose to draw (None: not recorded), days ago, band
    ("U-CRIT", "16", 12, 5),  # critical, newer
    ("U-CRIT-OLD", "1.5", 12, 20),  # critical, older: first
    ("U-LOW", "3.2", 12, 30),  # out of range, valid, steady
    ("U-MIST", "7.5", 8, 40),  # mistimed: a timing problem, older
    ("U-NODOSE", "5.0", None, 10),  # no last-dose time: a timing problem, newer
    ("U-OK", "5.0", 12, 10),  # in range, 36 months met: no alert
]
URGENCY_ORDER = ["U-CRIT-OLD", "U-CRIT", "U-LOW", "U-MIST", "U-NODOSE", "U-OK"]


@pytest.fixture
def clinic():
    add_patients(
        [
            {
                "mrn": mrn,
                "family": f"Fam{mrn[2:]}",
                "given": "Pat",
                "value": value,
                "dose_hours": hours,
                "trough_days_ago": ago,
                "start_days_ago": 1200 if mrn == "U-OK" else 400,
            }
            for mrn, value, hours, ago in CLINIC
        ]
    )


def order(client, query: dict | None = None) -> list[str]:
    body = client.get(URL, query or {}).content.decode()
    return re.findall(r'<span class="worklist__mrn">([^<]+)</span>', body)


def test_critical_troughs_come_first_then_valid_out_of_range_then_timing(viewer_client, clinic):
    assert order(viewer_client) == URGENCY_ORDER
    body = viewer_client.get(URL).content.decode()
    assert "Most urgent first: critical troughs (at or above 15 or at or below 2 ng/mL" in body
    assert body.count("critical trough</span>") == 2


def test_a_reviewed_alert_drops_in_rank_and_comes_back_with_a_new_trough(clinician_client, clinic):
    patient = Patient.objects.get(mrn="U-LOW")
    response = clinician_client.post(
        reverse("monitoring:alert_acknowledge", args=[patient.pk, "trough_below_range"])
    )
    assert response.status_code == 302
    ranked = order(clinician_client)
    assert ranked.index("U-LOW") > ranked.index("U-NODOSE")  # below the timing problems
    assert "Trough below range (reviewed)" in clinician_client.get(URL).content.decode()
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,assay,accession",
        [f"U-LOW,{stamp(1, 8)},{stamp(2, 20)},2.9,ng/mL,LCMSMS,ACC-NEW"],
    )
    assert order(clinician_client) == URGENCY_ORDER


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("mrn", sorted(URGENCY_ORDER)),
        ("-mrn", sorted(URGENCY_ORDER, reverse=True)),
        ("trough_date", ["U-MIST", "U-LOW", "U-CRIT-OLD", "U-NODOSE", "U-OK", "U-CRIT"]),
        ("-trough_value", ["U-CRIT", "U-MIST", "U-NODOSE", "U-OK", "U-LOW", "U-CRIT-OLD"]),
        ("next_due", ["U-MIST", "U-LOW", "U-CRIT-OLD", "U-NODOSE", "U-OK", "U-CRIT"]),
        ("-months", ["U-OK", "U-CRIT", "U-CRIT-OLD", "U-LOW", "U-MIST", "U-NODOSE"]),
        ("bogus", URGENCY_ORDER),
    ],
)
def test_sorting_by_a_column_is_in_the_url(viewer_client, clinic, sort, expected):
    assert order(viewer_client, {"sort": sort}) == expected


def test_sort_links_keep_the_filters_and_the_filters_keep_the_sort(viewer_client, clinic):
    body = viewer_client.get(URL, {"timing": "valid", "sort": "mrn"}).content.decode()
    assert "?timing=valid&amp;sort=-mrn" in body  # the next click reverses, filter kept
    assert 'aria-sort="ascending"' in body
    assert '<input type="hidden" name="sort" value="mrn"' in body
    assert "Sorted by MRN (ascending)" in body
    assert order(viewer_client, {"timing": "valid", "sort": "mrn"}) == [
        "U-CRIT",
        "U-CRIT-OLD",
        "U-LOW",
        "U-OK",
    ]


def test_a_dose_change_after_a_low_trough_moves_the_row_below_the_open_problems(
    clinician_client, clinic
):
    patient = Patient.objects.get(mrn="U-LOW")
    response = clinician_client.post(
        reverse("monitoring:regimen_add", args=[patient.pk]),
        {
            "effective_at": stamp(0, 0, 30),
            "formulation": "IR",
            "frequency": "BID",
            "daily_dose_mg": "5",
            "reason": "low trough",
        },
    )
    assert response.status_code == 302
    ranked = order(clinician_client)
    assert ranked.index("U-LOW") > ranked.index("U-NODOSE")
