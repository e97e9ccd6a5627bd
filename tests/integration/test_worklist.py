"""The worklist (home page) and its CSV export, through the Django client.

Patients are built with the CSV importer, so their stored summaries are exactly those the
services write; dates are relative to today so the verdicts do not age."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import Patient

pytestmark = pytest.mark.django_db

URL = reverse("monitoring:worklist")
EXPORT_URL = reverse("monitoring:worklist_export")
HTMX = {"HTTP_HX_REQUEST": "true"}


def stamp(days_ago: int, hour: int, minute: int = 0) -> str:
    day = timezone.localdate() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute)).strftime("%Y-%m-%dT%H:%M")


def day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


def load(kind: str, header: str, lines: list[str]) -> None:
    if not lines:
        return
    report = run_csv_import(kind, ("\n".join([header, *lines]) + "\n").encode())
    assert report.ok, [str(p) for p in report.problems]


def add_patients(specs: list[dict]) -> None:
    """Each spec: mrn, family, given and optionally value (ng/mL; None: no trough),
    dose_hours (hours from last dose to the draw; None: not recorded), trough_days_ago,
    start_days_ago (therapy start)."""
    patients, regimens, levels = [], [], []
    for s in specs:
        start = day(s.get("start_days_ago", 400))
        patients.append(
            f"{s['mrn']},{s['family']},{s['given']},1985-01-01,F,ln_maintenance,{start},,IV"
        )
        regimens.append(f"{s['mrn']},{stamp(200, 8)},IR,BID,4")
        if s.get("value", "5.0") is None:
            continue
        ago = s.get("trough_days_ago", 10)
        hours = s.get("dose_hours", 12)
        collected = timezone.localtime(timezone.make_aware(datetime.fromisoformat(stamp(ago, 8))))
        last_dose = (
            (collected - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")
            if hours is not None
            else ""
        )
        levels.append(
            f"{s['mrn']},{stamp(ago, 8)},{last_dose},{s.get('value', '5.0')},ng/mL,LCMSMS,"
            f"ACC-{s['mrn']}"
        )
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start,therapy_end,"
        "ln_class",
        patients,
    )
    load("regimens", "mrn,effective_at,formulation,frequency,daily_dose_mg", regimens)
    load("levels", "mrn,collected_at,last_dose_at,value,unit,assay,accession", levels)


def many(count: int, start: int = 1) -> list[dict]:
    return [
        {"mrn": f"BULK-{i:03d}", "family": f"Bulk{i:03d}", "given": "Pat"}
        for i in range(start, start + count)
    ]


@pytest.fixture
def clinic() -> dict[str, Patient]:
    """Five patients, one per situation the worklist must show."""
    add_patients(
        [
            {"mrn": "MRN-IN", "family": "Inrange", "given": "Ines", "value": "5.0"},
            {"mrn": "MRN-LOW", "family": "Lowe", "given": "Lara", "value": "2.0"},
            {"mrn": "MRN-NODOSE", "family": "Nodose", "given": "Nina", "dose_hours": None},
            {"mrn": "MRN-MIST", "family": "Mistime", "given": "Mia", "dose_hours": 16},
            {
                "mrn": "MRN-OLD",
                "family": "Oldham",
                "given": "Olga",
                "trough_days_ago": 120,
                "start_days_ago": 1200,
            },
        ]
    )
    return {p.mrn: p for p in Patient.objects.all()}


def mrns(response) -> list[str]:
    """The MRNs listed, in order."""
    return re.findall(r'class="worklist__mrn">([^<]+)<', response.content.decode())


def export_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


# --- access ------------------------------------------------------------------------------


def test_it_redirects_anonymous_users_to_login(client):
    for url in (URL, EXPORT_URL):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_it_refuses_a_user_without_view_patient(client, user_factory):
    client.force_login(user_factory())
    assert client.get(URL).status_code == 403
    assert client.get(EXPORT_URL).status_code == 403


def test_it_refuses_writes(viewer_client):
    assert viewer_client.post(URL).status_code == 405


# --- the list ----------------------------------------------------------------------------


def test_it_lists_patients_with_latest_trough_badges_duration_and_next_action(
    viewer_client, clinic
):
    response = viewer_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html

    patient = clinic["MRN-LOW"]
    assert f'href="{reverse("monitoring:patient", args=[patient.pk])}"' in html
    assert "Lowe, Lara" in html
    assert "2.0 ng/mL" in html
    assert (timezone.localdate() - timedelta(days=10)).isoformat() in html
    assert "below range" in html and "in range" in html
    assert "timing valid" in html and "timing unknown" in html and "mistimed" in html
    # Alerts as labelled badges with a severity word and glyph, not colour alone.
    assert "Trough below range" in html
    assert "C12h timing missing" in html
    assert "Sample mistimed" in html
    assert "Trough overdue" in html
    assert '<span class="visually-hidden">Warning: </span>' in html
    assert '<span class="visually-hidden">Information: </span>Under 36 months' in html
    # The next action, in words.
    assert "Review dose" in html
    assert "Add last-dose time" in html
    assert "Re-check trough" in html
    # Months of immunosuppression toward 36.
    assert "13.1 of 36 months" in html  # 400 days / 30.4375
    assert '<progress max="36" value="13.1"' in html
    assert "39.4 of 36 months" in html and "36 months reached" in html  # MRN-OLD


def test_it_leaves_out_archived_patients(viewer_client, clinic):
    Patient.objects.filter(mrn="MRN-IN").update(active=False)
    assert "MRN-IN" not in mrns(viewer_client.get(URL))


def test_it_orders_by_warnings_then_alert_count_then_oldest_trough(viewer_client, clinic):
    listed = mrns(viewer_client.get(URL))
    patients = {p.mrn: p for p in Patient.objects.select_related("latest_level")}
    keys = [
        (
            -patients[m].warning_count,
            -len(patients[m].alerts),
            patients[m].latest_level.collected_at,
        )
        for m in listed
    ]
    assert keys == sorted(keys)
    assert listed[-1] == "MRN-IN"  # no warning at all: last
    assert patients["MRN-IN"].warning_count == 0


def test_it_shows_a_patient_without_trough_and_without_start_date(viewer_client):
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex",
        ["MRN-NEW,Newman,Noor,1990-05-05,F"],
    )
    html = viewer_client.get(URL).content.decode()
    assert "No trough recorded" in html
    assert "start date not recorded" in html


# --- filters and search --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"alert": "trough_below_range"}, {"MRN-LOW"}),
        ({"alert": "c12h_timing_missing"}, {"MRN-NODOSE"}),
        ({"alert": "level_overdue"}, {"MRN-OLD"}),
        ({"range": "below"}, {"MRN-LOW"}),
        ({"range": "in_range"}, {"MRN-IN", "MRN-NODOSE", "MRN-MIST", "MRN-OLD"}),
        ({"timing": "unknown"}, {"MRN-NODOSE"}),
        ({"timing": "mistimed"}, {"MRN-MIST"}),
        ({"timing": "valid", "range": "in_range"}, {"MRN-IN", "MRN-OLD"}),
        ({"q": "mrn-low"}, {"MRN-LOW"}),
        ({"q": "lowe"}, {"MRN-LOW"}),
        ({"q": "Nina"}, {"MRN-NODOSE"}),
        ({"q": "Olga Oldham"}, {"MRN-OLD"}),
        ({"q": "nobody"}, set()),
    ],
)
def test_filters_and_search_narrow_the_list(viewer_client, clinic, params, expected):
    response = viewer_client.get(URL, params)
    assert response.status_code == 200
    assert set(mrns(response)) == expected
    if not expected:
        assert "No active patient matches the filters." in response.content.decode()


def test_an_unknown_filter_value_is_reported_and_ignored(viewer_client, clinic):
    response = viewer_client.get(URL, {"alert": "bogus", "range": "below"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Select a valid choice" in html and "(filter ignored)" in html
    assert set(mrns(response)) == {"MRN-LOW"}  # the valid filter still applies


def test_the_form_works_without_javascript(viewer_client, clinic):
    html = viewer_client.get(URL, {"alert": "trough_below_range"}).content.decode()
    assert re.search(r'<form[^>]*method="get"[^>]*action="/"', html)
    assert 'hx-get="/"' in html and 'hx-push-url="true"' in html
    assert '<option value="trough_below_range" selected>' in html
    assert 'href="/worklist/export.csv?alert=trough_below_range"' in html


# --- htmx ------------------------------------------------------------------------------------


def test_an_htmx_request_gets_only_the_table_fragment(viewer_client, clinic):
    response = viewer_client.get(URL, {"range": "below"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<form" not in html
    assert '<table class="worklist">' in html
    assert mrns(response) == ["MRN-LOW"]
    assert "HX-Request" in response["Vary"]


def test_an_htmx_history_restore_gets_the_whole_page(viewer_client, clinic):
    response = viewer_client.get(URL, **HTMX, HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in response.content.decode()


# --- pagination ----------------------------------------------------------------------------


def test_it_pages_by_fifty(viewer_client):
    add_patients(many(51))
    first = viewer_client.get(URL)
    assert len(mrns(first)) == 50
    html = first.content.decode()
    assert "51 patients" in html and "page 1 of 2" in html
    assert 'href="/?page=2"' in html and 'hx-get="/?page=2"' in html

    second = viewer_client.get(URL, {"page": 2})
    assert len(mrns(second)) == 1
    assert set(mrns(first)).isdisjoint(mrns(second))

    # Out-of-range or junk page numbers fall back to a real page rather than a 404.
    assert len(mrns(viewer_client.get(URL, {"page": 99}))) == 1
    assert len(mrns(viewer_client.get(URL, {"page": "x"}))) == 50


def test_page_links_keep_the_filters(viewer_client):
    add_patients(many(51))
    html = viewer_client.get(URL, {"q": "bulk"}).content.decode()
    assert 'href="/?q=bulk&amp;page=2"' in html


# --- CSV export ----------------------------------------------------------------------------


def test_the_csv_export_lists_the_filtered_patients(viewer_client, clinic):
    response = viewer_client.get(EXPORT_URL, {"alert": "trough_below_range"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = export_rows(response)
    assert [r["mrn"] for r in rows] == ["MRN-LOW"]
    row = rows[0]
    assert list(row) == [
        "mrn",
        "family_name",
        "given_name",
        "latest_collected_at",
        "latest_value_ng_ml",
        "latest_range_flag",
        "latest_timing_flag",
        "months_on_therapy",
        "alerts",
        "next_action",
        "next_trough_due",
    ]
    assert row["family_name"] == "Lowe" and row["given_name"] == "Lara"
    assert row["latest_collected_at"].startswith(
        (timezone.localdate() - timedelta(days=10)).isoformat() + "T08:00:00"
    )
    assert row["latest_value_ng_ml"] == "2.00"
    assert row["latest_range_flag"] == "below"
    assert row["latest_timing_flag"] == "valid"
    assert row["months_on_therapy"] == "13.1"
    assert "trough_below_range" in row["alerts"].split(";")
    assert row["next_action"] == "review dose"
    # 90 days after the latest trough (10 days ago): clinical-rules.md §8.
    assert row["next_trough_due"] == (timezone.localdate() + timedelta(days=80)).isoformat()


def test_the_csv_export_without_filters_lists_every_active_patient_in_worklist_order(
    viewer_client, clinic
):
    rows = export_rows(viewer_client.get(EXPORT_URL))
    assert [r["mrn"] for r in rows] == mrns(viewer_client.get(URL))
    assert len(rows) == 5


def test_the_csv_export_honours_search_and_timing(viewer_client, clinic):
    assert [r["mrn"] for r in export_rows(viewer_client.get(EXPORT_URL, {"q": "nina"}))] == [
        "MRN-NODOSE"
    ]
    rows = export_rows(viewer_client.get(EXPORT_URL, {"timing": "mistimed"}))
    assert [r["mrn"] for r in rows] == ["MRN-MIST"]


def test_the_csv_export_defuses_spreadsheet_formulas_in_names(viewer_client):
    add_patients([{"mrn": "MRN-F", "family": "=HYPERLINK(1)", "given": "@x"}])
    row = export_rows(viewer_client.get(EXPORT_URL))[0]
    assert row["family_name"] == "'=HYPERLINK(1)"
    assert row["given_name"] == "'@x"


# --- stored summaries and query count ------------------------------------------------------


def test_a_summary_from_an_earlier_day_is_refreshed_on_read(viewer_client, clinic):
    """Time alone makes a trough overdue: a summary written yesterday is re-judged."""
    yesterday = timezone.localdate() - timedelta(days=1)
    Patient.objects.update(alert_codes="", warning_count=0, assessed_on=yesterday)
    response = viewer_client.get(URL, {"alert": "level_overdue"})
    assert mrns(response) == ["MRN-OLD"]
    assert not Patient.objects.exclude(assessed_on=timezone.localdate()).exists()


def count_queries(client, url: str = URL) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        if url == EXPORT_URL:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "url",
    [
        URL,
        EXPORT_URL,
        URL + "?sort=-next_due&due=week",
        URL + "?sort=months",
        reverse("monitoring:recall_csv"),
    ],
)
def test_the_query_count_does_not_grow_with_the_patients(
    viewer_client, django_assert_max_num_queries, url
):
    viewer_client.get("/healthz")  # the idle-timeout touch (a session write) happens here
    add_patients(many(5))
    with django_assert_max_num_queries(12):
        small = count_queries(viewer_client, url)
    add_patients(many(35, start=6))
    assert Patient.objects.count() == 40
    with django_assert_max_num_queries(12):
        large = count_queries(viewer_client, url)
    assert small == large


def test_the_daily_refresh_costs_the_same_queries_for_5_and_40_patients(viewer_client):
    yesterday = timezone.localdate() - timedelta(days=1)
    viewer_client.get("/healthz")  # the idle-timeout touch (a session write) happens here
    add_patients(many(5))
    Patient.objects.update(assessed_on=yesterday)
    small = count_queries(viewer_client)
    add_patients(many(35, start=6))
    Patient.objects.update(assessed_on=yesterday)
    large = count_queries(viewer_client)
    assert small == large
    assert count_queries(viewer_client) < small  # refreshed: nothing left to re-judge
