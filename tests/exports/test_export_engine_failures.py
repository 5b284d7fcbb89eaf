"""How the engine classifies failures (the task's retry policy builds on this)."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from exports.engine import ExportKindSpec, export_job_create, export_job_run, register_export_kind
from exports.leadlex import kinds as contact_kind
from exports.models import ExportJob
from leadlex.jobs import is_transient
from tests.exports.factories import make_contacts
from tests.support.files import job_file_text, ndjson_records

pytestmark = pytest.mark.django_db


def _flaky_kind(fail_after_batches: int, error: Exception) -> str:
    """The contacts kind, failing once after N batches: as a dropped connection would."""
    state = {"failed": False}

    def iter_batches(job, after):
        for i, batch in enumerate(contact_kind.SPEC.iter_batches(job, after)):
            if i == fail_after_batches and not state["failed"]:
                state["failed"] = True
                raise error
            yield batch

    name = f"flaky_{type(error).__name__}"
    register_export_kind(
        name,
        ExportKindSpec(
            iter_batches=iter_batches,
            content_type=contact_kind.SPEC.content_type,
            filename=contact_kind.SPEC.filename,
            count=contact_kind.SPEC.count,
        ),
    )
    return name


def test_a_transient_error_gives_the_job_back_with_its_checkpoint_and_the_rerun_resumes(owner, settings) -> None:
    settings.LEADLEX_EXPORT_BATCH_SIZE = 3
    settings.LEADLEX_EXPORT_CHUNK_BYTES = 1
    contacts = make_contacts(owner.workspace, 10)
    error = OperationalError("server closed the connection unexpectedly")
    kind = _flaky_kind(2, error)
    job = export_job_create(workspace=owner.workspace, kind=kind, format="ndjson", parameters={}, enqueue=False)
    assert is_transient(error)
    with pytest.raises(OperationalError):
        export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.QUEUED and job.error_kind == "transient"
    if settings.LEADLEX_STORAGE_BACKEND == "local":
        assert job.checkpoint["rows"] == 6  # S3 checkpoints only every 5 MiB part
    assert job.checkpoint["writer"]  # the upload stays known, to resume or to abort
    assert export_job_run(job_id=job.pk) == ExportJob.Status.COMPLETED
    job.refresh_from_db()
    assert job.attempts == 2
    assert [r["id"] for r in ndjson_records(job_file_text(job))] == [str(c.id) for c in contacts]


def test_any_other_error_fails_the_job_with_a_message_and_no_file(owner) -> None:
    make_contacts(owner.workspace, 4)
    kind = _flaky_kind(0, KeyError("bug"))
    job = export_job_create(workspace=owner.workspace, kind=kind, format="ndjson", parameters={}, enqueue=False)
    assert export_job_run(job_id=job.pk) == ExportJob.Status.FAILED
    job.refresh_from_db()
    assert job.error == "Export failed: KeyError" and job.error_kind == "system"


def test_running_a_finished_job_again_is_harmless(owner) -> None:
    make_contacts(owner.workspace, 2)
    job = export_job_create(workspace=owner.workspace, kind="contacts", format="csv", parameters={}, enqueue=False)
    assert export_job_run(job_id=job.pk) == ExportJob.Status.COMPLETED
    sha = ExportJob.objects.get(pk=job.pk).sha256
    assert export_job_run(job_id=job.pk) == "skipped"
    assert ExportJob.objects.get(pk=job.pk).sha256 == sha


def test_unknown_fields_in_a_stored_job_fail_it_as_a_user_error(owner) -> None:
    job = export_job_create(
        workspace=owner.workspace,
        kind="contacts",
        format="csv",
        parameters={"fields": ["id", "password"]},
        enqueue=False,
    )
    assert export_job_run(job_id=job.pk) == ExportJob.Status.FAILED
    job.refresh_from_db()
    assert job.error_kind == "user" and "password" in job.error
