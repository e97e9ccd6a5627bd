"""POST /hl7/inbound/: an interface engine sends ORU^R01 messages with its bearer token and
gets one HL7 ACK per message back."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from monitoring.importers import run_csv_import
from monitoring.models import InterfaceToken, LabResult, Source, TroughLevel
from monitoring.views import hl7_endpoint

pytestmark = pytest.mark.django_db

URL = reverse("monitoring:hl7_inbound")
ER7 = "x-application/hl7-v2+er7"


def message(control="MSG1", *, mrn="MRN-1", accession="ACC-1", value="5.2", msh9="ORU^R01"):
    return (
        f"MSH|^~\\&|LIS|GH|TDM|NEPHRO|20250312093000||{msh9}|{control}|P|2.5.1\r"
        f"PID|1||{mrn}^^^GH^MR||Doe^Jane||19880412|F\r"
        f"OBR|1|ORD1|{accession}|77348-1^Tacrolimus trough^LN|||20250312073000\r"
        f"OBX|1|NM|77348-1^Tacrolimus trough^LN||{value}|ng/mL^^UCUM|5.0-15.0|N|||F|||"
        "20250312073000|||LCMSMS\r"
        "OBX|2|NM|2160-0^Creatinine^LN||0.92|mg/dL^^UCUM|0.5-1.1|N|||F|||20250312073000\r"
    )


@pytest.fixture(autouse=True)
def patient():
    report = run_csv_import(
        "patients", b"mrn,family_name,given_name,birth_date,sex\nMRN-1,Doe,Jane,1988-04-12,F\n"
    )
    assert report.ok


@pytest.fixture
def token() -> str:
    _, plain = InterfaceToken.issue("Main lab LIS")
    return plain


def send(
    body: str | bytes,
    token: str | None,
    *,
    content_type: str = ER7,
    client: Client | None = None,
    **headers,
):
    client = client or Client()
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post(URL, data=body, content_type=content_type, **headers)


def acks(response) -> list[list[str]]:
    """The MSA segments of the answer, as field lists."""
    segments = response.content.decode().split("\r")
    return [s.split("|") for s in segments if s.startswith("MSA|")]


def test_an_accepted_message_is_acknowledged_aa_and_stored_as_from_the_interface(token):
    response = send(message(), token)
    assert response.status_code == 200
    assert response["Content-Type"] == f"{ER7}; charset=utf-8"
    assert response.content.decode().startswith("MSH|^~\\&|TDM|NEPHRO|LIS|GH|")
    assert acks(response) == [["MSA", "AA", "MSG1"]]
    level = TroughLevel.objects.get()
    assert (level.accession, level.source, level.entered_by) == ("ACC-1", Source.HL7, None)
    assert level.timing_flag == "unknown"
    assert LabResult.objects.get().source == Source.HL7
    record = level.history.get()
    assert record.history_user is None
    assert record.history_change_reason == "HL7 interface: Main lab LIS"
    assert InterfaceToken.objects.get().last_used_at is not None


def test_text_plain_is_accepted_and_answered_in_kind(token):
    response = send(message(), token, content_type="text/plain; charset=utf-8")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert acks(response)[0][1] == "AA"


def test_an_unknown_patient_is_an_application_error_with_the_reason(token):
    response = send(message(mrn="MRN-404"), token)
    assert response.status_code == 200
    [msa] = acks(response)
    assert msa[:3] == ["MSA", "AE", "MSG1"]
    assert "unknown patient" in msa[3]
    assert "ERR|" in response.content.decode()
    assert TroughLevel.objects.count() == 0
    assert LabResult.objects.count() == 0


def test_a_bad_value_is_an_application_error_and_writes_nothing_of_the_message(token):
    response = send(message(value="abc"), token)
    [msa] = acks(response)
    assert msa[1] == "AE"
    assert "OBX-5" in msa[3]
    assert TroughLevel.objects.count() == 0
    assert LabResult.objects.count() == 0  # the creatinine of the same message neither


def test_an_unreadable_message_is_rejected_ar(token):
    response = send("this is not HL7 at all\r", token)
    assert response.status_code == 200
    [msa] = acks(response)
    assert msa[1] == "AR"


def test_another_message_type_is_rejected_ar(token):
    [msa] = acks(send(message(msh9="ADT^A01"), token))
    assert msa[:3] == ["MSA", "AR", "MSG1"]
    assert "only ORU\\S\\R01 is accepted" in msa[3]  # ^ escaped as \S\ inside a field


def test_several_messages_get_one_ack_each_in_order(token):
    body = (
        message("M1", accession="ACC-1")
        + message("M2", mrn="MRN-404", accession="ACC-2")
        + message("M3", msh9="ADT^A01", accession="ACC-3")
        + message("M4", accession="ACC-4", value="6.1")
    )
    response = send(body, token)
    assert [(a[1], a[2]) for a in acks(response)] == [
        ("AA", "M1"),
        ("AE", "M2"),
        ("AR", "M3"),
        ("AA", "M4"),
    ]
    assert response.content.decode().count("MSH|") == 4
    assert sorted(TroughLevel.objects.values_list("accession", flat=True)) == ["ACC-1", "ACC-4"]


def test_the_same_message_twice_duplicates_nothing(token):
    first = send(message(), token)
    history = TroughLevel.history.count()
    second = send(message(), token)
    assert acks(first)[0][1] == acks(second)[0][1] == "AA"
    assert TroughLevel.objects.count() == 1
    assert LabResult.objects.count() == 1
    assert TroughLevel.history.count() == history


def test_mllp_framing_and_line_feeds_are_tolerated(token):
    body = "\x0b" + message().replace("\r", "\n") + "\x1c\r"
    assert acks(send(body, token))[0][1] == "AA"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz"],
)
def test_a_missing_or_bad_token_is_401(authorization):
    InterfaceToken.issue("Main lab LIS")
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = send(message(), None, **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert TroughLevel.objects.count() == 0


def test_an_inactive_token_is_401(token):
    InterfaceToken.objects.update(active=False)
    assert send(message(), token).status_code == 401
    assert TroughLevel.objects.count() == 0


def test_only_the_hash_of_the_token_is_stored(token):
    stored = InterfaceToken.objects.get()
    assert token not in stored.token_hash
    assert stored.token_hash == InterfaceToken.hash_token(token)
    assert len(stored.token_hash) == 64


def test_an_oversized_body_is_413(token):
    body = message() + "x" * hl7_endpoint.MAX_BODY_BYTES
    response = send(body, token)
    assert response.status_code == 413
    assert TroughLevel.objects.count() == 0


def test_the_limit_is_on_the_body_size(token, monkeypatch):
    body = message()
    monkeypatch.setattr(hl7_endpoint, "MAX_BODY_BYTES", len(body.encode()))
    assert send(body, token).status_code == 200
    assert send(body + "\r", token).status_code == 413


def batch_of(count: int) -> str:
    return "".join(message(f"M{n}", accession=f"ACC-{n}") for n in range(1, count + 1))


def test_a_request_with_as_many_messages_as_the_limit_is_imported(token, settings):
    settings.HL7_MAX_MESSAGES_PER_REQUEST = 3
    response = send(batch_of(3), token)
    assert response.status_code == 200
    assert [(a[1], a[2]) for a in acks(response)] == [("AA", "M1"), ("AA", "M2"), ("AA", "M3")]
    assert TroughLevel.objects.count() == 3


def test_one_message_over_the_limit_is_413_naming_both_and_stores_nothing(token, settings):
    settings.HL7_MAX_MESSAGES_PER_REQUEST = 3
    response = send(batch_of(4), token)
    assert response.status_code == 413
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("4 messages received; the limit is 3 messages per request")
    assert "HL7_MAX_MESSAGES_PER_REQUEST" in text
    assert "MSA|" not in text  # no ACK: an AR would tell the engine the messages are bad
    assert TroughLevel.objects.count() == 0
    assert LabResult.objects.count() == 0
    assert TroughLevel.history.count() == 0


def test_another_content_type_is_415(token):
    response = send('{"resourceType": "Bundle"}', token, content_type="application/json")
    assert response.status_code == 415


def test_a_body_without_messages_is_400(token):
    assert send("\r\n", token).status_code == 400


def test_get_is_not_allowed(token):
    response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405


def test_no_csrf_token_and_no_session_are_needed(token):
    client = Client(enforce_csrf_checks=True)
    response = send(message(), token, client=client)
    assert response.status_code == 200
    assert acks(response)[0][1] == "AA"


def test_a_logged_in_browser_without_the_token_is_refused(token, data_entry_client):
    response = send(message(), None, client=data_entry_client)
    assert response.status_code == 401


def test_the_admin_shows_a_new_token_once_and_stores_only_its_hash(client_for):
    admin = client_for("superuser")
    response = admin.post(
        reverse("admin:monitoring_interfacetoken_add"), {"name": "Backup LIS", "active": "on"}
    )
    assert response.status_code == 200
    plain = response.context["token"]
    assert plain in response.content.decode()
    assert "not shown again" in response.content.decode()
    stored = InterfaceToken.objects.get(name="Backup LIS")
    assert stored.token_hash == InterfaceToken.hash_token(plain)
    change = admin.get(reverse("admin:monitoring_interfacetoken_change", args=[stored.pk]))
    assert plain not in change.content.decode()
    assert stored.token_hash not in change.content.decode()
    # The token works at once.
    assert acks(send(message(), plain))[0][1] == "AA"


def test_staff_without_the_permission_cannot_see_tokens(client_for):
    clinician = client_for("clinician", is_staff=True)
    response = clinician.get(reverse("admin:monitoring_interfacetoken_changelist"))
    assert response.status_code == 403


# --- no usable result, database refusals, chunked bodies -------------------------------------


def without_obx(control="NOOBX") -> str:
    return "".join(
        segment + "\r"
        for segment in message(control).split("\r")
        if segment and not segment.startswith("OBX")
    )


def test_an_oru_without_obx_is_an_application_error_saying_no_result_was_found(token):
    response = send(without_obx(), token)

    [msa] = acks(response)
    assert msa[:3] == ["MSA", "AE", "NOOBX"]
    assert "no tacrolimus or kidney result was found" in response.content.decode()
    assert TroughLevel.objects.count() == 0


def test_an_oru_with_only_unknown_codes_names_them_in_the_error(token):
    local = message("LOCAL").replace("77348-1^Tacrolimus trough^LN", "TACRO^Tacrolimus^L")
    local = local.replace("2160-0^Creatinine^LN", "CREA^Creatinine^L")

    response = send(local, token)

    [msa] = acks(response)
    assert msa[1] == "AE"
    text = response.content.decode()
    assert "no tacrolimus or kidney result was found" in text
    assert "TACRO" in text and "CREA" in text
    assert TroughLevel.objects.count() == 0


def test_a_database_refusal_never_reaches_the_ack_verbatim(token, monkeypatch):
    from django.db import IntegrityError

    from monitoring.importers import kinds

    def refuse(record, values, ctx):
        raise IntegrityError(
            'duplicate key value violates unique constraint "trough_unique_accession"\n'
            "DETAIL:  Key (patient_id, accession)=(1, ACC-1) already exists."
        )

    monkeypatch.setattr(kinds, "_save_changes", refuse)

    response = send(message(), token)

    text = response.content.decode()
    assert acks(response)[0][1] == "AE"
    assert "refused by the database" in text
    assert "trough_unique_accession" in text
    assert "Key (" not in text and "ACC-1)" not in text and "DETAIL" not in text


def test_a_chunked_body_is_read(token):
    import io

    body = message("CHUNKED").encode()

    response = Client().post(
        URL,
        data=b"",
        content_type=ER7,
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        CONTENT_TYPE=ER7,
        **{"wsgi.input": io.BytesIO(body)},
    )

    assert response.status_code == 200
    assert acks(response) == [["MSA", "AA", "CHUNKED"]]
    assert TroughLevel.objects.count() == 1


def test_a_chunked_body_over_the_limit_is_413(token, monkeypatch):
    import io

    monkeypatch.setattr(hl7_endpoint, "MAX_BODY_BYTES", 100)

    response = Client().post(
        URL,
        data=b"",
        content_type=ER7,
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        CONTENT_TYPE=ER7,
        **{"wsgi.input": io.BytesIO(message().encode())},
    )

    assert response.status_code == 413
    assert TroughLevel.objects.count() == 0
