"""HL7 v2 ORU^R01 import (data-formats.md): the sample, its variations, the ACKs and the
import_hl7 command, on real files."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import hl7
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from monitoring.importers import run_csv_import
from monitoring.importers.hl7 import (
    ACCEPTED,
    ERROR,
    REJECTED,
    ack_for,
    hl7_timestamp,
    import_hl7_messages,
    split_messages,
)
from monitoring.models import LabResult, Patient, Source, TroughLevel

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
if not SAMPLES.exists():  # CI lays shared/ beside the clone
    SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
SAMPLE = SAMPLES / "oru_r01_tacrolimus.hl7"

pytestmark = pytest.mark.django_db

PATIENTS = (
    b"mrn,family_name,given_name,birth_date,sex\n"
    b"MRN-1001,Doe,Jane,1988-04-12,F\n"
    b"MRN-1002,Roe,Ann,1990-01-02,F\n"
)


@pytest.fixture(autouse=True)
def patients():
    report = run_csv_import("patients", PATIENTS)
    assert report.ok, report.problems


def obx(
    set_id: int = 1,
    code: str = "77348-1",
    value: str = "5.2",
    *,
    value_type: str = "NM",
    unit: str = "ng/mL^^UCUM",
    ref_range: str = "5.0-15.0",
    flag: str = "N",
    status: str = "F",
    observed: str = "20250312073000",
    method: str = "LCMSMS",
) -> str:
    fields = [
        "OBX",
        str(set_id),
        value_type,
        f"{code}^Observation^LN",
        "",
        value,
        unit,
        ref_range,
        flag,
        "",
        "",
        status,
        "",
        "",
        observed,
        "",
        "",
        method,
    ]
    return "|".join(fields)


def message(
    control_id: str = "MSG1",
    *observations: str,
    mrn: str = "MRN-1001",
    accession: str = "ACC-1",
    obr7: str = "20250312073000",
    msh9: str = "ORU^R01",
) -> list[str]:
    return [
        f"MSH|^~\\&|LIS|GENERAL_HOSPITAL|TDM|NEPHRO|20250312093000||{msh9}|{control_id}|P|2.5.1",
        f"PID|1||{mrn}^^^GH^MR||Doe^Jane||19880412|F",
        f"OBR|1|ORD1|{accession}|77348-1^Tacrolimus trough^LN|||{obr7}",
        *(observations or (obx(),)),
    ]


def text_of(*messages: list[str], newline: str = "\r") -> str:
    return newline.join(segment for m in messages for segment in m) + newline


def write(tmp_path: Path, text: str, name: str = "in.hl7") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def import_file(path: Path) -> list:
    return import_hl7_messages(path.read_bytes().decode("utf-8"))


def run_command(path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_hl7", str(path), *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def parsed_ack(result) -> hl7.Message:
    return hl7.parse(ack_for(result))


# --- the sample ----------------------------------------------------------------------------


def test_the_sample_imports_levels_and_the_creatinine():
    results = import_hl7_messages(SAMPLE.read_text(encoding="utf-8"))
    assert [(r.control_id, r.status) for r in results] == [
        ("MSG00001", ACCEPTED),
        ("MSG00002", ACCEPTED),
    ]
    assert results[0].counts["levels_created"] == 1
    assert results[0].counts["labs_created"] == 1
    first = TroughLevel.objects.get(accession="ACC-55120")
    assert first.patient.mrn == "MRN-1001"
    assert first.reported_value == "5.2" and first.reported_unit == "ng/mL"
    assert first.value_ng_ml == Decimal("5.2")
    assert first.collected_at == datetime(2026, 3, 12, 7, 30, tzinfo=UTC)
    assert first.last_dose_at is None
    assert first.timing_flag == "unknown"
    assert first.assay == "LCMSMS"
    assert first.status == "final"
    assert first.source == Source.HL7
    # OBX-7 says 5.0-15.0; the LN target is what counts.
    assert (first.target_low, first.target_high) == (Decimal("4.00"), Decimal("6.00"))
    assert first.range_flag == "in_range"
    censored = TroughLevel.objects.get(accession="ACC-55871")
    assert (censored.comparator, censored.reported_value, censored.value_ng_ml) == (
        "<",
        "<1.0",
        Decimal("1"),
    )
    assert censored.assay == "CMIA"
    assert censored.range_flag == "below"
    lab = LabResult.objects.get()
    assert (lab.test, lab.value, lab.unit) == ("creatinine", Decimal("0.92"), "mg/dL")
    assert lab.accession == "ACC-55120"
    assert lab.source == Source.HL7
    patient = Patient.objects.get(mrn="MRN-1001")
    assert patient.latest_level == censored
    assert "trough_below_range" in patient.alerts
    assert "c12h_timing_missing" in patient.alerts


def test_the_sample_through_the_command_twice_duplicates_nothing(tmp_path):
    path = tmp_path / "sample.hl7"
    path.write_bytes(SAMPLE.read_bytes())
    code, out, err = run_command(path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("message 1 MSG00001: accepted: levels 1 created")
    assert lines[1].startswith("message 2 MSG00002: accepted: levels 1 created")
    code, out, err = run_command(path)
    assert code == 0, err
    assert (
        "levels 0 created, 0 updated, 1 unchanged; labs 0 created, 0 updated, 1 unchanged"
        in out.splitlines()[0]
    )
    assert TroughLevel.objects.count() == 2
    assert LabResult.objects.count() == 1
    assert TroughLevel.objects.get(accession="ACC-55120").history.count() == 1


# --- values and fields ---------------------------------------------------------------------


def test_sn_less_than_becomes_a_censored_result():
    text = text_of(message("M1", obx(value="<^1.0", value_type="SN")))
    [result] = import_hl7_messages(text)
    assert result.status == ACCEPTED, result.reasons
    level = TroughLevel.objects.get()
    assert (level.reported_value, level.comparator, level.value_ng_ml) == ("<1.0", "<", 1)


def test_sn_greater_than_and_plain_sn():
    text = text_of(
        message("M1", obx(value=">^30", value_type="SN"), accession="A1"),
        message("M2", obx(value="^4.8", value_type="SN"), accession="A2"),
    )
    assert [r.status for r in import_hl7_messages(text)] == [ACCEPTED, ACCEPTED]
    assert TroughLevel.objects.get(accession="A1").reported_value == ">30"
    plain = TroughLevel.objects.get(accession="A2")
    assert (plain.reported_value, plain.comparator) == ("4.8", "")


def test_missing_obx14_falls_back_to_obr7():
    text = text_of(message("M1", obx(observed=""), obr7="20250401081500"))
    [result] = import_hl7_messages(text)
    assert result.status == ACCEPTED, result.reasons
    assert TroughLevel.objects.get().collected_at == datetime(2025, 4, 1, 8, 15, tzinfo=UTC)


def test_obx14_wins_over_obr7():
    text = text_of(message("M1", obx(observed="20250312071000"), obr7="20250312090000"))
    import_hl7_messages(text)
    assert TroughLevel.objects.get().collected_at == datetime(2025, 3, 12, 7, 10, tzinfo=UTC)


@override_settings(TIME_ZONE="Europe/Berlin")
def test_timestamps_without_offset_are_site_local_time_and_offsets_are_kept():
    text = text_of(
        message("M1", obx(observed="202503120730"), accession="LOCAL"),
        message("M2", obx(observed="20250712073000-0500"), accession="OFFSET"),
    )
    assert [r.status for r in import_hl7_messages(text)] == [ACCEPTED, ACCEPTED]
    local = TroughLevel.objects.get(accession="LOCAL").collected_at
    assert local == datetime(2025, 3, 12, 7, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert local == datetime(2025, 3, 12, 6, 30, tzinfo=UTC)
    offset = TroughLevel.objects.get(accession="OFFSET").collected_at
    assert offset == datetime(2025, 7, 12, 12, 30, tzinfo=UTC)


def test_hl7_timestamp_conversion():
    assert hl7_timestamp("202603120730", "OBX-14") == "2026-03-12T07:30:00"
    assert hl7_timestamp("20260312073015.123+0100", "OBX-14") == "2026-03-12T07:30:15+01:00"
    assert hl7_timestamp("20260312073000-0330", "OBX-14") == "2026-03-12T07:30:00-03:30"
    for bad in ("20260312", "2026-03-12T07:30", "20261312073000", "20260312073000+01"):
        with pytest.raises(ValueError, match="OBX-14"):
            hl7_timestamp(bad, "OBX-14")


def test_assay_mapping():
    text = text_of(
        message("M1", obx(method="CMIA"), accession="A1"),
        message("M2", obx(method="LC-MS/MS"), accession="A2"),
        message("M3", obx(method="^QMS"), accession="A3"),
        message("M4", obx(method="HPLC-UV"), accession="A4"),
        message("M5", obx(method=""), accession="A5"),
    )
    assert all(r.status == ACCEPTED for r in import_hl7_messages(text))
    assays = dict(TroughLevel.objects.values_list("accession", "assay"))
    assert assays == {"A1": "CMIA", "A2": "LCMSMS", "A3": "QMS", "A4": "OTHER", "A5": ""}


def test_nmol_per_litre_is_converted():
    text = text_of(message("M1", obx(value="6.22", unit="nmol/L^^UCUM")))
    import_hl7_messages(text)
    level = TroughLevel.objects.get()
    assert level.reported_unit == "nmol/L"
    assert round(level.value_ng_ml, 2) == Decimal("5.00")


def test_obx7_reference_range_is_never_the_target():
    # The lab calls 4.5 low against its 5.0-15.0; the LN target 4-6 says in range.
    text = text_of(message("M1", obx(value="4.5", ref_range="5.0-15.0", flag="L")))
    import_hl7_messages(text)
    level = TroughLevel.objects.get()
    assert (level.target_low, level.target_high) == (Decimal("4.00"), Decimal("6.00"))
    assert level.range_flag == "in_range"
    assert "trough_below_range" not in Patient.objects.get(mrn="MRN-1001").alerts


def test_kidney_labs_are_mapped_and_other_observations_ignored():
    text = text_of(
        message(
            "M1",
            obx(1, "77348-1", "5.0"),
            obx(2, "2160-0", "0.92", unit="mg/dL^^UCUM", method=""),
            obx(3, "14682-9", "81", unit="umol/L^^UCUM", method="", observed="20250312080000"),
            obx(4, "98979-8", "84", unit="mL/min/{1.73_m2}^^UCUM", method=""),
            obx(5, "2890-2", "0.35", unit="g/g{creat}^^UCUM", method=""),
            obx(6, "2823-3", "4.1", unit="mmol/L^^UCUM", method=""),  # potassium: not monitored
        )
    )
    [result] = import_hl7_messages(text)
    assert result.status == ACCEPTED, result.reasons
    assert result.counts["labs_created"] == 4
    assert result.counts["levels_created"] == 1
    assert result.counts["ignored"] == 1
    labs = {(lab.test, lab.unit): lab.value for lab in LabResult.objects.all()}
    assert labs == {
        ("creatinine", "mg/dL"): Decimal("0.92"),
        ("creatinine", "umol/L"): Decimal("81"),
        ("egfr", "mL/min/1.73m2"): Decimal("84"),
        ("upcr", "g/g"): Decimal("0.35"),
    }


def test_hematocrit_and_body_weight_are_mapped_by_loinc_for_the_pk_models():
    text = text_of(
        message(
            "M1",
            obx(1, "4544-3", "36.5", unit="%^^UCUM", method=""),
            obx(2, "29463-7", "61.2", unit="kg^^UCUM", method=""),
        )
    )
    [result] = import_hl7_messages(text)
    assert result.status == ACCEPTED, result.reasons
    labs = {(lab.test, lab.unit): lab.value for lab in LabResult.objects.all()}
    assert labs == {("hct", "%"): Decimal("36.5"), ("weight", "kg"): Decimal("61.2")}


def test_a_hematocrit_as_a_fraction_is_an_error_for_its_message():
    text = text_of(message("M1", obx(1, "4544-3", "0.37", unit="L/L", method="")))
    [result] = import_hl7_messages(text)
    assert result.status == ERROR
    assert "OBX-6 value 'L/L'" in result.reason
    text = text_of(message("M2", obx(1, "4544-3", "0.37", unit="%", method="")))
    [result] = import_hl7_messages(text)
    assert result.status == ERROR
    assert "OBX-5 value '0.37': is not a plausible hct (10–70 %)" in result.reason
    assert not LabResult.objects.exists()


def test_censored_and_preliminary_labs_are_not_stored_but_noted():
    text = text_of(
        message(
            "M1",
            obx(1, "98979-8", ">^90", value_type="SN", unit="mL/min/{1.73_m2}", method=""),
            obx(2, "2160-0", "0.9", unit="mg/dL", status="P", method=""),
        )
    )
    [result] = import_hl7_messages(text)
    assert result.status == ACCEPTED
    assert result.counts["ignored"] == 2
    assert len(result.notes) == 2
    assert not LabResult.objects.exists()


def test_a_lab_with_a_wrong_unit_is_an_error_for_its_message():
    text = text_of(
        message("M1", obx(1, "77348-1", "5.0"), obx(2, "2160-0", "0.9", unit="mmol/L", method=""))
    )
    [result] = import_hl7_messages(text)
    assert result.status == ERROR
    assert "OBX-6 value 'mmol/L'" in result.reason
    assert not TroughLevel.objects.exists()


# --- corrections, preliminaries and repeats ---------------------------------------------------


def test_a_corrected_result_supersedes_and_keeps_the_old_value_in_history():
    import_hl7_messages(text_of(message("M1", obx(value="5.2"))))
    [result] = import_hl7_messages(text_of(message("M2", obx(value="6.1", status="C"))))
    assert result.status == ACCEPTED, result.reasons
    assert result.counts["levels_updated"] == 1
    level = TroughLevel.objects.get()
    assert (level.reported_value, level.status) == ("6.1", "corrected")
    history = list(level.history.order_by("history_date"))
    assert [h.reported_value for h in history] == ["5.2", "6.1"]
    assert [h.status for h in history] == ["final", "corrected"]


def test_a_different_final_value_for_the_same_accession_is_an_error():
    import_hl7_messages(text_of(message("M1", obx(value="5.2"))))
    [result] = import_hl7_messages(text_of(message("M2", obx(value="6.1"))))
    assert result.status == ERROR
    assert "corrected" in result.reason
    assert TroughLevel.objects.get().reported_value == "5.2"
    assert "AE" in ack_for(result)


def test_a_preliminary_result_is_stored_but_not_used_for_flags():
    import_hl7_messages(text_of(message("M1", obx(value="5.0"), accession="FINAL-1")))
    final = TroughLevel.objects.get(accession="FINAL-1")
    [result] = import_hl7_messages(
        text_of(
            message(
                "M2", obx(value="9.0", status="P", observed="20250320073000"), accession="PRELIM-1"
            )
        )
    )
    assert result.status == ACCEPTED, result.reasons
    prelim = TroughLevel.objects.get(accession="PRELIM-1")
    assert prelim.status == "preliminary"
    patient = Patient.objects.get(mrn="MRN-1001")
    assert patient.latest_level == final
    assert "trough_above_range" not in patient.alerts
    # The final result follows, with another value: it replaces the preliminary one.
    [result] = import_hl7_messages(
        text_of(message("M3", obx(value="8.8", observed="20250320073000"), accession="PRELIM-1"))
    )
    assert result.status == ACCEPTED, result.reasons
    prelim.refresh_from_db()
    assert (prelim.status, prelim.reported_value) == ("final", "8.8")
    patient.refresh_from_db()
    assert patient.latest_level == prelim
    assert "trough_above_range" in patient.alerts
    # A late copy of the preliminary changes nothing.
    [result] = import_hl7_messages(
        text_of(
            message(
                "M2", obx(value="9.0", status="P", observed="20250320073000"), accession="PRELIM-1"
            )
        )
    )
    assert result.status == ACCEPTED
    assert result.counts["levels_unchanged"] == 1
    prelim.refresh_from_db()
    assert (prelim.status, prelim.reported_value) == ("final", "8.8")


def test_the_same_message_twice_in_one_file_duplicates_nothing(tmp_path):
    one = message("M1", obx(), obx(2, "2160-0", "0.9", unit="mg/dL", method=""))
    results = import_file(write(tmp_path, text_of(one, one)))
    assert [r.status for r in results] == [ACCEPTED, ACCEPTED]
    assert results[1].counts["levels_unchanged"] == 1
    assert results[1].counts["labs_unchanged"] == 1
    assert TroughLevel.objects.count() == 1
    assert LabResult.objects.count() == 1


# --- errors, rejections and transactions -----------------------------------------------------


def test_an_unknown_patient_is_an_application_error_and_writes_nothing(tmp_path):
    text = text_of(message("M9", obx(), obx(2, "2160-0", "0.9", unit="mg/dL"), mrn="MRN-9999"))
    [result] = import_file(write(tmp_path, text))
    assert result.status == ERROR
    assert "unknown patient" in result.reason and "MRN-9999" in result.reason
    assert not TroughLevel.objects.exists()
    assert not LabResult.objects.exists()
    ack = parsed_ack(result)
    assert str(ack.segment("MSA")(1)) == "AE"
    assert str(ack.segment("MSA")(2)) == "M9"
    assert str(ack.segment("ERR")(3)).startswith("204")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "OBX-5 value 'abc'"),
        ("150", "plausibility ceiling"),
        ("-1", "OBX-5 value '-1'"),
    ],
)
def test_a_bad_value_is_an_error_for_its_message(value, expected):
    [result] = import_hl7_messages(text_of(message("M1", obx(value=value))))
    assert result.status == ERROR
    assert expected in result.reason
    assert not TroughLevel.objects.exists()


def test_other_bad_fields_are_named():
    text = text_of(
        message("M1", obx(unit="mg/L"), accession="A1"),
        message("M2", obx(status="X"), accession="A2"),
        message("M3", obx(observed="20990101000000"), accession="A3"),
        message("M4", obx(observed="", value_type="ST"), obr7="", accession="A4"),
    )
    results = import_hl7_messages(text)
    assert [r.status for r in results] == [ERROR] * 4
    assert "OBX-6 value 'mg/L'" in results[0].reason
    assert "OBX-11 value 'X'" in results[1].reason
    assert "OBX-14" in results[2].reason and "future" in results[2].reason
    assert "OBX-2 value 'ST'" in results[3].reason
    assert "no collection time" in results[3].reason
    assert not TroughLevel.objects.exists()


def test_a_bad_message_writes_nothing_of_itself_and_the_others_go_on(tmp_path):
    good = message("GOOD", obx(value="5.0"), accession="A1")
    # The creatinine is fine but the level is not: the whole message is refused.
    bad = message(
        "BAD",
        obx(2, "2160-0", "0.9", unit="mg/dL", method=""),
        obx(3, "77348-1", "abc"),
        accession="A2",
    )
    other = message("OTHER", obx(value="5.5"), mrn="MRN-1002", accession="A3")
    results = import_file(write(tmp_path, text_of(good, bad, other)))
    assert [(r.control_id, r.status) for r in results] == [
        ("GOOD", ACCEPTED),
        ("BAD", ERROR),
        ("OTHER", ACCEPTED),
    ]
    assert set(TroughLevel.objects.values_list("accession", flat=True)) == {"A1", "A3"}
    assert not LabResult.objects.exists()


def test_a_garbled_message_is_rejected_and_the_next_one_imported(tmp_path):
    garbled = [
        "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20250312093000||ORU^R01|GARBLED|P|2.5.1",
        "PID|1||MRN-1001^^^GH^MR",
        "%%% line noise ^^^ 12 ~~",
    ]
    results = import_file(write(tmp_path, text_of(garbled, message("M2"))))
    assert [(r.control_id, r.status) for r in results] == [
        ("GARBLED", REJECTED),
        ("M2", ACCEPTED),
    ]
    ack = parsed_ack(results[0])
    assert str(ack.segment("MSA")(1)) == "AR"
    assert str(ack.segment("MSA")(2)) == "GARBLED"
    assert TroughLevel.objects.count() == 1


def test_text_that_is_not_hl7_at_all_is_rejected():
    results = import_hl7_messages("this is not an HL7 message\nat all\n")
    assert [r.status for r in results] == [REJECTED]
    assert results[0].control_id == ""
    assert "AR" in ack_for(results[0])


def test_an_unreadable_msh_is_rejected_with_what_can_be_read():
    [result] = import_hl7_messages("MSH|ABCD|LIS|GH|TDM|NEPHRO|x||ORU^R01|C7|P|2.5\rPID|1\r")
    assert result.status == REJECTED
    assert result.control_id == "C7"
    assert "encoding characters" in result.reason
    ack = parsed_ack(result)
    assert str(ack.segment("MSA")(2)) == "C7"
    assert str(ack.segment("MSH")(5)) == "LIS"
    [result] = import_hl7_messages("MSH\rPID|1||MRN-1001\r")
    assert result.status == REJECTED


def test_an_empty_z_segment_is_no_garble():
    segments = [*message("M1"), "ZZZ"]
    [result] = import_hl7_messages(text_of(segments))
    assert result.status == ACCEPTED, result.reasons


def test_obx_before_any_obr_is_rejected():
    segments = message("M1")
    segments.remove(segments[2])
    [result] = import_hl7_messages(text_of(segments))
    assert result.status == REJECTED
    assert "OBR" in result.reason


def test_a_message_that_is_not_oru_r01_is_rejected():
    [result] = import_hl7_messages(text_of(message("ADT1", msh9="ADT^A01")))
    assert result.status == REJECTED
    assert "ORU^R01" in result.reason
    assert str(parsed_ack(result).segment("ERR")(3)).startswith("200")


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"])
def test_segment_endings_cr_lf_and_crlf(tmp_path, newline):
    text = text_of(message("M1", accession="A1"), message("M2", accession="A2"), newline=newline)
    results = import_file(write(tmp_path, text))
    assert [r.status for r in results] == [ACCEPTED, ACCEPTED]
    assert TroughLevel.objects.count() == 2


def test_split_messages_drops_batch_envelopes_and_mllp_framing():
    text = (
        "FHS|^~\\&\rBHS|^~\\&\r\x0bMSH|^~\\&|A\rPID|1\x1c\r\r\nMSH|^~\\&|B\nPID|2\nBTS|2\nFTS|1\n"
    )
    assert split_messages(text) == [["MSH|^~\\&|A", "PID|1"], ["MSH|^~\\&|B", "PID|2"]]


# --- acknowledgements and the command --------------------------------------------------------


def test_ack_for_an_accepted_message():
    [result] = import_hl7_messages(text_of(message("CTRL-42")))
    text = ack_for(result, control_id="ACK1")
    assert text.endswith("\r")
    ack = hl7.parse(text)
    msh = ack.segment("MSH")
    assert str(msh(9)) == "ACK^R01^ACK"
    assert str(msh(10)) == "ACK1"
    assert (str(msh(3)), str(msh(5))) == ("TDM", "LIS")  # sender and receiver swapped
    assert str(msh(12)) == "2.5.1"
    assert [str(s[0]) for s in ack] == ["MSH", "MSA"]
    assert (str(ack.segment("MSA")(1)), str(ack.segment("MSA")(2))) == ("AA", "CTRL-42")


def test_ack_reasons_are_escaped():
    [result] = import_hl7_messages(text_of(message("M1", obx(value="5\\F\\2\\S\\x"))))
    assert result.status == ERROR
    ack = hl7.parse(ack_for(result))
    assert len(ack.segments("ERR")) == 1
    assert "5|2^x" in ack.unescape(str(ack.segment("ERR")(8)))


def test_the_command_exit_code_and_lines(tmp_path):
    ok = write(tmp_path, text_of(message("M1")), "ok.hl7")
    code, out, err = run_command(ok)
    assert code == 0, err
    assert out.splitlines() == [
        "message 1 M1: accepted: levels 1 created, 0 updated, 0 unchanged; "
        "labs 0 created, 0 updated, 0 unchanged; 0 ignored"
    ]
    mixed = write(
        tmp_path, text_of(message("M2", accession="A2"), message("M3", mrn="MRN-404")), "mixed.hl7"
    )
    acks = tmp_path / "acks.hl7"
    code, out, err = run_command(mixed, "--acks", str(acks))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("message 1 M2: accepted")
    assert lines[1].startswith("message 2 M3: error: PID-3 value 'MRN-404': unknown patient")
    assert "1 of 2 message(s) not accepted" in err
    written = acks.read_text(encoding="utf-8")
    assert "MSA|AA|M2" in written and "MSA|AE|M3" in written


def test_the_command_on_a_missing_file(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_hl7", str(tmp_path / "nope.hl7"))


def test_the_user_is_recorded():
    user = get_user_model().objects.create_user("lab-interface", password="x-unused-x")
    import_hl7_messages(text_of(message("M1")), user=user)
    level = TroughLevel.objects.get()
    assert level.entered_by == user
    assert level.history.get().history_user == user
