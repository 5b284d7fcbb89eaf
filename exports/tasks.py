"""Celery tasks of the export engine: ids in, one service call, no logic."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from exports import conf
from leadlex.jobs import job_task_run


@shared_task(
    bind=True,
    name="exports.export_job_run",
    acks_late=True,
    max_retries=None,  # the job runtime's attempts bound the retries (leadlex.jobs)
    soft_time_limit=conf.task_soft_time_limit(),
    time_limit=conf.task_soft_time_limit() + 300,
)
def export_job_run_task(self: Any, job_id: str) -> str:
    from exports.engine import RUNTIME, export_job_run

    return job_task_run(self, runtime=RUNTIME, job_id=job_id, run=lambda pk: export_job_run(job_id=pk))


@shared_task(name="exports.sweep_stale", acks_late=True, soft_time_limit=120, time_limit=180)
def export_jobs_sweep_stale_task() -> int:
    from exports.engine import export_jobs_sweep_stale

    return len(export_jobs_sweep_stale())


@shared_task(name="exports.sweep_expired", acks_late=True, soft_time_limit=600, time_limit=660)
def export_jobs_sweep_expired_task() -> int:
    from exports.engine import export_jobs_sweep_expired

    return export_jobs_sweep_expired()
