"""After a SMART launch: the EHR's troughs, kidney labs and tacrolimus orders, previewed and
brought in through the importers' validation and idempotency, against the Fake EHR."""

from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest

from monitoring.models import AccessLog, LabResult, Patient, Regimen, Source, TroughLevel
from smart.models import ImportedResource, ProposalStatus, RegimenProposal
from tests.fake_ehr import state
from tests.fake_ehr.fixtures import FakeEhr, fake_ehr_fixture  # noqa: F401 - the fixture
from tests.fake_ehr.resources import observation, quantity, tacrolimus_order

# The live server needs committed data; serialized_rollback puts back the migrations'
# reference data (target profiles, groups) that a transactional test flushes.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _standard_records() -> None:
    state.put(observation("obs-t1", "77348-1", "2026-11-02T08:00:00+00:00", **quantity(5.2)))
    state.put(
        observation(
            "obs-t2", "11253-2", "2026-11-09T08:00:00+00:00", **quantity(2.0, comparator="<")
        )
    )
    state.put(observation("obs-t3", "77348-1", "2026-11-16T08:00:00+00:00", valueString="<2.0"))
    state.put(
        observation(
            "obs-t4",
            "77348-1",
            "2026-11-17T08:00:00+00:00",
            dataAbsentReason={"coding": [{"code": "error"}], "text": "haemolysed"},
        )
    )
    state.put(
        observation("obs-c1", "2160-0", "2026-11-02T08:00:00+00:00", **quantity(0.9, "mg/dL"))
    )
    state.put(
        observation(
            "obs-e1", "98979-8", "2026-11-02T08:00:00+00:00", **quantity(88, "mL/min/{1.73_m2}")
        )
    )
    state.put(observation("obs-h1", "4544-3", "2026-11-02T08:00:00+00:00", **quantity(38, "%")))
    state.put(tacrolimus_order())


def _csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def _fingerprint(html: str) -> str:
    return re.search(r'name="fingerprint" value="([^"]+)"', html).group(1)


def _import(fake_ehr: FakeEhr, browser, page):
    return browser.post(
        f"{fake_ehr.app_url}/smart/import",
        data={"csrfmiddlewaretoken": _csrf(page.text), "fingerprint": _fingerprint(page.text)},
        timeout=30,
    )


def test_the_preview_lists_what_is_new_and_writes_nothing(fake_ehr: FakeEhr):
    _standard_records()
    page = fake_ehr.launch()
    assert page.status_code == 200, page.text
    text = page.text
    assert "Import 7 new records" in text  # 3 troughs, creatinine, eGFR, hematocrit, one order
    assert "Observation/obs-t1 (version 1)" in text and "tacrolimus 5.2 ng/mL" in text
    assert "tacrolimus &lt;2.0 ng/mL" in text
    assert "no value (haemolysed), not imported" in text
    # Hematocrit (LOINC 4544-3) is a lab test here (a PK covariate): read like the others.
    assert "hct 38 % collected 2026-11-02T08:00:00+00:00</td><td>new" in text
    assert "new order: to confirm" in text
    assert not TroughLevel.objects.exists()
    assert not LabResult.objects.exists()
    assert not RegimenProposal.objects.exists()
    assert not ImportedResource.objects.exists()
    # The searches asked for exactly the monitored codes and the orders' intents.
    searches = [r for r in state.REQUESTS if "Observation?" in r or "MedicationRequest?" in r]
    assert any(
        "77348-1" in r and "11253-2" in r and "2160-0" in r and "98979-8" in r for r in searches
    )
    assert any("intent=order%2Cplan" in r or "intent=order,plan" in r for r in searches)


def test_importing_writes_through_the_importers_and_twice_changes_nothing(fake_ehr: FakeEhr):
    _standard_records()
    browser = fake_ehr.browser()
    page = fake_ehr.launch(browser)
    response = _import(fake_ehr, browser, page)
    assert response.status_code == 200, response.text
    assert "7 new" not in response.text and "Imported for SMART-1: 6 new" in response.text
    levels = TroughLevel.objects.filter(patient=fake_ehr.patient).order_by("collected_at")
    assert [(lv.comparator, lv.value_ng_ml.normalize()) for lv in levels] == [
        ("", Decimal("5.2")),
        ("<", Decimal("2")),
        ("<", Decimal("2")),
    ]
    assert {lv.source for lv in levels} == {Source.FHIR}
    assert {lv.entered_by for lv in levels} == {fake_ehr.user}
    assert levels[0].timing_flag == "unknown"  # no last-dose time from an EHR result
    labs = {lab.test: lab for lab in LabResult.objects.all()}
    assert set(labs) == {"creatinine", "egfr", "hct"}
    assert (labs["hct"].value, labs["hct"].unit) == (Decimal("38"), "%")
    assert labs["egfr"].unit == "mL/min/1.73m2"
    proposal = RegimenProposal.objects.get()
    assert (proposal.daily_dose_mg, proposal.frequency, proposal.formulation) == (
        Decimal("4"),
        "BID",
        "IR",
    )
    assert not Regimen.objects.exists()  # an order is not a regimen until confirmed
    assert AccessLog.objects.filter(view_name="smart import").count() == 1

    # The same resources again: nothing new.
    page = browser.get(f"{fake_ehr.app_url}/smart/", timeout=30)
    assert "Nothing new" in page.text
    counts = (
        TroughLevel.objects.count(),
        LabResult.objects.count(),
        RegimenProposal.objects.count(),
    )
    assert counts == (3, 3, 1)
    assert TroughLevel.history.count() == 3


def test_a_corrected_observation_supersedes_the_old_result_and_keeps_it_in_history(
    fake_ehr: FakeEhr,
):
    state.put(observation("obs-t1", "77348-1", **quantity(5.2)))
    browser = fake_ehr.browser()
    assert _import(fake_ehr, browser, fake_ehr.launch(browser)).status_code == 200
    level = TroughLevel.objects.get()
    state.put(observation("obs-t1", "77348-1", status="amended", **quantity(7.4)))
    page = browser.get(f"{fake_ehr.app_url}/smart/", timeout=30)
    assert "Observation/obs-t1 (version 2)" in page.text
    assert "corrects the stored result" in page.text
    assert _import(fake_ehr, browser, page).status_code == 200
    level.refresh_from_db()
    assert level.value_ng_ml == Decimal("7.4") and level.status == "corrected"
    assert TroughLevel.objects.count() == 1
    old = [h.reported_value for h in level.history.order_by("history_id")]
    assert old == ["5.2", "7.4"]
    assert ImportedResource.objects.filter(resource_id="obs-t1").count() == 2


def test_a_changed_value_without_a_correction_status_is_refused(fake_ehr: FakeEhr):
    state.put(observation("obs-t1", "77348-1", **quantity(5.2)))
    browser = fake_ehr.browser()
    assert _import(fake_ehr, browser, fake_ehr.launch(browser)).status_code == 200
    state.put(observation("obs-t1", "77348-1", status="final", **quantity(9.9)))
    page = browser.get(f"{fake_ehr.app_url}/smart/", timeout=30)
    assert "send it with status" in page.text
    assert "Import " not in page.text
    assert TroughLevel.objects.get().value_ng_ml == Decimal("5.2")


@pytest.mark.parametrize(
    "bad",
    [
        observation("obs-bad", "77348-1", when="", **quantity(5.0)),
        observation("obs-bad", "77348-1", valueString="about five"),
        observation("obs-bad", "77348-1"),  # no value, no dataAbsentReason
        observation("obs-bad", "77348-1", **quantity(5.0, unit="furlongs")),
        observation("obs-bad", "77348-1", when="2099-01-01T08:00:00+00:00", **quantity(5.0)),
    ],
)
def test_a_malformed_observation_stops_the_whole_import(fake_ehr: FakeEhr, bad, caplog):
    caplog.set_level(logging.INFO, logger="smart")
    state.put(observation("obs-good", "77348-1", **quantity(5.2)))
    state.put(bad)
    browser = fake_ehr.browser()
    page = fake_ehr.launch(browser)
    assert page.status_code == 200
    assert "Observation/obs-bad" in page.text
    assert "nothing will be" in page.text
    assert 'name="fingerprint"' not in page.text
    assert not TroughLevel.objects.exists() and not ImportedResource.objects.exists()


def test_an_observation_for_another_patient_is_refused(fake_ehr: FakeEhr, caplog):
    caplog.set_level(logging.INFO, logger="smart")
    state.put(observation("obs-good", "77348-1", **quantity(5.2)))
    stray = observation("obs-x", "77348-1", patient="pat-2", **quantity(12.0))
    stray["_served_as_patient"] = "Patient/pat-1"  # the EHR's search returns it anyway
    state.put(stray)
    page = fake_ehr.launch()
    assert page.status_code == 200
    assert "another patient" in page.text and "Nothing was imported" in page.text
    assert not TroughLevel.objects.exists()
    lines = [r.getMessage() for r in caplog.records if r.name == "smart"]
    assert any("other_patient" in line for line in lines)
    assert not any("SMART-1" in line or "pat-2" in line or "12.0" in line for line in lines)


def test_the_import_is_refused_when_the_ehr_changed_since_the_preview(fake_ehr: FakeEhr):
    state.put(observation("obs-t1", "77348-1", **quantity(5.2)))
    browser = fake_ehr.browser()
    page = fake_ehr.launch(browser)
    state.put(observation("obs-t2", "77348-1", "2026-11-03T08:00:00+00:00", **quantity(6.1)))
    response = _import(fake_ehr, browser, page)
    assert response.status_code == 400
    assert "changed since the preview" in response.text
    assert not TroughLevel.objects.exists()


def test_the_patient_is_matched_by_identifier_never_by_the_ehr_id(fake_ehr: FakeEhr):
    # The EHR's id happens to equal one of our MRNs, but its MRN identifier is another.
    state.BEHAVIOUR["patient"] = "SMART-1"
    state.put(
        {
            "resourceType": "Patient",
            "id": "SMART-1",
            "identifier": [{"system": "urn:oid:1.2.3.4.mrn", "value": "NEW-77"}],
            "name": [{"family": "Neu", "given": ["Nora"]}],
            "birthDate": "1985-02-03",
            "gender": "female",
        }
    )
    browser = fake_ehr.browser()
    page = fake_ehr.launch(browser)
    assert "not in this app" in page.text and "NEW-77" in page.text
    # Staff may create the patient from the EHR record.
    response = browser.post(
        f"{fake_ehr.app_url}/smart/patient",
        data={"csrfmiddlewaretoken": _csrf(page.text)},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    created = Patient.objects.get(mrn="NEW-77")
    assert (created.family_name, created.given_name, str(created.birth_date), created.sex) == (
        "Neu",
        "Nora",
        "1985-02-03",
        "F",
    )
    assert "MRN NEW-77" in response.text


def test_a_clinician_confirms_an_order_as_a_regimen(fake_ehr: FakeEhr, client_for):
    state.put(tacrolimus_order(dose_mg=1.5, text="Envarsus XR 0.75 mg", frequency=1))
    browser = fake_ehr.browser()
    page = fake_ehr.launch(browser)
    assert _import(fake_ehr, browser, page).status_code == 200
    proposal = RegimenProposal.objects.get()
    assert (proposal.formulation, proposal.frequency, proposal.daily_dose_mg) == (
        "LCP",
        "QD",
        Decimal("1.5"),
    )
    page = browser.get(f"{fake_ehr.app_url}/smart/", timeout=30)
    assert "Confirm as regimen" in page.text
    # data_entry keys regimens in but does not turn orders into them.
    data_entry = client_for("data_entry")
    assert (
        data_entry.post(f"/smart/proposals/{proposal.pk}", {"decision": "confirm"}).status_code
        == 403
    )
    bad = browser.post(
        f"{fake_ehr.app_url}/smart/proposals/{proposal.pk}",
        data={
            "csrfmiddlewaretoken": _csrf(page.text),
            "decision": "confirm",
            "effective_at": "2026-11-01T08:00",
            "formulation": "LCP",
            "frequency": "QD",
            "daily_dose_mg": "-3",
        },
        timeout=30,
    )
    assert bad.status_code == 400 and "daily_dose_mg" in bad.text
    assert not Regimen.objects.exists()
    good = browser.post(
        f"{fake_ehr.app_url}/smart/proposals/{proposal.pk}",
        data={
            "csrfmiddlewaretoken": _csrf(page.text),
            "decision": "confirm",
            "effective_at": "2026-11-01T08:00",
            "formulation": "LCP",
            "frequency": "QD",
            "daily_dose_mg": "1.5",
        },
        timeout=30,
    )
    assert good.status_code == 200, good.text
    regimen = Regimen.objects.get()
    assert (regimen.formulation, regimen.daily_dose_mg, regimen.entered_by) == (
        "LCP",
        Decimal("1.5"),
        fake_ehr.user,
    )
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.CONFIRMED and proposal.regimen == regimen
    assert "Confirm as regimen" not in good.text


def test_orders_that_are_not_active_tacrolimus_are_not_proposed(fake_ehr: FakeEhr):
    state.put(tacrolimus_order("med-stopped", status="stopped"))
    other = tacrolimus_order("med-other", text="Mycophenolate 500 mg")
    other["medicationCodeableConcept"]["coding"] = []
    state.put(other)
    page = fake_ehr.launch()
    assert "order status &#x27;stopped&#x27; not proposed" in page.text
    assert "med-other" not in page.text
