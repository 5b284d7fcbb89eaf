"""Celery tasks of the import engine: ids in, one service call, nothing else."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import shared_task
from django.db import close_old_connections

from config.celery import app
from leadlex.middleware import request_id_scope

logger = logging.getLogger("imports.tasks")

# Retried with backoff: a database that went away, a storage hiccup. Anything else
# is recorded on the job as a failure by the service itself.
_RETRY_BACKOFF_MAX = 300


@shared_task(
    bind=True,
    name="imports.import_job_run",
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
    ignore_result=True,
    max_retries=8,
)
def import_job_run_task(self: Any, job_id: str) -> None:
    from imports.engine import import_job_run, is_transient
    from imports.models import JOB_ID_PREFIX, ImportJob

    close_old_connections()
    pk = uuid.UUID(job_id)
    public_id = JOB_ID_PREFIX + pk.hex
    # Read from the row, not the message: a retry or a sweep re-dispatches the same
    # job, and its lines still name the request that made it.
    request_id = ImportJob.objects.filter(pk=pk).values_list("request_id", flat=True).first()
    try:
        with request_id_scope(request_id):
            logger.info("import %s: running", public_id)
            try:
                job = import_job_run(job_id=pk)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # The service has put the job back to "queued" (from its checkpoint).
                countdown = min(_RETRY_BACKOFF_MAX, 5 * 2**self.request.retries)
                logger.warning("import %s: %s; retrying in %ds", public_id, type(exc).__name__, countdown)
                raise self.retry(exc=exc, countdown=countdown) from exc
            logger.info("import %s: %s", public_id, job.status if job else "not run (another run has it)")
    finally:
        close_old_connections()


@shared_task(name="imports.import_jobs_sweep", acks_late=True, soft_time_limit=120, time_limit=180, ignore_result=True)
def import_jobs_sweep_task() -> int:
    """Periodic: requeue jobs whose worker died, re-dispatch lost queued jobs."""
    from imports.engine import import_jobs_sweep

    close_old_connections()
    return len(import_jobs_sweep())


@app.on_after_finalize.connect
def _schedule_sweeper(sender: Any, **kwargs: Any) -> None:
    # Registered here rather than in settings so that the import app owns its schedule.
    sender.add_periodic_task(60.0, import_jobs_sweep_task.s(), name="imports-stale-job-sweep")
