"""Fixtures by role: a workspace with an owner key, a read-only key, and a second
workspace whose key must see nothing of the first."""

from __future__ import annotations

import base64
import os
import signal
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from leadlex.models import ALL_SCOPES, SCOPE_READ_CONTACTS, ApiKey, Workspace
from tests.support.s3 import ensure_bucket


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (``.ci/run``'s timeout, an interrupted CI job) stops the run as Ctrl-C does:
    fixtures tear down, so the workers and servers the tests started are stopped, not left
    running after pytest is gone."""

    pytest_pid = os.getpid()

    def interrupt(signum: int, frame: object) -> None:
        if os.getpid() != pytest_pid:  # a process forked by a test dies of it, as it would have
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@dataclass
class KeyedClient:
    client: APIClient
    workspace: Workspace
    api_key: ApiKey
    raw_key: str


def make_key(workspace: Workspace, scopes: tuple[str, ...] = ALL_SCOPES, **extra) -> tuple[ApiKey, str]:
    raw = ApiKey.generate()
    key = ApiKey(
        workspace=workspace, scopes=list(scopes), owner_email=extra.pop("owner_email", "owner@example.com"), **extra
    )
    key.set_key(raw)
    key.save()
    return key, raw


def keyed_client(workspace: Workspace, scopes: tuple[str, ...] = ALL_SCOPES) -> KeyedClient:
    key, raw = make_key(workspace, scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return KeyedClient(client=client, workspace=workspace, api_key=key, raw_key=raw)


def basic_auth(raw_key: str) -> str:
    return "Basic " + base64.b64encode(f"{raw_key}:".encode()).decode()


@pytest.fixture
def workspace(db) -> Workspace:
    return Workspace.objects.create(name="Acme", timezone="UTC")


@pytest.fixture
def other_workspace(db) -> Workspace:
    return Workspace.objects.create(name="Globex", timezone="UTC")


@pytest.fixture
def owner(workspace: Workspace) -> KeyedClient:
    return keyed_client(workspace)


@pytest.fixture
def reader(workspace: Workspace) -> KeyedClient:
    return keyed_client(workspace, (SCOPE_READ_CONTACTS,))


@pytest.fixture
def stranger(other_workspace: Workspace) -> KeyedClient:
    """A key of another workspace: it must see nothing of ``workspace``."""
    return keyed_client(other_workspace)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings, tmp_path):
    """Each test counts from zero: the SQLite store moves to a per-test file and
    Redis keys get a per-test namespace through a fresh workspace id anyway."""
    settings.LEADLEX_RATELIMIT_SQLITE_PATH = tmp_path / "ratelimit.sqlite3"


@pytest.fixture(scope="session", autouse=True)
def _s3_bucket_exists() -> None:
    """In the production profile the bucket (on the test S3 server) must exist."""
    from django.conf import settings

    if settings.LEADLEX_STORAGE_BACKEND == "s3":
        ensure_bucket()


@pytest.fixture(scope="session")
def s3_bucket() -> str:
    """The configured bucket's name (production profile)."""
    return ensure_bucket()


@pytest.fixture
def storage_ready(request: pytest.FixtureRequest) -> None:
    """The configured storage exists: the bucket on the test S3 server (production
    profile); the local files directory is made on demand."""
    from django.conf import settings

    if settings.LEADLEX_STORAGE_BACKEND == "s3":
        request.getfixturevalue("s3_bucket")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """One real worker for the session. Tests that use it need ``transactional_db``
    so that the worker process sees their rows."""
    from tests.support.worker import WorkerProcess, purge_broker

    with django_db_blocker.unblock():
        purge_broker()
        # Test webhook receivers listen on 127.0.0.1, which the production profile's
        # SSRF guard refuses by default; tests of that guard run in-process.
        worker = WorkerProcess("session", concurrency=2, extra_env={"LEADLEX_WEBHOOKS_ALLOW_PRIVATE": "1"})
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    """A live gunicorn (the product's own server configuration, two worker processes) on
    the test database, for a module's tests that talk to it over HTTP; those tests need
    ``transactional_db`` so that it sees their rows."""
    from tests.support.server import WebServer

    with django_db_blocker.unblock():  # the server must open the test database, not the default one
        web = WebServer(workers=2)
    yield web
    web.stop()


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true")


def is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"
