"""Request ids (echoed or generated, and on every log line) and the body-size guard."""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse

from leadlex.errors import handler404, handler500, json_error
from leadlex.tasklog import task_request_id

# The id of the request being served, or, in a worker, of the request that started
# the job being run ("-": neither). Set for one request or one task body and reset
# after it, so nothing leaks into the next request or task the process serves.
_NO_REQUEST = "-"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=_NO_REQUEST)

# "Sane": 1 to 128 visible ASCII characters, so it cannot forge log lines or headers.
_SANE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

logger = logging.getLogger("leadlex.request")


def current_request_id() -> str:
    """The id of the request (or of the job's request) being handled; "" outside one.
    Jobs store it when they are created, whichever surface (API, admin) created them."""
    value = request_id_var.get()
    return "" if value == _NO_REQUEST else value


@contextlib.contextmanager
def request_id_scope(request_id: str | None) -> Iterator[None]:
    """Log lines written inside carry ``request_id``: a worker wraps a job's task body
    in it, so the job's lines name the request that started it. Set and reset in the
    task's own process and thread, which is what Celery's prefork pool runs it in."""
    token = request_id_var.set(request_id or _NO_REQUEST)
    try:
        yield
    finally:
        request_id_var.reset(token)


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            # django.request logs 4xx/5xx after the middleware chain has returned
            # (the context variable is reset by then) but passes the request along.
            request = getattr(record, "request", None)
            request_id = getattr(request, "request_id", None) or request_id_var.get()
            if request_id == _NO_REQUEST:
                # In a worker, outside a job's own scope: Celery's lines about the task
                # ("received", "succeeded") name the request its message came from.
                request_id = task_request_id(record) or _NO_REQUEST
            # A field of our own on the record, which the log format names; set as logging sets
            # ``extra=`` fields (LogRecord declares none of its own by that name).
            record.__dict__["request_id"] = request_id
        return True


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # our own attribute on the request
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if request.path.startswith("/v1/"):
                logger.info(
                    "%s %s %s", request.method, request.path, response.status_code, extra={"request_id": request_id}
                )
            return response
        finally:
            request_id_var.reset(token)


class _LimitedStream:
    """Wraps wsgi.input and refuses to hand out more than ``limit`` bytes.

    Content-Length is checked up front; this catches chunked bodies, which
    announce no length, the moment they grow past the limit.
    """

    def __init__(self, stream: Any, limit: int) -> None:  # wsgi.input: whatever the server hands over
        self.stream = stream
        self.limit = limit
        self.seen = 0

    def _count(self, data: bytes) -> bytes:
        self.seen += len(data)
        if self.seen > self.limit:
            from leadlex.errors import PayloadTooLarge

            raise PayloadTooLarge(f"The request body exceeds {self.limit} bytes.")
        return data

    def read(self, *args: int) -> bytes:
        return self._count(self.stream.read(*args))

    def readline(self, *args: int) -> bytes:
        return self._count(self.stream.readline(*args))

    def __iter__(self) -> Iterator[bytes]:
        for line in self.stream:
            yield self._count(line)

    def close(self) -> None:
        # Django closes the stream after reading request.body.
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:  # anything else the wrapped stream offers
        return getattr(self.stream, name)


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/v1/"):
            limit = settings.LEADLEX_MAX_BODY_BYTES
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                return self._too_large(limit)
            if not length and not self._buffer_chunked_body(request, limit):
                return self._too_large(limit)
            if hasattr(request, "_stream"):
                request._stream = _LimitedStream(request._stream, limit)  # type: ignore[assignment]  # any file-like: Django only reads it
        return self.get_response(request)

    @staticmethod
    def _too_large(limit: int) -> HttpResponse:
        return json_error(413, "payload_too_large", f"The request body exceeds {limit} bytes.", {"limit_bytes": limit})

    @staticmethod
    def _buffer_chunked_body(request: HttpRequest, limit: int) -> bool:
        """Make a chunked body (no Content-Length) readable; False when it passes the limit.

        Django builds its body stream from Content-Length alone, so a chunked body
        looks empty to it. Servers that decode the chunking for us (gunicorn sets
        ``wsgi.input_terminated``) hand over the real stream in ``wsgi.input``: read
        it in pieces and stop the moment it grows past the limit."""
        meta = request.META
        if "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower() or not meta.get("wsgi.input_terminated"):
            return True
        raw = meta.get("wsgi.input")
        if raw is None:
            return True
        buffer = io.BytesIO()
        while chunk := raw.read(64 * 1024):
            buffer.write(chunk)
            if buffer.tell() > limit:
                return False
        size = buffer.tell()
        buffer.seek(0)
        request._stream = LimitedStream(buffer, size)  # type: ignore[assignment]  # what WSGIRequest itself puts there
        meta["CONTENT_LENGTH"] = str(size)
        return True


class ApiErrorPageMiddleware:
    """With DEBUG on (the embedded profile's default) Django answers an unknown URL,
    or an exception outside DRF, with its HTML debug page. Under /v1/ the client gets
    the contract's error envelope instead, whatever DEBUG says (the traceback is
    still logged). Placed outside CommonMiddleware, so its slash redirects stand."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code in (404, 500)
            and request.path_info.startswith("/v1/")
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return handler404(request) if response.status_code == 404 else handler500(request)
        return response
