"""The export job lifecycle with real worker processes: kill -9 and resume, cancel
and retry, retention, stale jobs, webhooks, multipart uploads."""

from __future__ import annotations

import gzip
import hashlib
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from exports.engine import export_job_create, export_jobs_sweep_stale
from exports.models import ExportJob
from exports.tasks import export_jobs_sweep_expired_task
from leadlex import storage
from leadlex.models import WebhookDelivery, WebhookEndpoint
from tests.exports.factories import make_contacts, random_blob
from tests.support.files import download, ndjson_records
from tests.support.worker import QueueWorker, tasks_routed_to, wait_for, wait_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CREATE = "/v1/contacts/exports"
FULL_YEAR = {"start_date": "2026-01-01 00:00:00", "end_date": "2026-12-31 23:59:59"}
S3_PART = 5 * 1024 * 1024


def _is_s3(settings) -> bool:
    return settings.LEADLEX_STORAGE_BACKEND == "s3"


def _slow_env(settings) -> dict[str, str]:
    # Small batches, a checkpoint per committed chunk (locally every batch; on S3
    # every 5 MiB part, the minimum S3 accepts) and progress at every batch.
    return {"LEADLEX_EXPORT_BATCH_SIZE": "20", "LEADLEX_EXPORT_CHUNK_BYTES": "1", "LEADLEX_EXPORT_PROGRESS_ROWS": "20"}


def _bulky_contacts(owner, settings):
    # On S3 the file must span several 5 MiB parts: ~3 KB of barely compressible text a row.
    n, blob = (8000, 3000) if _is_s3(settings) else (3000, 200)
    return make_contacts(
        owner.workspace, n, step=timedelta(milliseconds=7), custom_for=lambda i: {"blob": random_blob(blob, seed=i)}
    )


def _webhook(workspace, *events: str) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        workspace=workspace, url="https://hooks.example.com/lx", events=list(events), secret="whsec_test"
    )


def test_a_job_killed_mid_export_is_resumed_by_the_next_worker_with_every_row_exactly_once(owner, settings) -> None:
    contacts = _bulky_contacts(owner, settings)
    queue = f"h3-kill-{uuid.uuid4().hex[:8]}"
    with tasks_routed_to("exports.export_job_run", queue):
        first = QueueWorker("h3-first", queue, _slow_env(settings))
        try:
            job_id = owner.client.post(CREATE, FULL_YEAR, format="json").json()["id"]

            def committed() -> ExportJob | None:
                job = ExportJob.objects.get(pk=job_id)
                return job if (job.checkpoint or {}).get("rows") else None

            wait_for(committed, timeout=120, interval=0.02, message="a first committed checkpoint")
        finally:
            first.kill()  # SIGKILL: no cleanup, no acknowledgement
        at_kill = ExportJob.objects.get(pk=job_id)
        assert at_kill.status == ExportJob.Status.PROCESSING
        killed_after = at_kill.checkpoint["rows"]
        assert 0 < killed_after < len(contacts)
        if _is_s3(settings):
            parts = storage.list_uploaded_parts(at_kill.storage_key, at_kill.checkpoint["writer"]["upload_id"])
            assert len(parts) >= 1 and all(p["Size"] >= S3_PART for p in parts)

        settings.LEADLEX_EXPORT_STALE_SECONDS = 1
        time.sleep(1.5)  # the dead worker's heartbeat goes stale
        second = QueueWorker("h3-second", queue, {"LEADLEX_EXPORT_STALE_SECONDS": "1"})
        try:
            assert export_jobs_sweep_stale() == [job_id]
            done = wait_job(job_id, timeout=240)
            log = second.log()
        finally:
            second.stop()

    assert done.status == ExportJob.Status.COMPLETED, done.error
    assert f"resuming after row {killed_after}" in log
    assert done.attempts == 2 and done.row_count == len(contacts)
    status, headers, raw = download(owner.client.get(f"{CREATE}/{job_id}").json()["download_url"])
    assert status == 200
    records = ndjson_records(gzip.decompress(raw))  # concatenated gzip members read as one file
    assert [r["id"] for r in records] == [str(c.id) for c in contacts]  # each row once, in order
    assert records[-1]["custom"] == contacts[-1].custom
    assert done.sha256 == hashlib.sha256(raw).hexdigest() and done.byte_size == len(raw)
    if _is_s3(settings):
        assert done.byte_size > 2 * S3_PART  # a multipart upload of several parts


def test_cancelling_a_running_job_stops_the_worker_and_discards_the_partial_file(owner, settings, admin_client) -> None:
    contacts = _bulky_contacts(owner, settings)
    queue = f"h3-cancel-{uuid.uuid4().hex[:8]}"
    with tasks_routed_to("exports.export_job_run", queue):
        worker = QueueWorker("h3-cancel", queue, _slow_env(settings))
        try:
            job_id = owner.client.post(CREATE, FULL_YEAR, format="json").json()["id"]
            wait_for(
                lambda: ExportJob.objects.filter(pk=job_id, processed_count__gt=0).first(),
                timeout=120,
                interval=0.02,
                message="the job to make progress",
            )
            response = admin_client.post(
                "/admin/exports/exportjob/", {"action": "cancel_jobs", "_selected_action": [job_id]}
            )
            assert response.status_code == 302
            job = ExportJob.objects.get(pk=job_id)
            assert job.status == ExportJob.Status.CANCELLED
            wait_for(
                lambda: "lease lost" in worker.log() or "succeeded" in worker.log(),
                timeout=60,
                message="the worker to stop the job",
            )
            time.sleep(0.5)
            job.refresh_from_db()
            assert job.status == ExportJob.Status.CANCELLED and job.processed_count < len(contacts)
            assert not storage.exists(job.storage_key)
            if not _is_s3(settings):
                assert not storage.local_path(job.storage_key + ".part").exists()
            api = owner.client.get(f"{CREATE}/{job_id}").json()
            assert api["status"] == "failed" and "cancelled" in api["error"] and "download_url" not in api

            # Retry runs it again from scratch, to completion.
            admin_client.post("/admin/exports/exportjob/", {"action": "retry_jobs", "_selected_action": [job_id]})
            done = wait_job(job_id, statuses=("completed", "failed"), timeout=240)
        finally:
            worker.stop()
    assert done.status == ExportJob.Status.COMPLETED and done.row_count == len(contacts)
    assert done.storage_key != job.storage_key
    records = ndjson_records(
        gzip.decompress(download(owner.client.get(f"{CREATE}/{job_id}").json()["download_url"])[2])
    )
    assert len(records) == len(contacts)


def test_retention_deletes_old_files_marks_jobs_expired_and_completion_is_announced(owner, celery_worker) -> None:
    hook = _webhook(owner.workspace, "export.completed")
    make_contacts(owner.workspace, 3)
    job_id = owner.client.post(CREATE, FULL_YEAR, format="json").json()["id"]
    job = wait_job(job_id)
    assert job.status == ExportJob.Status.COMPLETED and storage.exists(job.storage_key)
    assert timedelta(days=6, hours=23) < job.expires_at - job.completed_at <= timedelta(days=7)
    delivery = WebhookDelivery.objects.get(endpoint=hook, event="export.completed")
    assert delivery.payload["data"]["id"] == job_id and delivery.payload["data"]["row_count"] == 3

    ExportJob.objects.filter(pk=job_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    export_jobs_sweep_expired_task.delay()
    job = wait_job(job_id, statuses=("expired",))
    # Marked expired first (no URL is signed from then on), deleted right after.
    wait_for(lambda: not storage.exists(job.storage_key), timeout=30, message="the file to be deleted")
    body = owner.client.get(f"{CREATE}/{job_id}").json()
    assert body["status"] == "expired" and "download_url" not in body


def test_a_job_that_keeps_dying_ends_failed_and_announces_it(owner, settings, celery_worker) -> None:
    hook = _webhook(owner.workspace, "export.failed")
    job = export_job_create(workspace=owner.workspace, kind="contacts", format="ndjson", parameters={}, enqueue=False)
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.PROCESSING, attempts=5, error="boom", heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert export_jobs_sweep_stale() == [str(job.pk)]
    job = wait_job(job.pk, statuses=("failed",))
    assert "Gave up after 5 attempts" in job.error and "boom" in job.error
    delivery = WebhookDelivery.objects.get(endpoint=hook, event="export.failed")
    assert delivery.payload["data"]["status"] == "failed"
    body = owner.client.get(f"{CREATE}/{job.pk}").json()
    assert body["status"] == "failed" and body["error"].startswith("Gave up")


def test_the_sweeper_leaves_fresh_jobs_alone(owner, settings) -> None:
    job = export_job_create(workspace=owner.workspace, kind="contacts", format="ndjson", parameters={}, enqueue=False)
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.PROCESSING, heartbeat_at=timezone.now())
    assert export_jobs_sweep_stale() == []
