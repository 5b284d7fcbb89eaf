"""Fixtures of the import tests."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.support.worker import WorkerProcess


@pytest.fixture(scope="session", autouse=True)
def _s3_bucket() -> None:
    """In the production profile the bucket (on a local S3 server) must exist."""
    if settings.LEADLEX_STORAGE_BACKEND != "s3":
        return
    from botocore.exceptions import ClientError

    from leadlex.storage import s3_client

    client = s3_client()
    try:
        client.head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
    except ClientError:
        client.create_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)


def import_rows(n: int, *, start: int = 0, domain: str = "example.com") -> list[dict]:
    return [
        {"full_name": f"Person {i}", "email": f"person{i}@{domain}", "phone": f"+1415555{i % 10000:04d}"}
        for i in range(start, start + n)
    ]


class QueueWorker(WorkerProcess):
    """A real Celery worker like WorkerProcess that also consumes a private queue, so
    an import test owns the worker it kills, whatever other workers run."""

    def __init__(self, name: str, queue: str, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(name, extra_env=extra_env, queues=f"{queue},celery")


@pytest.fixture
def import_queue(settings) -> str:
    import uuid

    settings.LEADLEX_IMPORT_QUEUE = f"imports-test-{uuid.uuid4().hex[:8]}"
    return settings.LEADLEX_IMPORT_QUEUE


WORKER_ENV = {"LEADLEX_WEBHOOKS_ALLOW_PRIVATE": "1", "LEADLEX_IMPORT_BATCH_SIZE": "50"}
