"""Fixtures of the import tests."""

from __future__ import annotations

import pytest
from django.conf import settings


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
    return [{"full_name": f"Person {i}", "email": f"person{i}@{domain}", "phone": f"+1415555{i % 10000:04d}"}
            for i in range(start, start + n)]
