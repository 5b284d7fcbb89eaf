"""The base of every /v1 view: key auth, scope check, per-workspace rate limit."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadlex.auth import ApiPrincipal, request_principal
from leadlex.errors import NotFound, RateLimited, ValidationFailed
from leadlex.models import WebhookEndpoint, Workspace
from leadlex.ratelimit import rate_limit_hit

_M = TypeVar("_M", bound=Model)


class WorkspaceAPIView(APIView):
    """Views set ``rate_limit_group`` (default: "default") and optionally ``required_scope``."""

    rate_limit_group: str = "default"

    @property
    def principal(self) -> ApiPrincipal:
        """The key the request came with; the permission class has turned away a request without one."""
        principal = request_principal(self.request)
        if principal is None:
            raise exceptions.NotAuthenticated()
        return principal

    @property
    def workspace(self) -> Workspace:
        return self.principal.workspace

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # auth and permissions first: limits are per workspace
        decision = rate_limit_hit(workspace_id=str(self.workspace.pk), group=self.rate_limit_group)
        self._rate_limit_headers = decision.headers()
        if not decision.allowed:
            raise RateLimited(
                "Rate limit exceeded; retry after the window resets.",
                headers=decision.headers(),
                details={"limit": decision.limit, "reset": decision.reset},
            )

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in getattr(self, "_rate_limit_headers", {}).items():
            response[name] = value
        return response


def get_in_workspace(queryset: QuerySet[_M], *, workspace: Workspace, pk: Any) -> _M:
    """Fetch by id inside one workspace; another workspace's id is simply "not found"."""
    try:
        return queryset.get(workspace=workspace, pk=pk)
    except (ObjectDoesNotExist, DjangoValidationError, ValueError):  # a malformed UUID is "not found" too
        raise NotFound() from None


# --- Webhook endpoint registry (services in leadlex/webhooks.py) -----------------------


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEndpoint.EVENTS),
        allow_empty=False,
        max_length=len(WebhookEndpoint.EVENTS) * 2,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({name: "Unknown field." for name in sorted(unknown)})
        return attrs


class WebhookEndpointSerializer(serializers.Serializer):
    """Response shape (documentation only)."""

    id = serializers.UUIDField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEndpoint.EVENTS))
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret: shown in this response only.")


def webhook_endpoint_data(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(endpoint.pk),
        "url": endpoint.url,
        "events": list(endpoint.events),
        "is_active": endpoint.is_active,
        "created_at": endpoint.created_at.isoformat().replace("+00:00", "Z"),
    }
    if with_secret:
        # The only time the signing secret leaves the server.
        data["secret"] = endpoint.secret
    return data


class WebhookEndpointListCreateAPI(WorkspaceAPIView):
    """GET lists the workspace's endpoints (without secrets); POST registers one and
    answers its signing secret, once."""

    @extend_schema(
        tags=["webhooks"],
        summary="List webhook endpoints",
        operation_id="webhooks_list",
        responses={200: inline_serializer("WebhookEndpointList", {"data": WebhookEndpointSerializer(many=True)})},
    )
    def get(self, request: Request) -> Response:
        from leadlex.webhooks import webhook_endpoint_list

        return Response({"data": [webhook_endpoint_data(e) for e in webhook_endpoint_list(workspace=self.workspace)]})

    @extend_schema(
        tags=["webhooks"],
        summary="Register a webhook endpoint",
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
        description="The answer holds the endpoint's signing `secret`, shown in this response only. "
        "Deliveries are signed with HMAC-SHA256 (`X-LeadLex-Signature`); see docs/webhooks.md.",
    )
    def post(self, request: Request) -> Response:
        from leadlex.webhooks import webhook_endpoint_create

        if not isinstance(request.data, dict):
            raise ValidationFailed("The body must be a JSON object with url and events.")
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(workspace=self.workspace, **serializer.validated_data)
        return Response(webhook_endpoint_data(endpoint, with_secret=True), status=status.HTTP_201_CREATED)


class WebhookEndpointDetailAPI(WorkspaceAPIView):
    @extend_schema(tags=["webhooks"], summary="Get a webhook endpoint", responses={200: WebhookEndpointSerializer})
    def get(self, request: Request, endpoint_id: str) -> Response:
        from leadlex.webhooks import webhook_endpoint_get

        return Response(webhook_endpoint_data(webhook_endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)))

    @extend_schema(
        tags=["webhooks"], summary="Delete a webhook endpoint", responses={204: OpenApiResponse(description="Deleted")}
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        from leadlex.webhooks import webhook_endpoint_delete

        webhook_endpoint_delete(workspace=self.workspace, endpoint_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
