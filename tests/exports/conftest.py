"""Export-test fixtures: the S3 bucket (production profile) and file readers."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import pytest
from django.conf import settings

from exports.models import ExportJob
from leadlex import storage


@pytest.fixture(scope="session", autouse=True)
def _s3_bucket() -> None:
    """Create the private bucket on the test S3 server once (no-op for local files)."""
    if settings.LEADLEX_STORAGE_BACKEND != "s3":
        return
    from botocore.exceptions import ClientError

    client = storage.s3_client()
    try:
        client.head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
    except ClientError:
        client.create_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)


def stored_bytes(job: ExportJob) -> bytes:
    """The stored (still gzip-compressed) file of a job."""
    return b"".join(storage.iter_bytes(job.storage_key))


def ndjson_records(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.decode().splitlines() if line]


def csv_records(raw: bytes | str) -> list[list[str]]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return list(csv.reader(io.StringIO(text, newline="")))


def job_file_text(job: ExportJob) -> bytes:
    return gzip.decompress(stored_bytes(job))


def streamed(response: Any) -> bytes:
    return b"".join(response.streaming_content)
