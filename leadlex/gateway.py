"""At the API's door: its other addresses, and query strings it cannot take.

The other addresses are the paths that published client examples use.

A user copies a curl line from the product's documentation and changes the host:
LeadLex's hosted gateway serves the API under ``/functions/v1/api-gateway/v1/``
(the contact export and import examples) and Close clients call ``/api/v1/``
(the Close-style export). Those requests
are the API's own, so the prefix is rewritten to ``/v1/`` before anything else
looks at the path: body limits, error envelopes, URL resolution and the Link
headers the API builds all see ``/v1/``, and the schema lists each operation once.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from leadlex.errors import json_error


class ApiPathAliasMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.aliases = tuple(settings.LEADLEX_API_PATH_ALIASES)
        for alias in self.aliases:
            if not (alias.startswith("/") and alias.endswith("/")) or alias == "/v1/":
                raise ImproperlyConfigured(f"LEADLEX_API_PATH_ALIASES: {alias!r} must start and end with '/'")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for alias in self.aliases:
            if request.path_info.startswith(alias):
                rest = request.path_info[len(alias) :]
                request.path_info = request.META["PATH_INFO"] = "/v1/" + rest
                request.path = request.META.get("SCRIPT_NAME", "").rstrip("/") + request.path_info
                break
        return self.get_response(request)


class ApiQueryGuardMiddleware:
    """A query string whose values cannot be text the API stores or compares is a 400
    at the door: a NUL (PostgreSQL's text refuses it: a filter on it was a 500) or a
    percent-escape that is not UTF-8 (Django would turn it into U+FFFD and answer
    for a value the client never sent)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if query and request.path_info.startswith("/v1/"):
            problem = _query_problem(query)
            if problem is not None:
                name, message = problem
                return json_error(400, "validation_error", f"Query parameter {name!r} {message}.", {"field": name})
        return self.get_response(request)


def _query_problem(query: str) -> tuple[str, str] | None:
    for name, value in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
        # Decoded as latin-1, each character is one byte of what the client sent.
        label = name.encode("latin-1").decode("utf-8", errors="replace")
        for part in (name, value):
            raw = part.encode("latin-1")
            if b"\x00" in raw:
                return label, "contains a NUL character"
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return label, "is not valid UTF-8 once percent-decoded"
    return None
