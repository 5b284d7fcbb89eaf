"""Queued imports end to end: HTTP → storage → a real Celery worker → webhook."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from contacts.models import Contact
from imports.engine import import_jobs_sweep
from imports.models import ImportJob
from leadlex import storage
from leadlex.models import WebhookDelivery, Workspace
from leadlex.webhooks import webhook_signature_verify
from tests.conftest import keyed_client
from tests.support.imports import WORKER_ENV, import_rows, killed_mid_run
from tests.support.receiver import Receiver
from tests.support.worker import QueueWorker, wait_for

URL = "/v1/import/contacts"

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(import_queue):
    w = QueueWorker("imports-a", import_queue, extra_env=WORKER_ENV, also_default_queue=True)
    yield w
    w.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def job_of(data: dict) -> ImportJob:
    return ImportJob.objects.get(id=data["job_id"].removeprefix("imp_"))


def finished(job_id: str, timeout: float = 120) -> ImportJob:
    return wait_for(
        lambda: (j := ImportJob.objects.get(id=job_id)).is_finished and j,
        timeout=timeout,
        message=f"import {job_id} to finish",
    )


def test_a_queued_import_runs_on_the_worker_and_sends_a_signed_import_completed_webhook(
    owner, worker, receiver, settings
):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = True
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url, "events": ["import.completed"]}, format="json")
    assert hook.status_code == 201, hook.content
    secret = hook.json()["secret"] if "secret" in hook.json() else hook.json()["data"]["secret"]
    Contact.objects.create(workspace=owner.workspace, email="person0@example.com", full_name="Existing")
    rows = import_rows(520) + [{"email": "broken"}] * 5
    response = owner.client.post(URL, {"rows": rows, "tags": ["bulk"]}, format="json")
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert data["status"] == "queued"
    job = finished(job_of(data).id)
    assert job.status == "completed", (job.error, worker.log()[-3000:])

    status = owner.client.get(f"{URL}/{data['job_id']}").json()["data"]
    assert status["job_id"] == data["job_id"]
    assert (status["created_count"], status["updated_count"], status["skipped_count"]) == (519, 0, 1)
    assert status["error_count"] == 5 and len(status["errors"]) == 5
    assert {e["row"] for e in status["errors"]} == {521, 522, 523, 524, 525}
    assert status["processed_rows"] == status["total_rows"] == 525 and status["progress_percent"] == 100
    assert status["errors_url"]
    assert Contact.objects.filter(workspace=owner.workspace, tags__name="bulk").count() == 519
    # The raw rows do not outlive the job: deleted right after "completed" commits (storage
    # I/O stays outside the transaction), so a reader may see the status a moment first.
    wait_for(lambda: not storage.exists(job.payload_key), timeout=15, message="the payload to be deleted")

    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(event="import.completed").first(),
        timeout=30,
        message="the import.completed delivery row",
    )
    assert delivery.payload["data"]["job_id"] == data["job_id"]
    assert delivery.payload["data"]["created_count"] == 519
    if not wait_for_quietly(lambda: receiver.requests, timeout=30):
        # Another session worker (without the private-address allowance) may have taken
        # the delivery: send it from here, the same code path.
        from leadlex.webhooks import webhook_delivery_attempt, webhook_delivery_retry

        webhook_delivery_retry(delivery_ids=[delivery.pk])
        webhook_delivery_attempt(delivery_id=str(delivery.pk))
    received = receiver.requests[0]
    body = json.loads(received.body)
    assert body["event"] == "import.completed"
    assert body["data"]["job_id"] == data["job_id"]
    assert webhook_signature_verify(secret, received.headers["x-leadlex-signature"], received.body)


def wait_for_quietly(predicate, timeout: float) -> bool:
    try:
        wait_for(predicate, timeout=timeout)
    except AssertionError:
        return False
    return True


def test_a_queued_csv_upload_is_processed_by_the_worker(owner, worker):
    lines = (
        ["Name,Mail,Phone"]
        + [f"Person {i},p{i}@acme.com,+1415555{i:04d}" for i in range(700)]
        + ["Bad,bad,+14155559999"]
    )
    response = owner.client.post(
        f"{URL}?mapping=Name%3Dfull_name,Mail%3Demail,Phone%3Dphone",
        data=("\r\n".join(lines) + "\r\n").encode(),
        content_type="text/csv",
    )
    assert response.status_code == 202, response.content
    job = finished(job_of(response.json()["data"]).id)
    assert (job.status, job.created_count, job.error_count) == ("completed", 700, 1), job.error
    assert job.first_errors[0]["row"] == 702
    assert Contact.objects.get(email="p699@acme.com").phone == "+14155550699"


def test_a_job_whose_payload_vanished_fails_and_sends_import_failed(
    owner, worker, settings, django_capture_on_commit_callbacks
):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = True
    owner.client.post("/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["import.failed"]}, format="json")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner.client.post(URL, {"rows": import_rows(600)}, format="json")
    job = job_of(response.json()["data"])
    storage.delete(job.payload_key)
    for callback in callbacks:
        callback()
    job = finished(job.id)
    assert job.status == "failed" and job.error_kind == "system" and job.error
    status = owner.client.get(f"{URL}/{job.public_id}").json()["data"]
    assert status["status"] == "failed" and status["error"]
    assert wait_for(lambda: WebhookDelivery.objects.filter(event="import.failed").exists(), timeout=30)


def snapshot(workspace: Workspace) -> list[tuple]:
    rows = []
    for c in Contact.objects.filter(workspace=workspace).prefetch_related("tags"):
        rows.append(
            (
                c.email,
                c.phone,
                c.full_name,
                c.job_title,
                json.dumps(c.custom, sort_keys=True),
                tuple(sorted(t.name for t in c.tags.all())),
            )
        )
    return sorted(rows, key=lambda r: (r[0] or "", r[1] or ""))


def test_a_killed_worker_resumes_at_the_next_batch_and_the_result_equals_an_uninterrupted_run(import_queue):
    rows = []
    for i in range(4000):
        row = {"full_name": f"Person {i}", "email": f"p{i}@acme.com", "custom": {"n": i}, "tags": [f"t{i % 3}"]}
        if i % 97 == 0:
            row["email"] = "not-an-email"
        if i % 101 == 0:
            row["email"] = f"p{i - 1}@acme.com"  # a duplicate of the previous row: the later updates it
        rows.append(row)
    body = {"rows": rows, "update_existing": True, "tags": ["imported"]}

    def prepared(name: str):
        ws = Workspace.objects.create(name=name)
        for i in range(0, 4000, 10):  # existing contacts: updates
            Contact.objects.create(workspace=ws, email=f"P{i}@ACME.com", full_name="old", job_title="keep")
        return keyed_client(ws)

    interrupted, reference = prepared("interrupted"), prepared("reference")

    def start():
        return job_of(interrupted.client.post(URL, body, format="json").json()["data"]).id

    job_id = killed_mid_run("imports-kill-1", import_queue, start).id

    second = QueueWorker("imports-kill-2", import_queue, extra_env=WORKER_ENV, also_default_queue=True)
    try:
        time.sleep(0.1)
        assert job_id in import_jobs_sweep(stale_after=timedelta(0))
        resumed = finished(job_id, timeout=180)
        ref_data = reference.client.post(URL, body, format="json").json()["data"]
        ref = finished(job_of(ref_data).id, timeout=180)
    finally:
        second.stop()

    assert resumed.status == ref.status == "completed", (resumed.error, ref.error)
    assert resumed.attempts == 2

    def counts(j):
        return (j.created_count, j.updated_count, j.skipped_count, j.error_count, j.processed_rows)

    assert counts(resumed) == counts(ref)
    assert resumed.created_count + resumed.updated_count + resumed.skipped_count + resumed.error_count == 4000
    assert resumed.first_errors == ref.first_errors
    assert snapshot(interrupted.workspace) == snapshot(reference.workspace)
