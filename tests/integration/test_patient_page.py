"""The patient page through the Django client: header, alerts, chart, levels,
metrics, and the three htmx writes (add a trough, add a last-dose time, mark in error)."""

from __future__ import annotations

import html
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring import rules, services
from monitoring.importers import run_csv_import
from monitoring.models import LevelStatus, Patient, TroughLevel

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
TODAY = timezone.localdate()
START = TODAY - timedelta(days=730)


def day(days_ago: int) -> date:
    return TODAY - timedelta(days=days_ago)


def stamp(days_ago: int, hour: int = 8) -> str:
    """A local date-time as the CSV files and datetime-local inputs write it."""
    return f"{day(days_ago).isoformat()}T{hour:02d}:00"


def aware(days_ago: int, hour: int = 8) -> datetime:
    return timezone.make_aware(datetime.combine(day(days_ago), time(hour)))


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


def make_patient(mrn: str = "MRN-1", *, extra_levels: int = 0) -> Patient:
    """IR BID 3 mg/day; an in-range LC-MS/MS trough 30 days ago, then a below-range CMIA
    trough 10 days ago (3.2 ng/mL, valid C12h): a dose suggestion of 4.5 mg/day."""
    load(
        "patients",
        (
            "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start,ln_class\n"
            f"{mrn},Doe,Jane,1988-04-12,F,ln_maintenance,{START},IV\n"
        ),
    )
    load(
        "regimens",
        (
            "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
            f"{mrn},{stamp(400 + extra_levels, 20)},IR,BID,3\n"
        ),
    )
    rows = ["mrn,collected_at,last_dose_at,value,unit,assay,accession"]
    for i in range(extra_levels):  # older history, 1 per day, before the two below
        ago = 40 + extra_levels - i
        rows.append(f"{mrn},{stamp(ago)},{stamp(ago + 1, 20)},5.0,ng/mL,LCMSMS,OLD-{i}")
    rows.append(f"{mrn},{stamp(30)},{stamp(31, 20)},5.0,ng/mL,LCMSMS,ACC-1")
    rows.append(f"{mrn},{stamp(10)},{stamp(11, 20)},3.2,ng/mL,CMIA,ACC-2")
    load("levels", "\n".join(rows) + "\n")
    return Patient.objects.get(mrn=mrn)


def user_in(group: str | None, name: str) -> User:
    user = User.objects.create_user(name, password="a-long-test-password")
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def patient() -> Patient:
    return make_patient()


@pytest.fixture
def clinician(client) -> User:
    user = user_in("clinician", "clin")
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client) -> User:
    user = user_in("viewer", "view")
    client.force_login(user)
    return user


def page_url(patient: Patient, query: str = "") -> str:
    return reverse("monitoring:patient", args=[patient.pk]) + query


def text(response) -> str:
    return html.unescape(response.content.decode())


def plain(response) -> str:
    """The page as words: tags out, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text(response)))


# --- access -------------------------------------------------------------------------------


def test_it_requires_login(client, patient):
    response = client.get(page_url(patient))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_forbids_users_without_view_permission(client, patient):
    client.force_login(user_in(None, "nobody"))
    assert client.get(page_url(patient)).status_code == 403


def test_it_answers_404_for_an_unknown_patient(client, viewer):
    assert client.get(reverse("monitoring:patient", args=[999])).status_code == 404


# --- the page -----------------------------------------------------------------------------


def test_it_shows_header_alerts_levels_and_metrics(client, viewer, patient):
    response = client.get(page_url(patient))
    assert response.status_code == 200
    words = plain(response)
    # Header
    assert "Doe, Jane" in words and "MRN-1" in words
    assert f"{rules.age_in_years(date(1988, 4, 12), TODAY)} years" in words
    assert "Female" in words and "LN class IV" in words
    assert "LN maintenance (KDIGO 2024)" in words and "4.00–6.00 ng/mL" in words
    assert "[G] guideline" in words and "Source: KDIGO 2024" in words
    assert "3 mg/day IR (Prograf and generics), BID" in words
    months = rules.round_to(Decimal(730) / Decimal("30.4375"), 1)
    assert f"{months} of 36 months since induction start {START}" in words
    # Alerts: the latest trough is below range; one line of why, the tag, the action.
    assert "Trough below range" in words
    assert "The latest trough is below the target band." in words
    assert "Suggested action: review dose" in words
    assert (
        "Consider 4.5 mg/day (currently 3 mg/day); re-check the trough in 1–2 weeks at "
        "steady state." in words
    )
    assert "Decision support, not an order" in words
    # Levels, newest first, with every flag and the assay change marked.
    body = text(response)
    table = body[body.index('<table class="levels-table"') :]
    assert table.index("ACC-2") < table.index("ACC-1")
    assert "3.20" in words and "below" in words and "valid 12.0 h (C12h)" in words
    assert "method changed: LC-MS/MS → CMIA" in words
    assert 'data-range="below"' in body and 'data-timing="valid"' in body
    # Metrics over the default 12 months: 2 qualifying troughs, one in range.
    assert "Metrics, last 12 months" in words
    assert "50.0 %" in words
    assert "(shown from n = 3 uncensored troughs; n = 2)" in words
    assert (
        "≤ 1.0 suggests fast metabolism; derived in transplant cohorts on IR tacrolimus [L]"
        in words
    )
    assert "1.07 ng/mL per mg/day" in words  # 3.2 / 3
    # Regimen history and the chart's text alternative.
    assert "start 3 mg/day IR BID" in words
    assert "2 troughs from" in words and "latest 3.20 ng/mL (below range)" in words


def test_the_chart_is_data_through_json_script_with_no_inline_script(client, viewer, patient):
    body = text(client.get(page_url(patient)))
    assert '<script id="trough-figure" type="application/json">' in body
    assert 'data-chart-source="trough-figure"' in body
    for tag in re.findall(r"<script\b[^>]*>", body):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert "vendor/plotly/plotly-basic.min.js" in body and "js/trough-chart.js" in body
    assert "hx-headers" in body and "X-CSRFToken" in body


def test_the_unit_switch_shows_nmol_per_litre(client, viewer, patient):
    response = client.get(page_url(patient, "?unit=nmol/L"))
    words = plain(response)
    assert "Value (nmol/L)" in words
    assert "3.98" in words  # 3.2 ng/mL × 1.2438
    assert "4.98–7.46 nmol/L" in words
    assert '"unit": "nmol/L"' in text(response)


def test_the_metrics_window_is_selectable(client, viewer, patient):
    words = plain(client.get(page_url(patient, "?window=3")))
    assert "Metrics, last 3 months" in words
    words = plain(client.get(page_url(patient, "?window=5")))  # not a choice: the default
    assert "Metrics, last 12 months" in words


def test_htmx_gets_only_the_live_fragment(client, viewer, patient):
    response = client.get(page_url(patient, "?unit=nmol/L"), headers=HX)
    body = text(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="patient-live"')
    assert "<html" not in body and "patient-header" not in body
    assert 'id="alerts"' in body and 'id="levels"' in body and 'id="trough-figure"' in body
    assert "Value (nmol/L)" in body
    assert "HX-Request" in response["Vary"]


def test_the_viewer_sees_no_forms(client, viewer, patient):
    body = text(client.get(page_url(patient)))
    assert "Add a trough" not in body and "Mark in error" not in body


def test_the_clinician_sees_the_forms(client, clinician, patient):
    body = text(client.get(page_url(patient)))
    assert "Add a trough" in body and "Mark in error" in body
    assert 'hx-post="' in body


@pytest.mark.parametrize("extra", [3, 198])
def test_queries_do_not_grow_with_the_number_of_levels(
    client, settings, extra, django_assert_max_num_queries
):
    # Real database sessions: the first request moves the idle expiry (a session write at
    # most once a minute), the counted one is an ordinary page view.
    client.force_login(user_in("clinician", "clin"))
    patient = make_patient(extra_levels=extra)
    assert patient.levels.count() == extra + 2
    client.get(page_url(patient))
    # 14: the record forms add one query (the target profiles to choose from), the alert
    # reviews another.
    with django_assert_max_num_queries(14):
        response = client.get(page_url(patient) + "?levels=all")
    assert response.status_code == 200
    assert len(re.findall(r'<tr id="level-', response.content.decode())) == extra + 2
    with django_assert_max_num_queries(14):
        response = client.get(page_url(patient))
    assert response.status_code == 200


def test_the_table_lists_the_newest_50_troughs_and_links_to_all(client, clinician):
    patient = make_patient(extra_levels=58)  # 60 troughs
    body = client.get(page_url(patient)).content.decode()
    shown = re.findall(r'<tr id="level-(\d+)"', body)
    newest = patient.levels.order_by("-collected_at").values_list("pk", flat=True)[:50]
    assert [int(pk) for pk in shown] == list(newest)
    assert "The newest 50 of 60 troughs" in body
    assert "10 older troughs not listed (the chart shows them all)" in body
    assert f'href="{page_url(patient)}?levels=all#levels"' in body

    everything = client.get(page_url(patient) + "?levels=all&unit=nmol/L").content.decode()
    assert len(re.findall(r'<tr id="level-', everything)) == 60
    assert "Show only the newest 50 troughs" in everything
    # The metrics-window links keep the unit and the choice to see every trough.
    window_link = re.search(r'href="([^"]*window=6[^"]*)"', everything).group(1)
    assert "levels=all" in window_link and "unit=nmol" in window_link


def test_the_query_count_is_the_same_for_5_and_200_levels(client, clinician):
    client.get("/healthz")  # the idle-timeout touch (a session write) happens here
    counts = []
    for mrn, extra in (("MRN-S", 3), ("MRN-L", 198)):
        patient = make_patient(mrn, extra_levels=extra)
        with CaptureQueriesContext(connection) as queries:
            client.get(page_url(patient))
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- add a trough -------------------------------------------------------------------------


def add_url(patient: Patient) -> str:
    return reverse("monitoring:level_add", args=[patient.pk])


def trough(**changes) -> dict[str, str]:
    data = {
        "collected_at": stamp(1),
        "last_dose_at": stamp(2, 20),
        "reported_value": "7.5",
        "reported_unit": "ng/mL",
        "assay": "LCMSMS",
        "accession": "ACC-NEW",
        "status": "final",
    }
    data.update(changes)
    return data


def test_adding_a_trough_saves_it_and_reassesses(client, clinician, patient):
    response = client.post(add_url(patient), trough())
    assert response.status_code == 302
    assert response["Location"].startswith(page_url(patient))
    level = TroughLevel.objects.get(accession="ACC-NEW")
    assert level.entered_by == clinician and level.source == "manual"
    assert level.range_flag == rules.ABOVE and level.timing_flag == rules.VALID
    assert level.hours_post_dose == Decimal("12.000")
    patient.refresh_from_db()
    assert rules.TROUGH_ABOVE_RANGE in patient.alerts
    assert rules.TROUGH_BELOW_RANGE not in patient.alerts
    assert patient.latest_level == level


def test_adding_a_trough_with_htmx_returns_the_updated_fragments(client, clinician, patient):
    response = client.post(add_url(patient), trough(), headers=HX)
    body = text(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="patient-live"')
    assert "Trough added: 7.5 ng/mL" in body
    assert "ACC-NEW" in body and "Trough above range" in body
    assert 'id="trough-figure"' in body
    # The add form comes back empty.
    assert 'value="ACC-NEW"' not in body


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"reported_unit": "mg/L"}, "reported_unit", "value 'mg/L': unknown unit"),
        ({"reported_value": "abc"}, "reported_value", "value 'abc': is not a number"),
        ({"reported_value": "0"}, "reported_value", "value '0': must be greater than zero"),
        ({"last_dose_at": stamp(1, 9)}, "last_dose_at", "is after the collection time"),
        ({"collected_at": stamp(-2)}, "collected_at", "is in the future"),
        ({"accession": "ACC-1"}, "accession", "value 'ACC-1': already recorded"),
    ],
)
def test_bad_troughs_are_refused_next_to_the_field(
    client, clinician, patient, changes, field, message
):
    before = TroughLevel.objects.count()
    response = client.post(add_url(patient), trough(**changes))
    assert response.status_code == 422
    raw = response.content.decode()
    error = re.search(rf'<p class="field__error" id="add_{field}_error">([^<]*)</p>', raw)
    assert error and message in html.unescape(error.group(1))
    assert TroughLevel.objects.count() == before


def test_a_bad_trough_with_htmx_returns_only_the_form(client, clinician, patient):
    response = client.post(add_url(patient), trough(reported_unit="mg/L"), headers=HX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#add-trough"
    assert response["HX-Reswap"] == "outerHTML"
    body = text(response)
    assert body.lstrip().startswith('<details id="add-trough"')
    assert "value 'mg/L': unknown unit" in body and 'value="7.5"' in body
    assert TroughLevel.objects.filter(accession="ACC-NEW").count() == 0


def test_a_viewer_cannot_add_a_trough(client, viewer, patient):
    response = client.post(add_url(patient), trough())
    assert response.status_code == 403
    assert not TroughLevel.objects.filter(accession="ACC-NEW").exists()


# --- add the missing last-dose time ------------------------------------------------------


@pytest.fixture
def untimed(patient) -> TroughLevel:
    load(
        "levels",
        (
            "mrn,collected_at,last_dose_at,value,unit,assay,accession\n"
            f"MRN-1,{stamp(2)},,5.0,ng/mL,CMIA,ACC-3\n"
        ),
    )
    patient.refresh_from_db()
    assert rules.C12H_TIMING_MISSING in patient.alerts
    return TroughLevel.objects.get(accession="ACC-3")


def dose_url(level: TroughLevel) -> str:
    return reverse("monitoring:level_last_dose", args=[level.patient_id, level.pk])


def test_the_last_dose_form_opens_in_its_row(client, clinician, untimed):
    response = client.get(dose_url(untimed), headers=HX)
    body = text(response)
    assert body.lstrip().startswith("<form")
    assert f'id="level{untimed.pk}_last_dose_at"' in body
    # Without JavaScript: the whole page, with the form open in the row.
    body = text(client.get(dose_url(untimed)))
    assert "patient-header" in body and f'id="level{untimed.pk}_last_dose_at"' in body


def test_adding_the_last_dose_time_turns_the_timing_alert_off(client, clinician, untimed):
    response = client.post(dose_url(untimed), {"last_dose_at": stamp(3, 20)})
    assert response.status_code == 302
    untimed.refresh_from_db()
    assert untimed.last_dose_at == aware(3, 20)
    assert untimed.timing_flag == rules.VALID
    patient = Patient.objects.get(pk=untimed.patient_id)
    assert rules.C12H_TIMING_MISSING not in patient.alerts


def test_adding_the_last_dose_time_with_htmx_returns_the_fragments(client, clinician, untimed):
    response = client.post(dose_url(untimed), {"last_dose_at": stamp(3, 20)}, headers=HX)
    body = text(response)
    assert body.lstrip().startswith('<div id="patient-live"')
    assert "C12h timing missing" not in body
    assert "Last-dose time added" in body


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (stamp(2, 9), f"value '{stamp(2, 9)}': is after the collection time"),
        (stamp(5, 8), "is more than 48 h before the collection time"),
        ("yesterday", "value 'yesterday': is not a date-time"),
        ("", "This field is required."),
    ],
)
def test_a_bad_last_dose_time_is_refused(client, clinician, untimed, value, message):
    response = client.post(dose_url(untimed), {"last_dose_at": value})
    assert response.status_code == 422
    assert message in text(response)
    untimed.refresh_from_db()
    assert untimed.last_dose_at is None


def test_a_bad_last_dose_time_with_htmx_goes_back_into_the_row(client, clinician, untimed):
    response = client.post(dose_url(untimed), {"last_dose_at": stamp(2, 9)}, headers=HX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#level-{untimed.pk}-action"
    assert "is after the collection time" in text(response)


def test_a_viewer_cannot_add_a_last_dose_time(client, viewer, untimed):
    assert client.post(dose_url(untimed), {"last_dose_at": stamp(3, 20)}).status_code == 403
    untimed.refresh_from_db()
    assert untimed.last_dose_at is None


# --- mark entered in error ----------------------------------------------------------------


def error_url(level: TroughLevel) -> str:
    return reverse("monitoring:level_mark_error", args=[level.patient_id, level.pk])


def test_marking_in_error_keeps_the_row_struck_through_with_history(client, clinician, patient):
    level = TroughLevel.objects.get(accession="ACC-2")
    response = client.post(error_url(level), {"reason": "sample from another patient"})
    assert response.status_code == 302
    level.refresh_from_db()
    assert level.status == LevelStatus.ENTERED_IN_ERROR
    statuses = [h.status for h in level.history.order_by("history_date")]
    assert statuses == [LevelStatus.FINAL, LevelStatus.ENTERED_IN_ERROR]
    patient.refresh_from_db()
    assert rules.TROUGH_BELOW_RANGE not in patient.alerts  # ACC-1 (in range) is latest now
    body = text(client.get(page_url(patient)))
    row = re.search(rf'<tr id="level-{level.pk}".*?</tr>', body, re.S).group(0)
    assert "level-row--error" in row and "<s>3.20</s>" in row
    assert "Reason: sample from another patient" in row
    assert "Consider" not in body  # no dose suggestion from an in-range latest trough


def test_marking_in_error_with_htmx_returns_the_fragments(client, clinician, patient):
    level = TroughLevel.objects.get(accession="ACC-2")
    response = client.post(error_url(level), {"reason": "mislabelled tube"}, headers=HX)
    body = text(response)
    assert body.lstrip().startswith('<div id="patient-live"')
    assert "<s>3.20</s>" in body and "Reason: mislabelled tube" in body


def test_marking_in_error_needs_a_reason(client, clinician, patient):
    level = TroughLevel.objects.get(accession="ACC-2")
    response = client.post(error_url(level), {"reason": "  "})
    assert response.status_code == 422
    assert "This field is required." in text(response)
    level.refresh_from_db()
    assert level.status == LevelStatus.FINAL and level.history.count() == 1


def test_a_viewer_cannot_mark_in_error(client, viewer, patient):
    level = TroughLevel.objects.get(accession="ACC-2")
    assert client.post(error_url(level), {"reason": "x"}).status_code == 403
    level.refresh_from_db()
    assert level.status == LevelStatus.FINAL


def test_a_level_of_another_patient_is_not_found(client, clinician, patient):
    other = make_patient("MRN-2")
    level = TroughLevel.objects.get(patient=other, accession="ACC-2")
    url = reverse("monitoring:level_mark_error", args=[patient.pk, level.pk])
    assert client.post(url, {"reason": "x"}).status_code == 404


# --- the service behind the metrics window -------------------------------------------------


def test_patient_assess_recomputes_metrics_for_another_window(patient):
    default = services.patient_assess(patient)
    short = services.patient_assess(patient, window_days=14)
    assert default.metrics.n_qualifying == 2 and short.metrics.n_qualifying == 1
    assert short.alerts == default.alerts  # alerts keep the configured window


def test_the_clock_names_another_anchor_when_one_is_set(client, viewer, patient):
    anchor = day(365)
    Patient.objects.filter(pk=patient.pk).update(
        anchor_date=anchor, anchor_reason="complete response"
    )
    words = plain(client.get(page_url(patient)))
    months = rules.round_to(Decimal(365) / Decimal("30.4375"), 1)
    assert f"{months} of 36 months since complete response {anchor}" in words


def test_head_requests_are_answered(client, viewer, patient):
    assert client.head(page_url(patient)).status_code == 200


@pytest.mark.forecast
def test_the_page_with_a_stored_forecast_takes_at_most_12_queries(
    client_for, django_assert_max_num_queries
):
    # As the bench measures it (docs/performance.md): a superuser (no permission queries),
    # forecasts on. 12: session, user, patient with its sign-off and stored forecast (one
    # join), thresholds, targets, regimens, troughs, drugs, alert reviews, labs, the target
    # profiles of the record form, the access-log row.
    client = client_for("superuser")
    patient = make_patient(extra_levels=3)
    client.get(page_url(patient))  # fits and stores the forecast, moves the session expiry
    assert patient.forecast is not None
    with django_assert_max_num_queries(12):
        response = client.get(page_url(patient))
    assert response.status_code == 200
    assert "data-forecast-method=" in response.content.decode()
