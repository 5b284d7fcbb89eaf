"""The OpenAPI (drf-spectacular) document: authentication, error responses and headers.

The document is what clients are generated from, so what every /v1 view shares is
described once, here, from what the view is, rather than in each decorator:

- a key-authenticated view (``WorkspaceScopePermission``) can answer 401 and 403;
- a ``WorkspaceAPIView`` is rate-limited: 429 with ``Retry-After``, and the
  ``X-RateLimit-*`` headers on its responses;
- a path with an id can answer 404; query parameters or a body can answer 400;
  a body can answer 413 (the size limit) and 415 (a media type no parser takes);
- an ``Idempotency-Key`` header can answer 409;
- every response carries ``X-Request-ID``; every error has the ``Error`` body.

A view documents what only it does (422 on ``POST /v1/contacts/exports``, the
Close download's 302/409/410) in its own ``extend_schema``. Descriptions come
from ``extend_schema`` only (``DISABLE_DOCSTRING_DESCRIPTIONS``): docstrings are
notes for maintainers.

Imported from ``LeadlexConfig.ready`` so that the extensions are registered
before the schema is generated; settings name ``LeadlexAutoSchema``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent, build_basic_type
from drf_spectacular.types import OpenApiTypes


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "leadlex.auth.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyBasic"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        # Either scheme will do: two requirement objects (OR), not one object naming both (AND).
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "wbk_…",
                "description": "`Authorization: Bearer wbk_…` with an API key.",
            },
            {
                "type": "http",
                "scheme": "basic",
                "description": "HTTP Basic with the API key as user name and an empty password (Close dialect).",
            },
        ]


class BlankableURLField(OpenApiSerializerFieldExtension):
    """A URL field that allows blank answers ``""`` when no URL is set, and accepts
    it on write: ``format: uri`` would make that answer a schema violation (and a
    generated client that checks formats would reject it), so it is a string."""

    target_class = "rest_framework.fields.URLField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        if not self.target.allow_blank:
            return auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        # build_basic_type answers None only for OpenApiTypes.NONE, never for STR.
        schema = build_basic_type(OpenApiTypes.STR) or {"type": "string"}
        schema["description"] = "A URL, or an empty string when none is set."
        return schema


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The one error shape of the API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable machine-readable code, e.g. validation_error, "
                    "invalid_key, insufficient_permissions, "
                    "subscription_inactive, not_found, idempotency_conflict, "
                    "payload_too_large, rate_limited.",
                },
                "message": {"type": "string", "description": "Human-readable explanation."},
                "details": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "Optional context, e.g. the offending field or row.",
                },
            },
            "required": ["code", "message"],
        },
    },
    "required": ["error"],
}

# Status → the codes a client may see with it, as the response's description.
ERROR_DESCRIPTIONS = {
    "400": "validation_error: a parameter or the body is invalid (details name the field).",
    "401": "invalid_key: the API key is missing, malformed, unknown, expired or revoked.",
    "403": "insufficient_permissions (the key lacks the scope) or subscription_inactive.",
    "404": "not_found: no such object in this workspace.",
    "409": "idempotency_conflict: this Idempotency-Key was used with a different body.",
    "413": "payload_too_large: the body is over the size limit (20 MB by default).",
    "415": "unsupported_media_type: the body's Content-Type is not accepted here.",
    "422": "validation_error: the parameters are well-formed but not acceptable.",
    "429": "rate_limited: the workspace's limit for this endpoint is used up; retry after Retry-After seconds.",
}

_INT = {"type": "integer"}
REQUEST_ID_HEADER = {
    "schema": {"type": "string"},
    "required": True,
    "description": "The request's id: the client's X-Request-ID when it sent a sane one "
    "(up to 128 visible ASCII characters), else a new one. Quote it in reports.",
}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {"schema": _INT, "description": "Requests allowed per window for this endpoint."},
    "X-RateLimit-Remaining": {"schema": _INT, "description": "Requests left in the current window."},
    "X-RateLimit-Reset": {"schema": _INT, "description": "Unix time (seconds) when the window resets."},
}
RETRY_AFTER_HEADER = {"schema": _INT, "required": True, "description": "Seconds until a retry can succeed."}

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _is_success(code: str) -> bool:
    return code.startswith("2")


class LeadlexAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus what every LeadLex operation shares (see the module docstring)."""

    def _get_request_body(self, direction: str = "request") -> Any:
        # drf-spectacular documents bodies on POST/PUT/PATCH only. DELETE
        # /v1/lists/{id}/contacts takes {"contact_ids": [...]}: a DELETE whose
        # extend_schema declares a request gets its body documented like a POST.
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self._declared_only = True  # no guessing from the view: only a declared request counts
        try:
            if self.get_request_serializer() is None:
                return None
        finally:
            self._declared_only = False
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"

    def _get_serializer(self) -> Any:
        if getattr(self, "_declared_only", False):
            return None
        return super()._get_serializer()

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        error_ref = self._error_component().ref
        responses: dict[str, Any] = operation["responses"]
        for code in self._error_codes(operation):
            responses.setdefault(code, {"description": ERROR_DESCRIPTIONS[code]})
        for code, response in responses.items():
            if code >= "400" and not response.get("content"):
                response["content"] = {"application/json": {"schema": error_ref}}
                response["description"] = response.get("description") or ERROR_DESCRIPTIONS.get(code, "")
            response["headers"] = {**self._headers_for(code), **response.get("headers", {})}
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    # --- what the view is ------------------------------------------------------------------

    def _is_authenticated(self) -> bool:
        from leadlex.permissions import WorkspaceScopePermission

        # A composed permission (``A & B``) is an operand holder, not a class.
        return any(
            isinstance(p, type) and issubclass(p, WorkspaceScopePermission) for p in self.view.permission_classes
        )

    def _is_rate_limited(self) -> bool:
        from leadlex.api import WorkspaceAPIView

        return isinstance(self.view, WorkspaceAPIView)

    def _error_codes(self, operation: dict[str, Any]) -> list[str]:
        parameters = operation.get("parameters", [])
        codes = []
        # Only the WorkspaceAPIView family validates its query parameters into a 400.
        if "requestBody" in operation or (self._is_rate_limited() and any(p["in"] == "query" for p in parameters)):
            codes.append("400")
        if self._is_authenticated():
            codes += ["401", "403"]
        if any(p["in"] == "path" for p in parameters):
            codes.append("404")
        if any(p["in"] == "header" and p["name"].lower() == "idempotency-key" for p in parameters):
            codes.append("409")
        if "requestBody" in operation:
            codes += ["413", "415"]
        if self._is_rate_limited():
            codes.append("429")
        return codes

    def _headers_for(self, code: str) -> dict[str, Any]:
        headers: dict[str, Any] = {"X-Request-ID": REQUEST_ID_HEADER}
        # The limit is counted after authentication and the scope check, so 401 and
        # 403 carry no X-RateLimit-* headers; a 413 refused before the view runs neither.
        if self._is_rate_limited() and code not in ("401", "403"):
            required = _is_success(code) or code == "429"
            headers.update({name: {**header, "required": required} for name, header in RATE_LIMIT_HEADERS.items()})
        if code == "429":
            headers["Retry-After"] = RETRY_AFTER_HEADER
        return headers

    def _error_component(self) -> ResolvedComponent:
        component = ResolvedComponent(
            name="Error", type=ResolvedComponent.SCHEMA, schema=ERROR_SCHEMA, object="leadlex.errors.error_body"
        )
        self.registry.register_on_missing(component)
        return component


# --- What the document adds beyond the API's views ----------------------------------------
# The health probes are plain Django views (no DRF, so drf-spectacular does not
# see them), and the path aliases are a middleware's doing: both are added to the
# generated document here, from the same settings and shapes the code uses.

HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok"]}},
    "required": ["status"],
}
READINESS_CHECK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "failed"]},
        "error": {"type": "string", "description": "The exception class, when the check failed."},
        "ms": {"type": "number", "description": "How long the check took, in milliseconds."},
    },
    "required": ["status", "ms"],
}
READINESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok"]},
        "checks": {
            "type": "object",
            "description": "One entry per dependency: database, broker, storage.",
            "additionalProperties": {"$ref": "#/components/schemas/ReadinessCheck"},
        },
    },
    "required": ["status", "checks"],
}


def _health_operation(*, operation_id: str, summary: str, description: str, ok: str) -> dict[str, Any]:
    headers = {"X-Request-ID": REQUEST_ID_HEADER}
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": ["health"],
        # No key: a load balancer or an orchestrator calls it. Not rate-limited either.
        "security": [],
        # At the server's root, whatever prefix serves /v1/ (the document's servers are for the API).
        "servers": [{"url": "/"}],
        "responses": {
            "200": {
                "description": "Up." if operation_id == "health_live" else "Ready.",
                "headers": headers,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ok}"}}},
            }
        },
    }


def _health_paths() -> dict[str, Any]:
    live = _health_operation(
        operation_id="health_live",
        summary="Liveness: the process is up",
        description="Answers as long as the process serves requests. It touches no database, broker or storage, "
        "so a slow dependency does not get a healthy process restarted. No API key, no rate limit.",
        ok="Health",
    )
    ready = _health_operation(
        operation_id="health_ready",
        summary="Readiness: database, broker and storage answer",
        description="Checks the database, the job broker and the file storage now, each within a short timeout. "
        "No API key, no rate limit.",
        ok="Readiness",
    )
    ready["responses"]["503"] = {
        "description": "not_ready: a dependency did not answer; details.failed names which, "
        "details.checks has each check's status, error class and duration.",
        "headers": {"X-Request-ID": REQUEST_ID_HEADER},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {"/healthz": {"get": live}, "/readyz": {"get": ready}}


def _alias_servers(aliases: list[str]) -> list[dict[str, str]]:
    """``/functions/v1/api-gateway/v1/`` serves ``/v1/``: as a server, ``/functions/v1/api-gateway``
    (the document's paths start with ``/v1/``). An alias that does not end in ``/v1/`` cannot be
    written as a server; the document's description names it."""
    servers = [{"url": "/", "description": "The API at /v1/."}]
    for alias in aliases:
        if alias.endswith("/v1/"):
            servers.append({"url": alias[: -len("/v1/")], "description": f"The same API under {alias}."})
    return servers


def document_health_and_aliases(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (named in ``SPECTACULAR_SETTINGS``)."""
    from django.conf import settings

    aliases = list(settings.LEADLEX_API_PATH_ALIASES)
    result["servers"] = _alias_servers(aliases)
    if aliases:
        listed = ", ".join(f"`{alias}`" for alias in aliases)
        result["info"]["description"] = (
            result["info"].get("description", "")
            + f"\n\nEvery `/v1/` path is also served with {listed} in place of `/v1/`: the same operations "
            "and answers (Link headers name the `/v1/` path)."
        )
    result["paths"] = {**result["paths"], **_health_paths()}
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update({"Health": HEALTH_SCHEMA, "Readiness": READINESS_SCHEMA, "ReadinessCheck": READINESS_CHECK_SCHEMA})
    return result
