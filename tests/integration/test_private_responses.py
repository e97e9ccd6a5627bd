"""Patient data is never kept by a browser or proxy cache, and searches do not leave
identifiers in an access log."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.urls import reverse

from tests.integration.test_audit import make_patient

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def patient(user_factory):
    return make_patient(user_factory(groups=["data_entry"]))


def assert_private(response) -> None:
    directives = {d.strip() for d in response.get("Cache-Control", "").split(",")}
    assert {"no-store", "private"} <= directives, (response.status_code, directives)


@pytest.mark.parametrize(
    ("url_name", "by_pk", "headers"),
    [
        ("monitoring:worklist", False, {}),
        ("monitoring:worklist", False, HX),
        ("monitoring:worklist_export", False, {}),
        ("monitoring:patient", True, {}),
        ("monitoring:patient", True, HX),
        ("monitoring:report", True, {}),
        ("monitoring:patient_fhir", True, {}),
        ("monitoring:patient_history", True, {}),
        ("monitoring:report_batch", False, {}),
    ],
)
def test_pages_fragments_and_files_with_patient_data_are_not_cached(
    client_for, patient, url_name, by_pk, headers
):
    client = client_for("viewer")
    url = reverse(url_name, args=[patient.pk] if by_pk else [])

    response = client.get(url, **headers)

    assert response.status_code == 200
    assert_private(response)


def test_a_refused_write_showing_the_page_is_not_cached(client_for, patient):
    response = client_for("clinician").post(
        reverse("monitoring:level_add", args=[patient.pk]), {"value": "x"}
    )

    assert response.status_code == 422
    assert_private(response)


def test_the_admin_and_the_access_log_are_not_cached(client_for, patient):
    client = client_for("superuser")

    for url in [
        reverse("admin:monitoring_patient_change", args=[patient.pk]),
        reverse("monitoring:access_log"),
        reverse("monitoring:access_log_csv"),
    ]:
        assert_private(client.get(url))


def test_the_gunicorn_access_log_format_leaves_out_query_strings_and_referrers():
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    log_format = config["access_log_format"]

    assert "%(U)s" in log_format  # the path only
    for leaky in ("%(r)s", "%(q)s", "%(f)s", "{"):
        assert leaky not in log_format


def test_the_load_test_and_the_readme_use_that_format():
    load = (ROOT / "bench" / "load.py").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert '"--config"' in load and "gunicorn.conf.py" in load
    assert '"--access-logfile"' in load
    assert "gunicorn.conf.py" in readme.split("## Production deployment", 1)[1]
