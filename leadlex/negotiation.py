"""Content negotiation that never answers 406.

Every /v1 view renders JSON, or returns a file or stream of its own (CSV,
NDJSON, gzip downloads) that bypasses DRF's renderers. So whatever a client
accepts (``text/csv`` for the CSV export, as its documented example sends it; a browser's
``text/html,…``), the only thing DRF ever renders is JSON: the data, or the error
envelope of a request that failed. A 406 would only hide that error behind another.
"""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JsonAlwaysNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        candidates = list(renderers)
        try:
            return super().select_renderer(request, candidates, format_suffix)
        except NotAcceptable:
            renderer = candidates[0]
            return renderer, renderer.media_type
