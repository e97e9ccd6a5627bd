"""Fixtures shared by every test tier. Nothing here imports monitoring models, so unit
tests and site tests keep working whatever state the app is in."""

import itertools
from collections.abc import Callable, Iterable

import pytest
from django.contrib.auth.models import Group
from django.test import Client

# The roles the data migration creates; fixtures get_or_create them so they also work
# when a test database is built without that migration's data.
ROLES = ("clinician", "data_entry", "viewer")
TEST_PASSWORD = "correct-horse-battery-staple"

_usernames = itertools.count(1)


def pytest_collection_modifyitems(config, items):
    """The multihost tests (tests/multihost) start servers of their own and run only when a
    -m expression names them (`make test-multihost`): pyproject's addopts says
    `-m 'not multihost'`, but a command-line -m such as `-m "not browser"` replaces it."""
    if "multihost" in (config.getoption("markexpr") or ""):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("multihost") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _forecasts_only_where_tested(request, settings):
    """Model-informed forecasts (a PK fit per write, ~0.1 s) only in the tests about them,
    marked ``forecast``: elsewhere the site runs as with PK_FORECASTS off, which keeps the
    suite inside its time budget. tests/integration/test_forecast*.py run them for real."""
    settings.PK_FORECASTS = request.node.get_closest_marker("forecast") is not None


@pytest.fixture(autouse=True)
def _tasks_run_at_once(request, settings):
    """Background tasks run inside the request that enqueues them (django-tasks'
    ImmediateBackend), so an ordinary test sees a confirmed import finished. Tests marked
    ``worker`` keep the database backend and run real ``manage.py db_worker`` processes."""
    if request.node.get_closest_marker("worker") is None:
        settings.TASKS = {
            "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}
        }


@pytest.fixture
def user_factory(db, django_user_model) -> Callable[..., object]:
    """Make a user: `user_factory(groups=["clinician"], is_staff=True, username="ana")`.

    The password is TEST_PASSWORD unless given."""

    def make(
        *,
        groups: Iterable[str] = (),
        username: str | None = None,
        password: str = TEST_PASSWORD,
        is_staff: bool = False,
        is_superuser: bool = False,
        **extra: object,
    ):
        user = django_user_model.objects.create_user(
            username=username or f"user{next(_usernames)}",
            password=password,
            is_staff=is_staff,
            is_superuser=is_superuser,
            **extra,
        )
        for name in groups:
            group, _ = Group.objects.get_or_create(name=name)
            user.groups.add(group)
        return user

    return make


@pytest.fixture
def client_for(user_factory) -> Callable[[str], Client]:
    """A logged-in Django test client for a role: one of ROLES, or "superuser".

    Each call returns a fresh client with a new user, so one test can compare roles."""

    def login_as(role: str, **user_fields: object) -> Client:
        if role == "superuser":
            user = user_factory(is_staff=True, is_superuser=True, **user_fields)
        elif role in ROLES:
            user = user_factory(groups=[role], **user_fields)
        else:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES} or 'superuser'")
        client = Client()
        client.force_login(user)
        client.user = user  # handy for assertions about who did what
        return client

    return login_as


@pytest.fixture
def clinician_client(client_for) -> Client:
    return client_for("clinician")


@pytest.fixture
def data_entry_client(client_for) -> Client:
    return client_for("data_entry")


@pytest.fixture
def viewer_client(client_for) -> Client:
    return client_for("viewer")
