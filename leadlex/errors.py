"""The contract's one error shape, and the handler that makes every error fit it.

``{"error": {"code": "...", "message": "...", "details": {...}}}``
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger("leadlex.errors")


class ApiError(Exception):
    """Raised by services and views; turned into the envelope by the handler."""

    status_code = 400
    code = "validation_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code


class ValidationFailed(ApiError):
    status_code = 400
    code = "validation_error"


class UnprocessableEntity(ApiError):
    status_code = 422
    code = "validation_error"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"

    def __init__(self, message: str = "Not found.", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class IdempotencyConflict(ApiError):
    status_code = 409
    code = "idempotency_conflict"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"


class SubscriptionInactive(ApiError):
    status_code = 403
    code = "subscription_inactive"


class InsufficientPermissions(ApiError):
    status_code = 403
    code = "insufficient_permissions"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


_DRF_CODES: list[tuple[type[drf.APIException], int, str]] = [
    (drf.NotAuthenticated, 401, "invalid_key"),
    (drf.AuthenticationFailed, 401, "invalid_key"),
    (drf.PermissionDenied, 403, "insufficient_permissions"),
    (drf.NotFound, 404, "not_found"),
    (drf.MethodNotAllowed, 405, "method_not_allowed"),
    (drf.NotAcceptable, 406, "not_acceptable"),
    (drf.UnsupportedMediaType, 415, "unsupported_media_type"),
    (drf.Throttled, 429, "rate_limited"),
    (drf.ParseError, 400, "validation_error"),
    (drf.ValidationError, 400, "validation_error"),
]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    if isinstance(exc, ApiError):
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
        for name, value in exc.headers.items():
            response[name] = value
        return response

    for exc_type, status_code, code in _DRF_CODES:
        if isinstance(exc, exc_type):
            detail = exc.detail
            if isinstance(exc, drf.ValidationError):
                message = _first_message(detail)
                details = {"fields": detail} if isinstance(detail, dict) else {"errors": detail}
            elif isinstance(exc, drf.ParseError):
                message, details = f"Malformed request body: {detail}", None
            else:
                message, details = str(detail), None
            response = Response(error_body(code, message, details), status=status_code)
            auth_header = getattr(exc, "auth_header", None)  # set by DRF on 401s
            if auth_header:
                response["WWW-Authenticate"] = auth_header
            if isinstance(exc, drf.MethodNotAllowed):
                view = context.get("view")
                if view is not None:
                    response["Allow"] = ", ".join(view.allowed_methods)
            return response

    if isinstance(exc, drf.APIException):
        return Response(error_body("error", str(exc.detail)), status=exc.status_code)

    request = context.get("request")
    logger.exception("Unhandled error on %s %s", getattr(request, "method", "?"), getattr(request, "path", "?"))
    return Response(
        error_body("internal_error", "An unexpected error occurred. Quote the X-Request-ID when reporting it."),
        status=500,
    )


def json_error(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


# Django's error views: the request, and for all but the 500 the exception that led there.
def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(404, "not_found", "Not found.")


def handler500(request: HttpRequest) -> JsonResponse:
    return json_error(500, "internal_error", "An unexpected error occurred. Quote the X-Request-ID when reporting it.")


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(400, "validation_error", "Bad request.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(403, "insufficient_permissions", "Forbidden.")
