"""OpenAPI (drf-spectacular) description of the platform's authentication.

Imported from ``LeadlexConfig.ready`` so that the extension is registered before
the schema is generated."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "leadlex.auth.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyBasic"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "bearerFormat": "wbk_…",
             "description": "`Authorization: Bearer wbk_…` with an API key."},
            {"type": "http", "scheme": "basic",
             "description": "HTTP Basic with the API key as user name and an empty password (Close dialect)."},
        ]
