"""Reading what the product wrote: stored export files, CSV and NDJSON bodies, and
download links fetched as a browser would."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

from exports.models import ExportJob
from leadlex import storage


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


def download(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET a download URL as a browser would, without credentials; the body is the
    raw transferred bytes (not decoded even when Content-Encoding is gzip)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.path.startswith("/files/"):  # local backend: served by Django itself
        from django.test import Client

        response = Client().get(parts.path)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, {k: v for k, v in response.headers.items()}, body
    import requests

    response = requests.get(url, stream=True, timeout=30)
    return response.status_code, dict(response.headers), response.raw.read(decode_content=False)
