"""The printable report printed to PDF by headless Chromium, read back with pypdf.

``page.pdf()`` prints with the print stylesheet and the CSS page-margin boxes, as the
browser's own "Save as PDF" does: the MRN and "Page X of Y" in the margins come from
``static/css/report.css`` and the per-patient ``@page`` rules, not from Playwright's
header/footer templates (``display_header_footer`` stays off).

Also writes docs/report-page1.png: page 1 of a sample report's PDF, rendered by Chromium's
own PDF viewer (so it is the PDF, not the HTML page, that the README shows).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from monitoring.models import Patient, ReportSignoff
from tests.integration.test_report import day, load, make_patient, stamp

pypdf = pytest.importorskip("pypdf", reason="pip install pypdf (requirements-dev.txt)")

pytestmark = [
    pytest.mark.browser,
    # The live server needs committed data; serialized_rollback puts back the migrations'
    # reference data (groups, target profiles, ...) that the flush after each test removes.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TITLE = "Tacrolimus therapeutic drug monitoring report"
ALL_CHARTS_DRAWN = """() => {
    const charts = document.querySelectorAll('[data-chart-source]');
    return charts.length > 0 && [...charts].every(c => c.hasAttribute('data-chart-drawn')
        && c.querySelector('.main-svg'));
}"""


@pytest.fixture
def clinician(page_for):
    yield page_for("clinician")
    connections.close_all()


def print_pdf(page, url: str, path: Path):
    """Open ``url``, wait until every chart is drawn, print to A4 PDF and read it back."""
    page.goto(url)
    page.wait_for_function(ALL_CHARTS_DRAWN)
    page.pdf(path=str(path), format="A4", print_background=True)
    # The per-patient <style> and the scripts load under the site's Content-Security-Policy.
    refused = [m for m in page.console_messages if "Content Security Policy" in m]
    assert not refused, refused
    return pypdf.PdfReader(str(path))


def page_texts(reader) -> list[str]:
    return [re.sub(r"[ \t]+", " ", p.extract_text()) for p in reader.pages]


def assert_margins(texts: list[str], mrn_of_page) -> None:
    """Every page carries its patient's MRN and "Page i of n" in the margins."""
    n = len(texts)
    for i, text in enumerate(texts, start=1):
        assert f"MRN {mrn_of_page(i)}" in text, (i, text[:300])
        assert f"Page {i} of {n}" in text, (i, text[-300:])


def make_long_patient(mrn: str = "LONG-120", n: int = 120) -> Patient:
    """``n`` valid C12h troughs, one every 3 days over the last year, each with its own
    value (3.00, 3.05, ... ng/mL) so that a row's cells can be found on one page."""
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start,ln_class\n"
        f"{mrn},Longhistory,Lena,1985-02-03,F,ln_maintenance,{day(700)},IV\n",
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\n{mrn},{stamp(650, 20)},IR,BID,3\n",
    )
    rows = ["mrn,collected_at,last_dose_at,value,unit,assay,accession"]
    for i in range(n):
        ago = 2 + 3 * i
        rows.append(
            f"{mrn},{stamp(ago)},{stamp(ago + 1, 20)},{3 + i * 0.05:.2f},ng/mL,LCMSMS,{mrn}-{i}"
        )
    load("levels", "\n".join(rows) + "\n")
    return Patient.objects.get(mrn=mrn)


def test_the_report_prints_to_pdf_with_header_chart_and_metrics_on_page_1(
    clinician, tmp_path, settings
):
    patient = make_patient("PDF-1", levels=8)
    reader = print_pdf(clinician, f"/patients/{patient.pk}/report/", tmp_path / "r.pdf")
    texts = page_texts(reader)
    assert len(reader.pages) >= 2
    assert reader.pages[0].mediabox.width == pytest.approx(595, abs=1)  # A4 in points
    assert reader.pages[0].mediabox.height == pytest.approx(842, abs=1)

    first = texts[0]
    # The header: clinic, title, identifiers, period, printed at and by.
    assert settings.CLINIC_NAME in first
    assert TITLE in first
    assert "Doe, Jane" in first and "PDF-1" in first and "1988-04-12" in first
    assert "Period: last 12 months" in first
    assert f"by {clinician.user.username}" in first
    # The chart (its axis titles and legend are text in the PDF) and the metrics.
    assert "Trough (ng/mL)" in first and "Daily dose (mg/day)" in first
    assert "In range (circle)" in first and "Target band (hatched)" in first
    assert "Metrics, last 12 months" in first
    assert "% in range" in first and "Time in range" in first and "C/D ratio" in first
    # No screen furniture on paper.
    assert "Back to the patient page" not in "".join(texts)
    assert "Save and sign off" not in "".join(texts)

    assert_margins(texts, lambda i: "PDF-1")
    # The end of the report: sign-off block, disclaimer and sources.
    rest = "\n".join(texts[1:])
    assert "Clinician's interpretation" in rest and "Not yet reviewed" in rest
    assert "Clinical disclaimer" in rest and "Sources" in rest


def test_120_levels_spread_over_several_pages_with_the_header_on_each(clinician, tmp_path):
    patient = make_long_patient()
    reader = print_pdf(clinician, f"/patients/{patient.pk}/report/", tmp_path / "long.pdf")
    texts = page_texts(reader)
    assert_margins(texts, lambda i: patient.mrn)

    table_pages = [i for i, t in enumerate(texts) if "Hours after dose" in t]
    assert len(table_pages) >= 3, [len(t) for t in texts]
    assert table_pages == list(range(table_pages[0], table_pages[-1] + 1))
    for i in table_pages:
        # The repeated header row: identifiers and the column names.
        assert "LONG-120 · Longhistory, Lena · trough levels" in texts[i]
        for column in ("Collected", "ng/mL", "nmol/L", "Timing", "Assay", "Status"):
            assert column in texts[i], (i, column)

    # Every row is printed once, whole: its date, value and status on the same page.
    now = timezone.localdate()
    for n in range(120):
        ago = 2 + 3 * n
        when = f"{now - timedelta(days=ago):%Y-%m-%d} 08:00"
        pages = [i for i in table_pages if when in texts[i]]
        assert len(pages) == 1, (n, when, pages)
        value = f"{3 + n * 0.05:.2f}"
        assert value in texts[pages[0]], (n, value)
    # Report facts for the hand-over (pages of the 120-level report).
    print(
        f"\n120-level report: {len(texts)} pages, table on pages "
        f"{table_pages[0] + 1}-{table_pages[-1] + 1}"
    )


def test_the_batch_print_gives_each_patient_a_report_starting_on_its_own_page(clinician, tmp_path):
    patients = [make_patient(f"BATCH-{i}", levels=4 + 10 * i, family=f"Fam{i}") for i in range(3)]
    make_patient("ELSEWHERE-1")
    reader = print_pdf(clinician, "/reports/batch/?q=BATCH", tmp_path / "batch.pdf")
    texts = page_texts(reader)

    starts = [i for i, t in enumerate(texts) if TITLE in t]
    assert len(starts) == len(patients)
    assert starts[0] == 0
    # Whose report each page belongs to: the one that started last at or before it.
    owner = {}
    for i in range(len(texts)):
        first_page = max(s for s in starts if s <= i)
        owner[i] = re.search(r"MRN (BATCH-\d)", texts[first_page][:400]).group(1)
    printed = [owner[s] for s in starts]
    assert sorted(printed) == sorted(p.mrn for p in patients)
    for n, start in enumerate(starts, start=1):
        assert f"Tacrolimus TDM report {n} of {len(patients)}" in texts[start]
    for i, text in enumerate(texts):
        others = {p.mrn for p in patients} - {owner[i]}
        assert f"MRN {owner[i]}" in text
        assert not any(f"MRN {m}" in text for m in others), i
        # Each patient's pages are numbered from 1; the sheet number runs through them all.
        first_page = max(s for s in starts if s <= i)
        assert f"Page {i - first_page + 1} of this report" in text, (i, text[-300:])
        assert f"sheet {i + 1} of {len(texts)}" in text
    assert "ELSEWHERE-1" not in "".join(texts)
    assert len(texts) > len(patients)  # some report ran onto a second page: numbering seen


def test_the_batch_print_names_each_reports_landmarks_apart(clinician):
    axe = pytest.importorskip("axe_playwright_python.sync_playwright", reason="pip install axe")
    for i in range(2):
        make_patient(f"LAND-{i}", family=f"Land{i}")
    page = clinician
    page.goto("/reports/batch/?q=LAND")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    results = axe.Axe().run(page)
    unique = [v for v in results.response["violations"] if v["id"] == "landmark-unique"]
    assert unique == [], [n["target"] for v in unique for n in v["nodes"]]
    names = page.eval_on_selector_all(
        "section[aria-labelledby]",
        "els => els.map(e => e.getAttribute('aria-labelledby').split(' ')"
        ".map(id => document.getElementById(id).textContent.trim()).join(' '))",
    )
    assert len(names) == len(set(names)), names


def test_the_sign_off_made_in_the_browser_is_on_the_next_print(clinician, tmp_path):
    patient = make_patient("SIGN-1")
    page = clinician
    page.goto(f"/patients/{patient.pk}/")
    page.get_by_role("link", name="Print report").click()
    page.wait_for_function(ALL_CHARTS_DRAWN)
    interpretation = page.get_by_role("textbox", name="Clinician's interpretation")
    interpretation.fill("Stable; recheck in 4 weeks.")
    page.get_by_role("button", name=re.compile("Save and sign off")).click()
    page.wait_for_load_state()
    assert page.get_by_text("Interpretation saved and signed off.").is_visible()

    reader = print_pdf(page, f"/patients/{patient.pk}/report/", tmp_path / "signed.pdf")
    text = "\n".join(page_texts(reader))
    assert "Stable; recheck in 4 weeks." in text
    assert f"Reviewed by {page.user.username} at" in text
    assert ReportSignoff.objects.get(patient=patient).history.count() == 1


def test_screenshot_of_page_1_for_the_readme(page_for, tmp_path, docs_dir):
    """docs/report-page1.png: page 1 of the PDF of a fictional demo patient, signed off, as
    Chromium's own PDF viewer renders it."""
    call_command("seed_demo", force=True, verbosity=0)
    patient = Patient.objects.get(mrn="DEMO-002")
    page = page_for("clinician", username="adiaz", first_name="Ana", last_name="Díaz")
    ReportSignoff.objects.create(
        patient=patient,
        interpretation="Trough below target at steady state; consider 4.5 mg/day and "
        "recheck in 1–2 weeks.",
        reviewed_by=page.user,
        reviewed_at=timezone.now(),
    )
    pdf = tmp_path / "sample-report.pdf"
    reader = print_pdf(page, f"/patients/{patient.pk}/report/", pdf)
    assert TITLE in reader.pages[0].extract_text()
    assert "Reviewed by Ana Díaz (adiaz)" in "".join(page_texts(reader))

    viewer = page.context.browser.new_page(
        viewport={"width": 794, "height": 1123}, device_scale_factor=1.5
    )
    try:
        viewer.goto(pdf.as_uri() + "#toolbar=0&navpanes=0&view=Fit")
        viewer.wait_for_timeout(2500)  # the viewer draws the page after load
        target = docs_dir / "report-page1.png"
        viewer.screenshot(path=str(target))
    finally:
        viewer.close()
        connections.close_all()
    assert target.stat().st_size > 30_000
