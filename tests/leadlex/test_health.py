"""GET /healthz (the process is up) and GET /readyz (database, broker and storage
answer), through HTTP on either profile, with real faults: a closed port for the
broker, the S3 endpoint and the database, a files directory that cannot exist."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from rest_framework.test import APIClient

from tests.conftest import KeyedClient

CHECKS = {"database", "broker", "storage"}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it
    meanwhile) but never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_healthz_answers_without_a_key_and_without_touching_the_database(anon: APIClient) -> None:
    # No `db` fixture: pytest-django makes any database access an error, which
    # would surface here as a 500.
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]
    assert anon.head("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_answers_200_when_database_broker_and_storage_answer(anon: APIClient, storage_ready: None) -> None:
    response = anon.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
    assert all(check["status"] == "ok" for check in body["checks"].values()), body
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_the_probes_are_neither_behind_the_api_key_nor_rate_limited(
    anon: APIClient, owner: KeyedClient, settings, storage_ready: None
) -> None:
    settings.LEADLEX_RATE_LIMITS = {group: "1/minute" for group in settings.LEADLEX_RATE_LIMITS}
    # The same limits do bite on the API...
    assert owner.client.get("/v1/contacts").status_code == 200
    assert owner.client.get("/v1/contacts").status_code == 429
    # ...and a key the API refuses is no matter to the probes.
    anon.credentials(HTTP_AUTHORIZATION="Bearer wbk_not-a-key")
    assert anon.get("/v1/contacts").status_code == 401
    for path in ("/healthz", "/readyz") * 10:
        response = anon.get(path)
        assert response.status_code == 200, (path, response.content)
        assert "X-RateLimit-Limit" not in response


@pytest.mark.django_db
def test_readyz_answers_503_naming_the_broker_when_it_does_not_answer(
    anon: APIClient, settings, closed_port: int, storage_ready: None
) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/0"
    started = time.monotonic()
    response = anon.get("/readyz")
    assert time.monotonic() - started < 5  # an answer, not a hang
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "not_ready" and "broker" in error["message"]
    assert error["details"]["failed"] == ["broker"]
    checks = error["details"]["checks"]
    assert checks["broker"]["status"] == "failed" and checks["broker"]["error"]
    assert checks["database"]["status"] == checks["storage"]["status"] == "ok"
    assert str(closed_port) not in response.content.decode()  # the public page does not echo the configuration
    assert anon.get("/healthz").status_code == 200  # alive all the same: nothing to restart


@pytest.mark.django_db
def test_readyz_answers_503_naming_the_storage_when_s3_does_not_answer(
    anon: APIClient, settings, closed_port: int
) -> None:
    settings.LEADLEX_STORAGE_BACKEND = "s3"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "leadlex.storage.S3FileStorage"}}
    settings.AWS_STORAGE_BUCKET_NAME = "leadlex-health"
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{closed_port}"
    settings.AWS_ACCESS_KEY_ID = settings.AWS_SECRET_ACCESS_KEY = "test"
    started = time.monotonic()
    response = anon.get("/readyz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["failed"] == ["storage"]


@pytest.mark.django_db
def test_readyz_answers_503_when_the_s3_bucket_does_not_exist(
    anon: APIClient, settings, request: pytest.FixtureRequest
) -> None:
    if settings.LEADLEX_STORAGE_BACKEND != "s3":
        pytest.skip("needs the production profile's S3 server")
    request.getfixturevalue("s3_bucket")  # the server answers; only the bucket is wrong
    settings.AWS_STORAGE_BUCKET_NAME = "leadlex-no-such-bucket"
    response = anon.get("/readyz")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["details"]["failed"] == ["storage"]


@pytest.mark.django_db
def test_readyz_answers_503_when_the_local_files_directory_cannot_be_made(
    anon: APIClient, settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the files directory should be")
    settings.LEADLEX_STORAGE_BACKEND = "local"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "leadlex.storage.LocalFileStorage"}}
    settings.LEADLEX_FILES_DIR = blocker / "files"
    response = anon.get("/readyz")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["details"]["failed"] == ["storage"]


def test_the_probes_answer_only_reads(anon: APIClient) -> None:
    assert anon.post("/healthz").status_code == 405
    assert anon.post("/readyz").status_code == 405


def test_a_real_server_without_its_database_is_alive_but_not_ready(closed_port: int, storage_ready: None) -> None:
    """gunicorn with DATABASE_URL at a closed port: /healthz still 200 (no DB), /readyz
    503 naming the database."""
    from tests.support.server import WebServer

    server = WebServer(
        workers=1,
        extra_env={
            "DATABASE_URL": f"postgres://leadlex@127.0.0.1:{closed_port}/leadlex",
            "DATABASE_CONN_MAX_AGE": "0",
        },
    )
    try:
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
        started = time.monotonic()
        response = requests.get(server.url + "/readyz", timeout=10)
        assert time.monotonic() - started < 5
        assert response.status_code == 503, response.text
        assert response.json()["error"]["details"]["failed"] == ["database"]
        assert "X-Request-ID" in response.headers
    finally:
        server.stop()
