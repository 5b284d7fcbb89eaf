"""The API's other addresses: the paths the seed documents' own examples use.

A user copies a curl line from the product documents and changes the host:
LeadLex's hosted gateway serves the API under ``/functions/v1/api-gateway/v1/``
(seeds 000 and 003) and Close clients call ``/api/v1/`` (seed 002). Those requests
are the API's own, so the prefix is rewritten to ``/v1/`` before anything else
looks at the path: body limits, error envelopes, URL resolution and the Link
headers the API builds all see ``/v1/``, and the schema lists each operation once.
"""

from __future__ import annotations

from typing import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse


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
                rest = request.path_info[len(alias):]
                request.path_info = request.META["PATH_INFO"] = "/v1/" + rest
                request.path = request.META.get("SCRIPT_NAME", "").rstrip("/") + request.path_info
                break
        return self.get_response(request)
