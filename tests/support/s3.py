"""The test S3 server's bucket (production profile)."""

from __future__ import annotations

from django.conf import settings


def ensure_bucket() -> str:
    """The configured bucket, created on the test S3 server if missing. Fails (never
    skips) when the server is configured but unreachable."""
    from botocore.exceptions import ClientError

    from leadlex import storage

    client = storage.s3_client()
    try:
        client.head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
    except ClientError:
        client.create_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
    return settings.AWS_STORAGE_BUCKET_NAME
