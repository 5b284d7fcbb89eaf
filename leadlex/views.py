"""Plain Django views of the platform (not the JSON API)."""

from __future__ import annotations

from django.core import signing
from django.http import FileResponse, HttpRequest, HttpResponse

from leadlex import storage
from leadlex.errors import json_error


def file_download(request: HttpRequest, token: str) -> HttpResponse:
    """Serves a local-disk file behind a signed, expiring token (the embedded
    profile's stand-in for an S3 presigned GET)."""
    try:
        key, meta = storage.read_download_token(token)
    except signing.BadSignature:
        return json_error(403, "invalid_signature", "This download link is not valid.")
    except PermissionError:
        return json_error(403, "link_expired", "This download link has expired; ask for a fresh one.")
    try:
        path = storage.local_path(key)
        fh = open(path, "rb")
    except (FileNotFoundError, ValueError):
        return json_error(404, "not_found", "This file no longer exists.")
    response = FileResponse(fh, content_type=meta.content_type)
    if meta.content_encoding:
        response["Content-Encoding"] = meta.content_encoding
    if meta.filename:
        response["Content-Disposition"] = f'attachment; filename="{meta.filename}"'
    return response
