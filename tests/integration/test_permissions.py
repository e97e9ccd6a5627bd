"""The permission matrix, enforced: every URL pattern of the site is requested as every role,
and each answer must be what docs/permissions.md grants, nothing more and nothing less.

The URL patterns are read from the resolver at run time, so a page added without an entry
here fails as "not in the matrix": decide who may use it, then add it to URLS (or to
ADMIN_MODELS for a model registered in the admin) and to docs/permissions.md.

Outcomes: "login" (sent to a login page), "forbidden" (403, or 401 for the token-only
interface) or "granted" (anything else: the page, a form with errors, a redirect after a
write, a 404 for a missing object). A 5xx is always a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from axes.models import AccessLog as AxesAccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import Patient, TroughLevel

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"

ROLES = ("anonymous", "viewer", "clinician", "data_entry", "superuser")
STAFF = {"data_entry", "superuser"}  # data-entry accounts are created with "Staff status"

# Who holds each capability (docs/permissions.md, "Capabilities").
CAPABILITIES: dict[str, set[str]] = {
    "public": set(ROLES),
    "signed_in": {"viewer", "clinician", "data_entry", "superuser"},
    "read": {"viewer", "clinician", "data_entry", "superuser"},
    "add_trough": {"clinician", "data_entry", "superuser"},
    "correct_trough": {"clinician", "data_entry", "superuser"},
    "sign_off": {"clinician", "superuser"},
    "record_decision": {"clinician", "superuser"},
    "record_data": {"clinician", "data_entry", "superuser"},
    "import": {"data_entry", "superuser"},
    "export": {"data_entry", "superuser"},
    "audit": {"superuser"},
    "confirm_dose": {"clinician", "superuser"},
    "interface": set(),  # a bearer token, never a session
}


@dataclass(frozen=True)
class Rule:
    capability: str
    method: str = "GET"


# Every front-office URL name: what it needs, and the method that exercises it.
URLS: dict[str, Rule] = {
    "healthz": Rule("public"),
    "login": Rule("public"),
    "logout": Rule("signed_in", "POST"),
    "password_change": Rule("signed_in"),
    "password_change_done": Rule("signed_in"),
    "monitoring:worklist": Rule("read"),
    "monitoring:worklist_export": Rule("read"),
    "monitoring:recall_csv": Rule("read"),
    "monitoring:patient": Rule("read"),
    "monitoring:patient_history": Rule("read"),
    "monitoring:patient_fhir": Rule("read"),
    "monitoring:report": Rule("read"),
    "monitoring:report_batch": Rule("read"),
    "monitoring:report_sign_off": Rule("sign_off", "POST"),
    "monitoring:level_add": Rule("add_trough", "POST"),
    "monitoring:level_last_dose": Rule("correct_trough", "POST"),
    "monitoring:level_mark_error": Rule("correct_trough", "POST"),
    "monitoring:regimen_add": Rule("record_decision", "POST"),
    "monitoring:target_add": Rule("record_decision", "POST"),
    "monitoring:drug_start": Rule("record_data", "POST"),
    "monitoring:drug_stop": Rule("record_data", "POST"),
    "monitoring:lab_add": Rule("record_data", "POST"),
    "monitoring:therapy_end": Rule("record_data", "POST"),
    "monitoring:alert_acknowledge": Rule("record_decision", "POST"),
    "monitoring:level_fit": Rule("record_decision", "POST"),
    "monitoring:patient_model": Rule("record_decision", "POST"),
    "monitoring:forecast_check": Rule("record_decision"),
    "monitoring:import": Rule("import"),
    "monitoring:import_confirm": Rule("import", "POST"),
    "monitoring:import_errors": Rule("import", "POST"),
    "monitoring:import_job": Rule("import"),
    "monitoring:hl7_inbound": Rule("interface", "POST"),
    "monitoring:export": Rule("export"),
    "monitoring:access_log": Rule("audit"),
    "monitoring:access_log_csv": Rule("audit"),
    # SMART on FHIR: the EHR's browser redirect arrives without a session of ours; the
    # callback then signs in only an account linked to the EHR user.
    "smart:launch": Rule("public"),
    "smart:start": Rule("public"),
    "smart:callback": Rule("public"),
    "smart:context": Rule("read"),
    "smart:import": Rule("import", "POST"),
    "smart:patient_create": Rule("import", "POST"),
    "smart:proposal_decide": Rule("confirm_dose", "POST"),
}

# The back office (Django admin, staff only): what each staff role may do per model:
# v = view (list, page, history), a = add, c = change, d = delete. Viewers and clinicians
# are not staff: every admin URL sends them to the admin login.
ADMIN_MODELS: dict[str, dict[str, str]] = {
    "monitoring.patient": {"data_entry": "vac", "superuser": "vac"},
    "monitoring.targetassignment": {"data_entry": "v", "superuser": "vac"},
    "monitoring.regimen": {"data_entry": "vac", "superuser": "vac"},
    "monitoring.troughlevel": {"data_entry": "vac", "superuser": "vac"},
    "monitoring.concomitantdrug": {"data_entry": "vac", "superuser": "vac"},
    "monitoring.labresult": {"data_entry": "vac", "superuser": "vac"},
    "monitoring.targetprofile": {"data_entry": "v", "superuser": "vac"},
    "monitoring.drugcatalogentry": {"data_entry": "v", "superuser": "vacd"},
    "monitoring.rulesetting": {"data_entry": "", "superuser": "vc"},
    "monitoring.interfacetoken": {"data_entry": "", "superuser": "vac"},
    "smart.smartserver": {"data_entry": "", "superuser": "vac"},
    "auth.user": {"data_entry": "", "superuser": "vacd"},
    "auth.group": {"data_entry": "", "superuser": "vacd"},
    "axes.accessattempt": {"data_entry": "", "superuser": "vcd"},
    "axes.accesslog": {"data_entry": "", "superuser": "vcd"},
    "axes.accessfailurelog": {"data_entry": "", "superuser": "vcd"},
}
ADMIN_ACTIONS = {
    "changelist": "v",
    "change": "v",
    "history": "v",
    "simple_history": "v",
    "add": "a",
    "delete": "d",
    "password_change": "c",
}
# Admin pages that are not about one model: any staff member.
ADMIN_SITE = {
    "admin:index",
    "admin:password_change",
    "admin:password_change_done",
    "admin:jsi18n",
    "admin:autocomplete",
    "admin:view_on_site",
    "admin:app_list",
    "admin:logout",
    "admin:<object redirect>",
    "admin:<catch-all>",
}


@dataclass
class Endpoint:
    key: str  # the URL name, or a stand-in for an unnamed admin pattern
    route: str
    url: str


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name}" if pattern.name else None
            yield name, prefix + str(pattern.pattern)


def _admin_model(key: str) -> tuple[str, str] | None:
    """("app.model", action) for an admin URL name such as admin:monitoring_patient_change."""
    if not key.startswith("admin:"):
        return None
    rest = key.removeprefix("admin:")
    for model in admin.site._registry:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if rest.startswith(prefix):
            return model._meta.label_lower, rest.removeprefix(prefix)
    return None


@pytest.fixture
def world():
    """One object of every kind, so that every URL can be built and answered."""
    data = (
        ("patients", "mrn,family_name,given_name,birth_date,sex\nPERM-1,Doe,Jane,1988-04-12,F\n"),
        (
            "regimens",
            "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
            "PERM-1,2025-01-10T20:00,IR,BID,3\n",
        ),
        (
            "levels",
            "mrn,collected_at,last_dose_at,value,unit,accession\n"
            "PERM-1,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,A1\n",
        ),
        ("medications", "mrn,drug,started_on\nPERM-1,fluconazole,2025-01-01\n"),
        (
            "labs",
            "mrn,collected_at,test,value,unit\nPERM-1,2025-02-03T08:00,creatinine,0.9,mg/dL\n",
        ),
    )
    for kind, text in data:
        assert run_csv_import(kind, text.encode()).ok
    from monitoring.models import InterfaceToken

    InterfaceToken.issue("lab feed")
    from smart.models import SmartServer

    SmartServer.objects.create(
        name="EHR", issuer="https://ehr.example.org/fhir", client_id="c", client_secret="s"
    )
    User.objects.create_user("someone-else")
    AccessAttempt.objects.create(
        username="x",
        ip_address="192.0.2.1",
        user_agent="t",
        failures_since_start=1,
        attempt_time=timezone.now(),
    )
    AxesAccessLog.objects.create(
        username="x", ip_address="192.0.2.1", user_agent="t", attempt_time=timezone.now()
    )
    AccessFailureLog.objects.create(
        username="x", ip_address="192.0.2.1", user_agent="t", attempt_time=timezone.now()
    )
    patient = Patient.objects.get(mrn="PERM-1")
    return {"patient": patient, "level": TroughLevel.objects.get(patient=patient)}


def _object_for(label: str):
    model = next(m for m in admin.site._registry if m._meta.label_lower == label)
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"no {label} to request: create one in the world fixture"
    return obj


def _history_id(obj) -> int:
    if not obj.history.exists():  # rows loaded by a data migration have no history yet
        obj.save()
    return obj.history.order_by("history_id").first().history_id


def _build(name: str | None, route: str, world) -> Endpoint:
    patient, level = world["patient"], world["level"]
    if name is None:
        if re.search(r"<path:object_id>/$", route):
            label = "/".join(route.split("/")[1:3]).replace("/", ".")
            url = "/" + route.replace("<path:object_id>", str(_object_for(label).pk))
            return Endpoint("admin:<object redirect>", route, url)
        if route.endswith("(?P<url>.*)$"):
            return Endpoint("admin:<catch-all>", route, "/admin/no-such-page/")
        raise AssertionError(f"unnamed URL pattern {route!r}: give it a name")
    admin_model = _admin_model(name)
    if admin_model:
        label, action = admin_model
        obj = _object_for(label)
        if action == "simple_history":
            url = reverse(name, args=[obj.pk, _history_id(obj)])
        elif action == "password_change":
            url = reverse(name, args=[obj.pk])
        elif "<path:object_id>" in route:
            url = reverse(name, kwargs={"object_id": obj.pk})
        else:
            url = reverse(name)
        return Endpoint(name, route, url)
    values = {
        "pk": patient.pk,
        "level_pk": level.pk,
        "code": "trough_below_range",
        "uidb64": "MQ",
        "token": "set-password",
        "app_label": "monitoring",
        "content_type_id": ContentType.objects.get_for_model(Patient).pk,
        "object_id": patient.pk,
    }
    needed = re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route)
    kwargs = {a or b: values[a or b] for a, b in needed}
    url = reverse(name, kwargs=kwargs)
    if name == "admin:autocomplete":
        url += "?app_label=monitoring&model_name=troughlevel&field_name=patient&term=D"
    return Endpoint(name, route, url)


def endpoints(world) -> list[Endpoint]:
    return [_build(name, route, world) for name, route in _walk(get_resolver())]


def expected(role: str, endpoint: Endpoint, method: str = "GET") -> str:
    key = endpoint.key
    if key == "admin:login":
        return "granted"
    if key.startswith("admin:"):
        if role not in STAFF:
            return "login"
        if key in ADMIN_SITE:
            return "granted"
        label, action = _admin_model(key)
        # Opening a change page needs view; sending it needs change.
        letter = "c" if action == "change" and method == "POST" else ADMIN_ACTIONS[action]
        return "granted" if letter in ADMIN_MODELS[label].get(role, "") else "forbidden"
    rule = URLS[key]
    if role in CAPABILITIES[rule.capability]:
        return "granted"
    if rule.capability == "interface" or role != "anonymous":
        return "forbidden"
    return "login"


def method_of(endpoint: Endpoint) -> str:
    if endpoint.key in URLS:
        return URLS[endpoint.key].method
    return "POST" if endpoint.key == "admin:logout" else "GET"


def outcome(response) -> str:
    assert response.status_code < 500, f"server error {response.status_code}"
    if response.status_code in (401, 403):
        return "forbidden"
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith((reverse("login"), reverse("admin:login"))):
            return "login"
    return "granted"


@pytest.fixture
def clients(user_factory) -> dict[str, Client]:
    made = {"anonymous": Client()}
    for role in ROLES[1:]:
        if role == "superuser":
            user = user_factory(username="role-superuser", is_staff=True, is_superuser=True)
        else:
            user = user_factory(username=f"role-{role}", groups=[role], is_staff=role in STAFF)
        client = Client()
        client.force_login(user)
        made[role] = client
    return made


def _unknown(key: str) -> bool:
    """True for a URL that neither URLS nor ADMIN_MODELS/ADMIN_SITE says anything about."""
    if key.startswith("admin:"):
        if key in ADMIN_SITE or key == "admin:login":
            return False
        found = _admin_model(key)
        return found is None or found[0] not in ADMIN_MODELS or found[1] not in ADMIN_ACTIONS
    return key not in URLS


def test_every_url_pattern_is_in_the_matrix(world):
    missing = [f"{e.key} ({e.route})" for e in endpoints(world) if _unknown(e.key)]

    assert not missing, "not in the permission matrix: " + ", ".join(missing)


def test_the_matrix_names_no_url_that_is_gone(world):
    names = {e.key for e in endpoints(world)}
    assert set(URLS) - names == set()
    registered = {m._meta.label_lower for m in admin.site._registry}
    assert set(ADMIN_MODELS) - registered == set()


def test_every_role_gets_exactly_what_the_matrix_grants(world, clients):
    wrong = []
    checked = 0
    for endpoint in endpoints(world):
        if endpoint.key in {"logout", "admin:logout"}:
            continue  # would end the session the other checks use; tested below
        if _unknown(endpoint.key):
            continue  # reported by test_every_url_pattern_is_in_the_matrix
        methods = [method_of(endpoint)]
        if endpoint.key.endswith("_change") and _admin_model(endpoint.key):
            methods.append("POST")  # an empty form: refused, or answered with its errors
        for method in methods:
            for role in ROLES:
                response = getattr(clients[role], method.lower())(endpoint.url)
                got, want = outcome(response), expected(role, endpoint, method)
                checked += 1
                if got != want:
                    wrong.append(
                        f"{role} {method} {endpoint.url} [{endpoint.key}]: "
                        f"{got} ({response.status_code}), matrix says {want}"
                    )

    assert not wrong, "\n".join(wrong)
    assert checked > 500  # every pattern, every role


@pytest.mark.parametrize("role", ROLES)
def test_logging_out_is_for_whoever_is_signed_in(clients, role):
    response = clients[role].post(reverse("logout"))

    assert response.status_code == 302
    assert "_auth_user_id" not in clients[role].session


@pytest.mark.parametrize("role", ROLES)
def test_the_back_office_logout_is_for_staff(clients, role):
    response = clients[role].post(reverse("admin:logout"))

    signed_in = "_auth_user_id" in clients[role].session
    assert response.status_code == 302
    if role in STAFF:
        assert not signed_in
    else:  # the back office does not know them: back to its door, still signed in
        assert response["Location"] in (
            reverse("admin:index"),
            f"{reverse('admin:login')}?next={reverse('admin:logout')}",
        )
        assert signed_in is (role != "anonymous")


def test_anonymous_users_are_sent_to_the_login_page_with_the_way_back(world, client):
    url = reverse("monitoring:patient_history", args=[world["patient"].pk])

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_the_groups_grant_no_delete_on_clinical_records():
    for group in Group.objects.filter(name__in=["viewer", "clinician", "data_entry"]):
        assert not group.permissions.filter(codename__startswith="delete_").exists(), group


def test_role_accounts_of_the_matrix_are_what_the_fixtures_make(clients):
    assert not User.objects.get(username="role-clinician").is_staff
    assert User.objects.get(username="role-data_entry").is_staff


# --- docs/permissions.md says the same -------------------------------------------------------


def _doc_rows(heading: str) -> list[list[str]]:
    """The cells of the table under a '## heading' of docs/permissions.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header row


def test_the_document_lists_the_same_capabilities():
    rows = _doc_rows("Capabilities")
    documented = {
        row[0]: {role for role, cell in zip(ROLES, row[1:6], strict=True) if cell == "yes"}
        for row in rows
    }
    assert documented == CAPABILITIES


def test_the_document_lists_the_same_urls():
    rows = _doc_rows("Pages and endpoints")
    documented = {row[0]: Rule(row[1], row[2]) for row in rows}
    assert documented == URLS


def test_the_document_lists_the_same_back_office_rights():
    rows = _doc_rows("Back office")
    documented = {
        row[0]: {"data_entry": row[1].replace("—", ""), "superuser": row[2].replace("—", "")}
        for row in rows
    }
    assert documented == ADMIN_MODELS
