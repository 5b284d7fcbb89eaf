"""Idempotency-Key on POST /v1/import/contacts: replay, conflict, concurrency, scope."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from contacts.models import Contact
from imports.models import ImportIdempotencyKey, ImportJob
from tests.support.imports import import_rows

URL = "/v1/import/contacts"


def post(keyed, body, key):
    return keyed.client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_same_key_and_body_replays_the_first_response_and_imports_nothing_again(owner):
    body = {"rows": import_rows(3)}
    first = post(owner, body, "k-1")
    assert first.status_code == 200
    Contact.objects.filter(workspace=owner.workspace).delete()  # a replay must not re-create them
    second = post(owner, body, "k-1")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert Contact.objects.filter(workspace=owner.workspace).count() == 0
    assert ImportJob.objects.count() == 1


@pytest.mark.django_db
def test_a_queued_import_replays_202_with_the_same_job_id(owner, django_capture_on_commit_callbacks):
    body = {"rows": import_rows(501)}
    with django_capture_on_commit_callbacks(execute=False):
        first = post(owner, body, "big")
        second = post(owner, body, "big")
    assert first.status_code == second.status_code == 202
    assert first.json()["data"]["job_id"] == second.json()["data"]["job_id"]
    assert ImportJob.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_another_body_is_409_idempotency_conflict(owner):
    post(owner, {"rows": import_rows(1)}, "k-2")
    response = post(owner, {"rows": import_rows(2)}, "k-2")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.django_db
def test_keys_are_per_workspace(owner, stranger):
    assert post(owner, {"rows": import_rows(1)}, "shared").status_code == 200
    response = post(stranger, {"rows": import_rows(2)}, "shared")
    assert response.status_code == 200
    assert response.json()["data"]["created_count"] == 2


@pytest.mark.django_db
def test_a_key_expires_after_24_hours(owner):
    body = {"rows": import_rows(1)}
    first = post(owner, body, "old").json()["data"]["job_id"]
    ImportIdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    second = post(owner, body, "old").json()["data"]["job_id"]
    assert first != second


@pytest.mark.django_db
def test_a_failed_request_frees_its_key(owner):
    assert post(owner, {"csv": "colour\nblue\n"}, "fix-me").status_code == 400
    assert post(owner, {"rows": import_rows(1)}, "fix-me").status_code == 200


@pytest.mark.django_db
def test_a_csv_upload_replays_even_with_a_new_multipart_boundary(owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload():
        return owner.client.post(
            URL,
            {"file": SimpleUploadedFile("c.csv", b"email\na@acme.com\n")},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="file-1",
        )

    assert upload().json() == upload().json()
    assert ImportJob.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_import_once_and_answer_alike(owner):
    body = {"rows": import_rows(300)}
    results: list = []
    barrier = threading.Barrier(4)

    def send() -> None:
        from django.db import connections

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.raw_key}")
        barrier.wait()
        try:
            response = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="race")
            results.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 4
    assert {status for status, _ in results} == {200}
    assert len({body["data"]["job_id"] for _, body in results}) == 1
    assert ImportJob.objects.count() == 1
    assert Contact.objects.filter(workspace=owner.workspace).count() == 300
    assert results[0][1]["data"]["created_count"] == 300
