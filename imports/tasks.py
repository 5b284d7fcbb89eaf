"""Celery tasks of the import engine: ids in, one service call, nothing else."""

from __future__ import annotations

import uuid
from typing import Any

from celery import shared_task
from django.db import close_old_connections

from leadlex.jobs import job_task_run


@shared_task(
    bind=True,
    name="imports.import_job_run",
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
    ignore_result=True,
    max_retries=None,  # the job runtime's attempts bound the retries (leadlex.jobs)
)
def import_job_run_task(self: Any, job_id: str) -> str:
    from imports.engine import RUNTIME, import_job_run

    def run(pk: str) -> str:
        job = import_job_run(job_id=uuid.UUID(pk))
        return job.status if job else "not run (another run has it)"

    return job_task_run(self, runtime=RUNTIME, job_id=job_id, run=run)


@shared_task(name="imports.import_jobs_sweep", acks_late=True, soft_time_limit=120, time_limit=180, ignore_result=True)
def import_jobs_sweep_task() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): requeue jobs whose worker died, re-dispatch
    lost queued jobs."""
    from imports.engine import import_jobs_sweep

    close_old_connections()
    return len(import_jobs_sweep())
