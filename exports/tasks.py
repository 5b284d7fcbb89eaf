"""Celery tasks of the export engine: ids in, one service call, no logic."""

from __future__ import annotations

import logging

from celery import shared_task

from exports import conf
from exports.engine import TRANSIENT_ERRORS
from leadlex.middleware import request_id_scope

logger = logging.getLogger("exports.tasks")

MAX_RETRIES = 5


@shared_task(
    bind=True,
    name="exports.export_job_run",
    acks_late=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=conf.task_soft_time_limit(),
    time_limit=conf.task_soft_time_limit() + 300,
)
def export_job_run_task(self, job_id: str) -> str:  # noqa: ANN001
    from django.db import close_old_connections

    from exports.engine import export_job_fail, export_job_run
    from exports.models import ExportJob

    close_old_connections()  # a long-lived worker may hold a connection the server dropped
    # Read from the row, not the message: a retry, a sweep or an admin retry
    # re-dispatches the same job, and its lines still name the request that made it.
    request_id = ExportJob.objects.filter(pk=job_id).values_list("request_id", flat=True).first()
    with request_id_scope(request_id):
        logger.info("export %s: running", job_id)
        try:
            status = export_job_run(job_id=job_id)
        except TRANSIENT_ERRORS as exc:
            if self.request.retries >= self.max_retries:
                export_job_fail(
                    job_id=job_id,
                    error=f"Gave up after repeated transient errors: {type(exc).__name__}",
                    error_kind="transient",
                )
                logger.warning("export %s: failed after %d retries", job_id, self.request.retries)
                return "failed"
            # Exponential backoff with a cap; the job keeps its checkpoint meanwhile.
            countdown = min(300, 5 * 2**self.request.retries)
            logger.warning("export %s: %s; retrying in %ds", job_id, type(exc).__name__, countdown)
            raise self.retry(exc=exc, countdown=countdown)
        logger.info("export %s: %s", job_id, status)
        return status


@shared_task(name="exports.sweep_stale", acks_late=True, soft_time_limit=120, time_limit=180)
def export_jobs_sweep_stale_task() -> int:
    from exports.engine import export_jobs_sweep_stale

    return len(export_jobs_sweep_stale())


@shared_task(name="exports.sweep_expired", acks_late=True, soft_time_limit=600, time_limit=660)
def export_jobs_sweep_expired_task() -> int:
    from exports.engine import export_jobs_sweep_expired

    return export_jobs_sweep_expired()
