"""The printable patient report through the Django client: who may read and sign
it off, what it contains, the period choice, the sign-off and its history, the batch print
from the worklist and its query count. Printing to PDF is tested in
tests/browser/test_report_pdf.py."""

from __future__ import annotations

import html
import json
import re
import zlib
from datetime import date, timedelta

import pytest
from django.db import connection
from django.template import RequestContext, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring import config, services
from monitoring.importers import run_csv_import
from monitoring.models import AccessLog, Patient, ReportSignoff
from monitoring.views.report import build_report, css_string

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def day(days_ago: int) -> date:
    return TODAY - timedelta(days=days_ago)


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{day(days_ago).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


def make_patient(
    mrn: str = "RPT-1",
    *,
    levels: int = 3,
    every_days: int = 20,
    family: str = "Doe",
    given: str = "Jane",
    old_level_days_ago: int | None = None,
) -> Patient:
    """IR BID 3 mg/day for two years, ``levels`` valid C12h troughs ``every_days`` apart
    ending 5 days ago (alternating in range / below / above), an interacting drug, and
    optionally one older trough ``old_level_days_ago`` days back."""
    start = day(800)
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start,ln_class\n"
        f"{mrn},{family},{given},1988-04-12,F,ln_maintenance,{start},IV\n",
    )
    load(
        "regimens",
        "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
        f"{mrn},{stamp(790, 20)},IR,BID,3\n"
        f"{mrn},{stamp(200, 20)},IR,BID,4\n",
    )
    rows = ["mrn,collected_at,last_dose_at,value,unit,assay,accession"]
    values = ("5.0", "3.2", "7.4")
    for i in range(levels):
        ago = 5 + (levels - 1 - i) * every_days
        rows.append(
            f"{mrn},{stamp(ago)},{stamp(ago + 1, 20)},{values[i % 3]},ng/mL,LCMSMS,{mrn}-A{i}"
        )
    if old_level_days_ago is not None:
        ago = old_level_days_ago
        rows.append(f"{mrn},{stamp(ago)},{stamp(ago + 1, 20)},4.4,ng/mL,CMIA,{mrn}-OLD")
    load("levels", "\n".join(rows) + "\n")
    load("medications", f"mrn,drug,started_on,stopped_on\n{mrn},fluconazole,{day(60)},\n")
    return Patient.objects.get(mrn=mrn)


def report_url(patient: Patient, query: str = "") -> str:
    return reverse("monitoring:report", args=[patient.pk]) + query


def sign_off_url(patient: Patient) -> str:
    return reverse("monitoring:report_sign_off", args=[patient.pk])


def html_of(response) -> str:
    """The page's HTML, read to its end when it is streamed (the batch print)."""
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def text_of(response) -> str:
    """The page as text: tags dropped, white space collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", html_of(response), flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return re.sub(r"\s+([,.;:)])", r"\1", re.sub(r"\s+", " ", text))


# --- access --------------------------------------------------------------------------------


def test_the_report_needs_a_login(client):
    patient = make_patient()
    response = client.get(report_url(patient))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_is_refused(user_factory, client):
    patient = make_patient()
    client.force_login(user_factory())
    assert client.get(report_url(patient)).status_code == 403
    assert client.get(reverse("monitoring:report_batch")).status_code == 403


def test_a_viewer_reads_the_report_but_cannot_sign_it_off(viewer_client):
    patient = make_patient()
    response = viewer_client.get(report_url(patient))
    assert response.status_code == 200
    assert "Only clinicians sign off reports" in text_of(response)
    assert 'name="interpretation"' not in response.content.decode()
    refused = viewer_client.post(sign_off_url(patient), {"interpretation": "Looks fine."})
    assert refused.status_code == 403
    assert not ReportSignoff.objects.exists()


def test_data_entry_cannot_sign_off_either(data_entry_client):
    patient = make_patient()
    response = data_entry_client.post(sign_off_url(patient), {"interpretation": "x"})
    assert response.status_code == 403


def test_sign_off_is_post_only(clinician_client):
    patient = make_patient()
    assert clinician_client.get(sign_off_url(patient)).status_code == 405


def test_an_unknown_patient_is_a_404(clinician_client):
    assert clinician_client.get("/patients/999999/report/").status_code == 404


# --- contents ------------------------------------------------------------------------------


def test_the_report_holds_what_the_issue_lists(clinician_client, settings):
    patient = make_patient()
    response = clinician_client.get(report_url(patient))
    assert response.status_code == 200
    page = text_of(response)
    user = clinician_client.user
    # Clinic, identifiers, printed at and by.
    assert settings.CLINIC_NAME in page
    assert "Doe, Jane" in page and "RPT-1" in page and "1988-04-12" in page
    assert re.search(rf"Printed \d{{4}}-\d\d-\d\d \d\d:\d\d \S+ by {user.username}", page)
    # Target with evidence and source; regimen; duration against 36 months.
    assert "LN maintenance (KDIGO 2024)" in page
    assert "4.00–6.00 ng/mL" in page and "4.98–7.46 nmol/L" in page
    assert "[G] guideline" in page and "Source: KDIGO 2024" in page
    assert "4 mg/day" in page
    assert "of 36 months since induction start" in page
    # Alerts with explanations; chart; metrics; levels; doses; drugs; sign-off; sources.
    assert "Interaction: re-check" in page or "Trough above range" in page
    assert "Suggested action:" in page
    assert 'data-chart-source="report-figure-' in response.content.decode()
    assert "% in range" in page and "Time in range" in page and "C/D ratio" in page
    for header in (
        "Collected",
        "Hours after dose",
        "ng/mL",
        "nmol/L",
        "Timing",
        "Range",
        "Assay",
        "Status",
    ):
        assert f">{header}" in response.content.decode() or header in page
    assert "Dose history" in page and "3 → 4 mg/day" in page
    assert "fluconazole" in page and "raises tacrolimus level" in page
    assert "Not yet reviewed" in page
    assert "Clinical disclaimer" in page and "Sources" in page and "Leung" in page


def test_the_levels_table_shows_both_units_and_hours_after_dose(clinician_client):
    patient = make_patient(levels=2)
    page = text_of(clinician_client.get(report_url(patient)))
    # 3.2 ng/mL = 3.98 nmol/L; drawn 12 h after the dose (20:00 → 08:00).
    assert "3.20" in page and "3.98" in page
    assert "12.0 h (C12h)" in page


def test_the_report_has_no_site_navigation(clinician_client):
    patient = make_patient()
    body = clinician_client.get(report_url(patient)).content.decode()
    assert "site-nav" not in body
    assert "<nav" not in body
    assert "Log out" not in body


def test_the_chart_is_the_fixed_size_black_and_white_print_figure(clinician_client):
    patient = make_patient(levels=3)
    body = clinician_client.get(report_url(patient)).content.decode()
    match = re.search(
        r'<script id="report-figure-\d+" type="application/json">(.*?)</script>', body, re.S
    )
    figure = json.loads(match.group(1))
    layout = figure["layout"]
    assert (layout["width"], layout["height"]) == (680, 300)
    assert "rangeselector" not in layout.get("xaxis", {})
    band = [t for t in figure["data"] if t.get("meta") == "band"]
    assert band and band[0]["fillpattern"]["shape"] == "/"
    troughs = [t for t in figure["data"] if t.get("meta") == "troughs"]
    symbols = {s for t in troughs for s in t["marker"]["symbol"]}
    assert {"circle", "triangle-down", "triangle-up"} <= symbols
    colours = {c for t in troughs for c in t["marker"]["color"]}
    assert colours <= {"#000000", "#6b6b6b"}  # black, grey for preliminary


def test_the_period_choice_filters_the_table(clinician_client):
    patient = make_patient(levels=2, old_level_days_ago=500)
    default = text_of(clinician_client.get(report_url(patient)))
    assert f"{patient.mrn}-OLD" not in default  # accession is not printed; check the value
    assert "4.40" not in default
    assert "1 earlier trough before this period is not listed" in default
    assert "Period: last 12 months" in default

    longer = text_of(clinician_client.get(report_url(patient, "?period=24")))
    assert "4.40" in longer and "Period: last 24 months" in longer
    assert "earlier trough" not in longer

    everything = text_of(clinician_client.get(report_url(patient, "?period=all")))
    assert "4.40" in everything and "Period: all results" in everything

    short = text_of(clinician_client.get(report_url(patient, "?period=3")))
    assert "Trough levels, last 3 months" in short

    # An unknown choice falls back to the default, never an error.
    odd = clinician_client.get(report_url(patient, "?period=7%22%3E"))
    assert odd.status_code == 200
    assert "Period: last 12 months" in text_of(odd)


def test_opening_the_report_is_in_the_access_log(clinician_client):
    patient = make_patient()
    clinician_client.get(report_url(patient))
    entry = AccessLog.objects.get(patient=patient)
    assert entry.view_name == "report"
    assert entry.username == clinician_client.user.username


def test_the_patient_page_links_to_the_report(clinician_client):
    patient = make_patient()
    body = clinician_client.get(reverse("monitoring:patient", args=[patient.pk])).content
    assert f'href="{report_url(patient)}"'.encode() in body
    assert b"Print report" in body


def test_names_reach_the_page_margins_escaped(clinician_client):
    patient = make_patient(family='Evil"}</style><script>x()</script>', given="Ann")
    body = clinician_client.get(report_url(patient)).content.decode()
    style = re.search(r"<style>(.*?)</style>", body, re.S).group(1)
    assert "<" not in style  # cannot close the <style> element
    assert "Evil\\000022\\00007d\\00003c/style\\00003e" in style  # nor the string or rule
    assert f"@page report-{patient.pk}" in style
    assert css_string('a"b') == '"a\\000022b"'
    assert css_string("MRN X-1 · Doe, Ann") == '"MRN X-1 · Doe, Ann"'


# --- sign-off ------------------------------------------------------------------------------


def test_a_clinician_signs_off_and_the_next_print_shows_it(clinician_client):
    patient = make_patient()
    user = clinician_client.user
    user.first_name, user.last_name = "Ana", "Díaz"
    user.save()
    response = clinician_client.post(
        sign_off_url(patient), {"interpretation": "Stable on 4 mg/day.\nRecheck in 4 weeks."}
    )
    assert response.status_code == 302
    assert response["Location"] == report_url(patient) + "#signoff"
    signoff = ReportSignoff.objects.get(patient=patient)
    assert signoff.reviewed_by == user
    assert signoff.interpretation == "Stable on 4 mg/day.\nRecheck in 4 weeks."

    page = text_of(clinician_client.get(report_url(patient)))
    assert "Stable on 4 mg/day." in page and "Recheck in 4 weeks." in page
    assert f"Reviewed by Ana Díaz ({user.username}) at" in page
    assert "Not yet reviewed" not in page
    assert "Interpretation saved and signed off." in page


def test_a_second_sign_off_replaces_the_first_and_the_history_keeps_both(
    clinician_client, client_for
):
    patient = make_patient()
    clinician_client.post(sign_off_url(patient), {"interpretation": "First reading."})
    other = client_for("clinician")
    other.post(sign_off_url(patient) + "?period=24", {"interpretation": "Second reading."})

    signoff = ReportSignoff.objects.get(patient=patient)  # still one per patient
    assert signoff.interpretation == "Second reading."
    assert signoff.reviewed_by == other.user
    versions = list(signoff.history.order_by("history_id"))
    assert [v.interpretation for v in versions] == ["First reading.", "Second reading."]
    assert [v.history_user for v in versions] == [clinician_client.user, other.user]
    delta = versions[1].diff_against(versions[0])
    assert {c.field for c in delta.changes} >= {"interpretation", "reviewed_by", "reviewed_at"}

    response = other.get(report_url(patient, "?period=24"))
    assert f'action="{sign_off_url(patient)}?period=24"' in response.content.decode()
    page = text_of(response)
    assert "Second reading." in page
    assert "Sign-off history (2 versions)" in page and "First reading." in page


def test_a_sign_off_needs_an_interpretation(clinician_client):
    patient = make_patient()
    response = clinician_client.post(sign_off_url(patient), {"interpretation": "   "})
    assert response.status_code == 422
    assert "an interpretation is required to sign off" in text_of(response)
    assert not ReportSignoff.objects.exists()


def test_results_recorded_after_the_sign_off_are_pointed_out(clinician_client):
    patient = make_patient()
    clinician_client.post(sign_off_url(patient), {"interpretation": "Fine."})
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,assay,accession\n"
        f"{patient.mrn},{stamp(1)},{stamp(2, 20)},5.1,ng/mL,LCMSMS,NEW-1\n",
    )
    page = text_of(clinician_client.get(report_url(patient)))
    assert "Recorded after this sign-off: 1 trough." in page


# --- batch print from the worklist ---------------------------------------------------------


def batch_url(query: str = "") -> str:
    return reverse("monitoring:report_batch") + query


def test_the_worklist_links_to_the_batch_print_with_its_filters(clinician_client):
    make_patient("RPT-1")
    body = clinician_client.get(reverse("monitoring:worklist") + "?q=RPT").content.decode()
    assert f'href="{batch_url("?q=RPT")}"' in body
    assert "Print these reports (1)" in body


def test_the_batch_prints_one_report_per_listed_patient_in_worklist_order(clinician_client):
    for i in range(3):
        make_patient(f"RPT-{i}", family=f"Fam{i}")
    make_patient("OTHER-1")
    response = clinician_client.get(batch_url("?q=RPT"))
    assert response.status_code == 200
    body = html_of(response)
    mrns = re.findall(
        r'<article class="report report--\d+" id="report-\d+" data-report="([^"]+)"', body
    )
    assert sorted(mrns) == ["RPT-0", "RPT-1", "RPT-2"]
    worklist = clinician_client.get(reverse("monitoring:worklist") + "?q=RPT").content.decode()
    assert mrns == re.findall(r'worklist__mrn">([^<]+)<', worklist)
    assert body.count("@page report-") == 3
    assert "<nav" not in body
    assert AccessLog.objects.filter(view_name="report").count() == 3


def test_the_batch_takes_a_constant_number_of_queries(clinician_client):
    make_patient("RPT-A")
    make_patient("RPT-B")
    html_of(clinician_client.get(batch_url()))  # the day's first call re-judges summaries
    with CaptureQueriesContext(connection) as two:
        assert html_of(clinician_client.get(batch_url())).count('class="report report--') == 2
    for i in range(4):
        make_patient(f"RPT-C{i}", levels=6)
    html_of(clinician_client.get(batch_url()))
    with CaptureQueriesContext(connection) as six:
        body = html_of(clinician_client.get(batch_url()))  # the queries run as it streams
    assert body.count('class="report report--') == 6
    assert len(six) == len(two), [q["sql"][:80] for q in six.captured_queries]


def test_an_empty_batch_says_so(clinician_client):
    response = clinician_client.get(batch_url("?q=nobody-matches"))
    assert response.status_code == 200
    assert "nothing to print" in text_of(response)


def test_the_batch_keeps_the_filters_when_the_period_changes(clinician_client):
    make_patient("RPT-1")
    body = html_of(clinician_client.get(batch_url("?q=RPT&period=24")))
    assert '<input type="hidden" name="q" value="RPT">' in body
    assert 'name="period"' in body and '<option value="24" selected>' in body
    assert f'href="{reverse("monitoring:worklist")}?q=RPT"' in body


# --- the batch is streamed ----------------------------------------------------------------

# The batch template's content as it was before the reports were streamed: the whole
# document rendered at once, the reference the streamed pieces must add up to.
WHOLE_DOCUMENT = """{% extends "monitoring/report_batch.html" %}{% block content %}
{% for report in reports %}
{% include "monitoring/report_body.html" %}
{% empty %}
<p class="report-empty">No patient is listed on this worklist page: nothing to print.</p>
{% endfor %}
{% endblock %}"""


def whole_document(response) -> str:
    """The batch rendered in one piece from the view's own context and the same reports."""
    rendered = response.context  # the batch template's, rendered by the view (one or more)
    context = (rendered[0] if isinstance(rendered, list) else rendered).flatten()
    listed = list(response.context["page"].object_list)
    thresholds = config.load_thresholds()
    signoffs = {s.patient_id: s for s in ReportSignoff.objects.filter(patient__in=listed)}
    context["reports"] = [
        build_report(a, context["period"], thresholds, signoffs.get(a.records.patient.pk))
        for a in services.patients_assess(listed)
    ]
    return Template(WHOLE_DOCUMENT).render(RequestContext(response.wsgi_request, context))


@pytest.mark.parametrize("query", ["?q=RPT", "?q=RPT&period=all", "?q=nobody-matches"])
def test_the_streamed_batch_is_the_document_rendered_whole(clinician_client, query):
    for i in range(3):
        make_patient(f"RPT-{i}", family=f"Fam{i}")
    signed = clinician_client.post(
        sign_off_url(Patient.objects.get(mrn="RPT-1")), {"interpretation": "Stable."}
    )
    assert signed.status_code == 302
    html_of(clinician_client.get(batch_url()))  # the day's first call re-judges summaries
    response = clinician_client.get(batch_url(query))
    streamed = html_of(response)
    assert streamed == whole_document(response)
    assert streamed.count('class="report report--') == (0 if "nobody" in query else 3)


def test_the_batch_streams_the_head_first_and_logs_every_patient_before_it(clinician_client):
    for i in range(3):
        make_patient(f"RPT-{i}", family=f"Fam{i}")
    AccessLog.objects.all().delete()
    response = clinician_client.get(batch_url("?q=RPT"))
    assert response.streaming
    assert response["Content-Type"] == "text/html; charset=utf-8"
    # Not a byte read yet: the access log already names every patient the page will show.
    logged = sorted(
        AccessLog.objects.filter(view_name="report").values_list("patient__mrn", flat=True)
    )
    assert logged == ["RPT-0", "RPT-1", "RPT-2"]
    chunks = iter(response.streaming_content)
    head = next(chunks).decode()
    assert head.startswith("<!doctype html>")
    assert "@page report-" in head and "Print these 3 reports" in head
    assert "report report--" not in head  # no report built yet
    first = next(chunks).decode()
    assert first.count('class="report report--') == 1
    rest = b"".join(chunks).decode()
    assert rest.count('class="report report--') == 2
    assert rest.rstrip().endswith("</html>")


def test_the_gzipped_batch_still_sends_its_head_before_any_report(clinician_client):
    """Django's gzip keeps tens of kilobytes before it emits any: the batch is flushed chunk
    by chunk instead (monitoring.middleware.GZipMiddleware), so the head decodes alone."""
    for i in range(3):
        make_patient(f"RPT-{i}", family=f"Fam{i}")
    response = clinician_client.get(batch_url("?q=RPT"), HTTP_ACCEPT_ENCODING="gzip")
    assert response.streaming
    assert response["Content-Encoding"] == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunks = iter(response.streaming_content)
    seen = b""
    while b"</head>" not in seen:
        seen += inflate.decompress(next(chunks))
    assert b"report report--" not in seen
    seen += b"".join(inflate.decompress(chunk) for chunk in chunks) + inflate.flush()
    assert seen.decode().count('class="report report--') == 3
    assert seen.rstrip().endswith(b"</html>")


@pytest.mark.forecast
@pytest.mark.parametrize(("signed", "most"), [(False, 11), (True, 12)])
def test_the_report_with_a_stored_forecast_takes_at_most_12_queries(
    client_for, django_assert_max_num_queries, signed, most
):
    # As the bench measures it (docs/performance.md): a superuser, forecasts on. 11: session,
    # user, patient with its sign-off, the sign-off's reviewer and its stored forecast (one
    # join), thresholds, targets, regimens, troughs, drugs, alert reviews, labs, the
    # access-log row; a signed-off report reads the sign-off's versions too.
    client = client_for("superuser")
    patient = make_patient()
    if signed:
        assert client.post(sign_off_url(patient), {"interpretation": "Stable."}).status_code == 302
    client.get(report_url(patient))  # fits and stores the forecast
    with django_assert_max_num_queries(most):
        response = client.get(report_url(patient))
    assert response.status_code == 200
    body = html_of(response)
    assert 'class="report-forecast"' in body
    assert ("Stable." in body) is signed
