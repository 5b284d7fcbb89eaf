"""Uploads end to end, as a client does it: the bytes PUT over HTTP to the link the
live server handed out (streamed, chunked; S3 presigned URLs in the production
profile), the import run by a real Celery worker, killed and resumed."""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from rest_framework.test import APIClient

from contacts.models import Contact
from imports.engine import import_jobs_sweep
from imports.models import ImportJob, Upload
from leadlex import storage
from leadlex.models import Workspace
from tests.conftest import make_key
from tests.imports.test_import_jobs import snapshot
from tests.support.imports import WORKER_ENV, killed_mid_run
from tests.support.server import WebServer
from tests.support.worker import QueueWorker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MAPPING = {"Name": "full_name", "E-Mail": "email", "Telefon": "phone", "Firma": "company_name", "Tags": "tags"}


def rows_file(n: int) -> bytes:
    """What Excel writes on Windows in Germany (Windows-1252, semicolons), gzipped:
    accents, shared phone numbers, an e-mail repeated further down, bad addresses."""
    lines = ["Name;E-Mail;Telefon;Firma;Tags"]
    for i in range(n):
        email = f"jürgen.{i}@example.de".replace("ü", "ue") if i % 89 else "keine-adresse"
        if i % 113 == 0 and i:
            email = f"juergen.{i - 7}@example.de"  # an earlier row again: it updates that contact
        lines.append(f"Jürgen Müller {i};{email};+49 30 {i % 500:07d};Bäckerei Groß {i % 40};kunde,messe")
    return gzip.compress(("\r\n".join(lines) + "\r\n").encode("cp1252"), compresslevel=6)


def api(server: WebServer, key: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60, **kwargs)


def upload_over_http(server: WebServer, key: str, body: bytes) -> str:
    created = api(server, key, "POST", "/v1/uploads", json={"file_name": "kontakte.csv.gz"})
    assert created.status_code == 201, created.text
    data = created.json()["data"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: sent as it is produced
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    sent = requests.put(data["url"], data=chunked(), timeout=60)
    assert sent.status_code == 200, sent.text
    done = api(server, key, "POST", f"/v1/uploads/{data['upload_id']}/complete")
    assert done.status_code == 200, done.text
    assert done.json()["data"]["size"] == len(body)
    return data["upload_id"]


def test_an_upload_sent_over_http_imports_on_a_worker_that_is_killed_and_resumed(server, import_queue, settings):
    body = rows_file(4000)
    interrupted = Workspace.objects.create(name="interrupted")
    reference = Workspace.objects.create(name="reference")
    for ws in (interrupted, reference):  # existing contacts: updates
        for i in range(0, 4000, 10):
            Contact.objects.create(workspace=ws, email=f"JUERGEN.{i}@example.de", full_name="old", job_title="keep")
    keys = {ws.name: make_key(ws)[1] for ws in (interrupted, reference)}
    request = {"mapping": MAPPING, "update_existing": True, "tags": ["upload"]}

    def import_upload(name: str, upload_id: str) -> uuid.UUID:
        # In this process, whose settings send the job to this test's own queue (the live
        # server's would send it to the default queue, which the session's worker serves).
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys[name]}")
        response = client.post("/v1/import/contacts", {"upload_id": upload_id, **request}, format="json")
        assert response.status_code == 202, response.content
        return uuid.UUID(response.json()["data"]["job_id"][4:])

    upload_id = upload_over_http(server, keys["interrupted"], body)
    upload = Upload.objects.get(id=upload_id[4:])
    with storage.open_reader(upload.key) as fh:
        assert fh.read() == body

    killed = killed_mid_run("uploads-kill-1", import_queue, lambda: import_upload("interrupted", upload_id))
    job_id = killed.id
    assert 0 < killed.processed_bytes <= len(body)  # as far as read (the readers' buffers are 1 MiB)

    second = QueueWorker("uploads-kill-2", import_queue, extra_env=WORKER_ENV, also_default_queue=True)
    try:
        time.sleep(0.1)
        assert job_id in import_jobs_sweep(stale_after=timedelta(0))
        resumed = wait_for(
            lambda: (j := ImportJob.objects.get(id=job_id)).is_finished and j, timeout=180, message="the resumed run"
        )
        ref_id = import_upload("reference", upload_over_http(server, keys["reference"], body))
        ref = wait_for(
            lambda: (j := ImportJob.objects.get(id=ref_id)).is_finished and j, timeout=180, message="the reference"
        )
    finally:
        second.stop()

    assert resumed.status == ref.status == "completed", (resumed.error, ref.error)
    assert resumed.attempts == 2

    def counts(j: ImportJob) -> tuple[int | None, ...]:
        return (j.created_count, j.updated_count, j.skipped_count, j.error_count, j.processed_rows, j.total_rows)

    assert counts(resumed) == counts(ref)
    assert resumed.total_rows == 4000 and resumed.error_count > 0
    assert resumed.first_errors == ref.first_errors
    assert snapshot(interrupted) == snapshot(reference)
    assert Contact.objects.filter(
        workspace=interrupted, full_name__startswith="Jürgen Müller ", company_name__startswith="Bäckerei Groß"
    ).exists()  # decoded as Windows-1252

    status = api(server, keys["interrupted"], "GET", f"/v1/import/contacts/imp_{job_id.hex}").json()
    assert status["data"]["progress_percent"] == 100 and status["data"]["encoding"] == "windows-1252"
    # The upload's file is still there for another import, until it expires.
    assert storage.stored_size(upload.key) == len(body)
