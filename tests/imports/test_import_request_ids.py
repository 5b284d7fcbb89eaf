"""The X-Request-ID of the request that started an import is on the job (status
JSON, admin) and on the log lines a real worker writes while running it."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from imports.models import ImportJob
from leadlex import storage
from leadlex.models import WebhookDelivery, WebhookEndpoint
from tests.support.imports import WORKER_ENV, import_rows
from tests.support.worker import QueueWorker, wait_for

URL = "/v1/import/contacts"

# The head line of a record in the LOGGING format (config/settings.py).
RECORD = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+ ")


def lines_about(log: str, job: ImportJob) -> list[str]:
    """The log records that name the job (a traceback's own lines are not records)."""
    return [line for line in log.splitlines() if RECORD.match(line) and (str(job.id) in line or job.id.hex in line)]


def lines_once(worker: QueueWorker, job: ImportJob, done: Callable[[list[str]], bool]) -> list[str]:
    """The worker's records about the job once `done` holds for them: the worker logs a job's
    outcome just after the job's row commits, so the line can trail the status by a moment."""

    def ready() -> list[str] | None:
        lines = lines_about(worker.log(), job)
        return lines if lines and done(lines) else None

    try:
        return wait_for(ready, timeout=30, message=f"the worker's lines about {job.id}")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n{worker.log()[-3000:]}") from None


def finished(job_id: uuid.UUID) -> ImportJob:
    return wait_for(
        lambda: (j := ImportJob.objects.get(id=job_id)).is_finished and j,
        timeout=120,
        message=f"import {job_id} to finish",
    )


@pytest.fixture
def worker(import_queue):
    w = QueueWorker("imports-reqid", import_queue, extra_env=WORKER_ENV, also_default_queue=True)
    yield w
    w.stop()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_queued_imports_request_id_is_on_its_status_and_on_every_worker_line_about_it(owner, worker) -> None:
    WebhookEndpoint.objects.create(
        workspace=owner.workspace, url="https://hooks.example.com/lx", events=["import.completed"], secret="whsec_test"
    )
    response = owner.client.post(URL, {"rows": import_rows(520)}, format="json", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    job = finished(uuid.UUID(data["job_id"].removeprefix("imp_")))
    assert job.status == "completed", (job.error, worker.log()[-3000:])

    status = owner.client.get(f"{URL}/{data['job_id']}").json()["data"]
    assert status["request_id"] == "abc-123"
    about = lines_once(worker, job, lambda lines: "completed" in lines[-1])
    assert all("request_id=abc-123" in line for line in about), worker.log()[-3000:]
    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(event="import.completed").first(),
        timeout=30,
        message="the import.completed delivery",
    )
    assert delivery.payload["data"]["job_id"] == data["job_id"] and delivery.payload["data"]["request_id"] == "abc-123"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_failure_lines_of_a_queued_import_carry_its_request_id(
    owner, worker, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner.client.post(URL, {"rows": import_rows(600)}, format="json", HTTP_X_REQUEST_ID="broken-77")
    job = ImportJob.objects.get(id=response.json()["data"]["job_id"].removeprefix("imp_"))
    storage.delete(job.payload_key)  # the worker cannot read the rows: a system failure, logged with a traceback
    for callback in callbacks:
        callback()
    assert finished(job.id).status == "failed"
    about = lines_once(worker, job, lambda lines: any(" ERROR " in line for line in lines))
    assert all("request_id=broken-77" in line for line in about), worker.log()[-3000:]


@pytest.mark.django_db
def test_a_synchronous_import_keeps_its_request_id_too(owner) -> None:
    response = owner.client.post(URL, {"rows": import_rows(3)}, format="json", HTTP_X_REQUEST_ID="sync-1")
    assert response.status_code == 200, response.content
    job_id = response.json()["data"]["job_id"]
    assert owner.client.get(f"{URL}/{job_id}").json()["data"]["request_id"] == "sync-1"


@pytest.mark.django_db
def test_an_import_started_from_the_admin_carries_the_admin_requests_id(client, workspace) -> None:
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw-123456789"))
    upload = client.post(
        "/admin/imports/importjob/upload/",
        {"workspace": workspace.pk, "file": io.BytesIO(b"Name,Mail\r\nJane,jane@acme.com\r\n"), "has_header": "on"},
    )
    assert upload.status_code == 302
    started = client.post(upload["Location"], {"col_0": "full_name", "col_1": "email"}, HTTP_X_REQUEST_ID="adm-5")
    assert started.status_code == 302
    job = ImportJob.objects.get()
    assert job.request_id == "adm-5"
    assert b"adm-5" in client.get(f"/admin/imports/importjob/{job.pk}/change/").content
    assert job.public_id.encode() in client.get("/admin/imports/importjob/", {"q": "adm-5"}).content


@pytest.mark.django_db
def test_an_import_no_request_started_shows_a_null_request_id(owner, tmp_path) -> None:
    from django.core.management import call_command

    path = tmp_path / "people.csv"
    path.write_text("full_name,email\r\nJane,jane@acme.com\r\n")
    call_command("import_contacts", "--workspace", owner.workspace.name, str(path), stdout=io.StringIO())
    job = ImportJob.objects.get()
    assert job.request_id == ""
    assert owner.client.get(f"{URL}/{job.public_id}").json()["data"]["request_id"] is None
