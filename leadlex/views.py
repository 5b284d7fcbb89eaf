"""Plain Django views of the platform (not the JSON API)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.core import signing
from django.db import connection
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from leadlex import storage
from leadlex.errors import json_error

logger = logging.getLogger("leadlex.health")

# Each dependency gets this long to answer /readyz, so that a probe with a
# timeout of a few seconds gets an answer naming the culprit rather than none.
READY_CHECK_TIMEOUT = 2.0


def file_download(request: HttpRequest, token: str) -> FileResponse | HttpResponse:
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
        fh = open(path, "rb")  # noqa: SIM115 - FileResponse below owns it and closes it when sent
    except (FileNotFoundError, ValueError):
        return json_error(404, "not_found", "This file no longer exists.")
    response = FileResponse(fh, content_type=meta.content_type)
    if meta.content_encoding:
        response["Content-Encoding"] = meta.content_encoding
    if meta.filename:
        response["Content-Disposition"] = f'attachment; filename="{meta.filename}"'
    return response


@csrf_exempt  # the signed token is the credential, as a presigned URL's signature is
def file_upload(request: HttpRequest, token: str) -> HttpResponse:
    """Takes one part of an upload (imports.uploads) behind a signed, expiring token:
    the embedded profile's stand-in for an S3 presigned part URL. The body streams to
    disk as it arrives, never held whole; a part sent again replaces its bytes."""
    if request.method != "PUT":
        refusal = json_error(405, "method_not_allowed", "Send the file's bytes with PUT.")
        refusal["Allow"] = "PUT"
        return refusal
    try:
        target = storage.read_upload_token(token)
    except signing.BadSignature:
        return json_error(403, "invalid_signature", "This upload link is not valid.")
    except PermissionError:
        return json_error(403, "link_expired", "This upload link has expired; GET the upload for fresh links.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0) or None
    except ValueError:
        declared = None
    if declared is not None and declared > target.max_bytes:
        return _upload_too_large(target.max_bytes)
    digest = hashlib.md5(usedforsecurity=False)  # the ETag, as S3 gives it

    def chunks() -> Iterator[bytes]:
        for chunk in _body_chunks(request):
            digest.update(chunk)
            yield chunk

    try:
        written = storage.local_upload_write(target, chunks())
    except storage.UploadTooLarge:
        return _upload_too_large(target.max_bytes)
    except (storage.UploadBusy, FileNotFoundError):
        return json_error(404, "not_found", "This upload is completed, expired or deleted; it takes no more parts.")
    if declared is not None and written != declared:  # the client went away mid-body
        return json_error(
            400, "validation_error", f"The body ended after {written} of its {declared} bytes; send the part again."
        )
    response = HttpResponse(status=200)
    response["ETag"] = f'"{digest.hexdigest()}"'
    return response


def _upload_too_large(limit: int) -> HttpResponse:
    return json_error(413, "payload_too_large", f"This part is at most {limit} bytes.", {"limit_bytes": limit})


def _body_chunks(request: HttpRequest, size: int = 1024 * 1024) -> Iterator[bytes]:
    """The request body in pieces as it arrives: the bytes Content-Length announces, or
    a chunked body that the server decoded (gunicorn sets ``wsgi.input_terminated``)."""
    meta = request.META
    if not meta.get("CONTENT_LENGTH") and meta.get("wsgi.input_terminated") and meta.get("wsgi.input") is not None:
        stream = meta["wsgi.input"]
    else:
        stream = request  # Django's own stream, bounded by Content-Length
    while chunk := stream.read(size):
        yield chunk


# --- Health ---------------------------------------------------------------------------
# Plain views outside /v1/: no API key, no rate limit, no DRF. A load balancer or
# an orchestrator calls them every few seconds.


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process is up and answers. It touches no database, broker or
    storage, so that a slow dependency never gets healthy processes restarted."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        # kombu's file-system transport "connects" without looking at its folders.
        for folder in ("data_folder_in", "data_folder_out", "processed_folder"):
            path = settings.CELERY_BROKER_TRANSPORT_OPTIONS[folder]
            # The options mix folders (str) with flags, so a value types as object.
            if not (isinstance(path, str) and os.path.isdir(path) and os.access(path, os.W_OK)):
                raise OSError(f"broker folder {folder} is missing or not writable")
        return
    options = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "socket_connect_timeout": READY_CHECK_TIMEOUT,
        "socket_timeout": READY_CHECK_TIMEOUT,
    }
    with Connection(url, connect_timeout=READY_CHECK_TIMEOUT, transport_options=options) as conn:
        # max_retries=0: one attempt, the answer now (Redis: the channel PINGs).
        # kombu's stubs say int; kombu compares the timeout with float seconds (monotonic()).
        conn.ensure_connection(max_retries=0, timeout=READY_CHECK_TIMEOUT)  # type: ignore[arg-type]  # see above


def _check_storage() -> None:
    storage.ping(timeout=READY_CHECK_TIMEOUT)


_READY_CHECKS: tuple[tuple[str, Callable[[], None]], ...] = (
    ("database", _check_database),
    ("broker", _check_broker),
    ("storage", _check_storage),
)


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database, the Celery broker and the file storage answer now.
    503 names what failed (the exception class only: this page is public; the
    message goes to the log)."""
    checks: dict[str, dict[str, object]] = {}
    for name, check in _READY_CHECKS:
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", whatever raised it
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            checks[name] = {"status": "failed", "error": type(exc).__name__}
        else:
            checks[name] = {"status": "ok"}
        checks[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    failed = [name for name, result in checks.items() if result["status"] != "ok"]
    if failed:
        return json_error(
            503, "not_ready", f"Not ready: {', '.join(failed)} did not answer.", {"failed": failed, "checks": checks}
        )
    return JsonResponse({"status": "ok", "checks": checks})
