"""Rows and worker settings the import tests share."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imports.models import ImportJob

# Small batches, so that a few hundred rows make several checkpoints; test receivers on 127.0.0.1.
WORKER_ENV = {"LEADLEX_WEBHOOKS_ALLOW_PRIVATE": "1", "LEADLEX_IMPORT_BATCH_SIZE": "50"}


def import_rows(n: int, *, start: int = 0, domain: str = "example.com") -> list[dict]:
    return [
        {"full_name": f"Person {i}", "email": f"person{i}@{domain}", "phone": f"+1415555{i % 10000:04d}"}
        for i in range(start, start + n)
    ]


def killed_mid_run(name: str, queue: str, start: Callable[[], uuid.UUID], *, rows: int = 300) -> ImportJob:
    """Start an import (``start`` sends the request and gives the job's id) on a worker of
    its own, kill that worker once ``rows`` rows are committed, and give the job as the
    kill left it: still "processing", part of it imported."""
    from imports.models import ImportJob
    from tests.support.worker import QueueWorker, wait_for

    worker = QueueWorker(name, queue, extra_env=WORKER_ENV, also_default_queue=True)
    try:
        job_id = start()
        wait_for(
            lambda: ImportJob.objects.get(id=job_id).processed_rows >= rows,
            timeout=120,
            interval=0.02,
            message="a few batches",
        )
        worker.kill()
    finally:
        worker.stop()
    killed = ImportJob.objects.get(id=job_id)
    assert killed.status == "processing", killed.status
    assert 0 < killed.processed_rows < (killed.total_rows or 1 << 62), "the worker finished before it could be killed"
    return killed
