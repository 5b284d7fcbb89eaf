"""The base of every /v1 view: key auth, scope check, per-workspace rate limit."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadlex.errors import NotFound, RateLimited
from leadlex.models import Workspace
from leadlex.ratelimit import rate_limit_hit


class WorkspaceAPIView(APIView):
    """Views set ``rate_limit_group`` (default: "default") and optionally ``required_scope``."""

    rate_limit_group: str = "default"

    @property
    def workspace(self) -> Workspace:
        return self.request.user.workspace  # type: ignore[union-attr]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # auth and permissions first: limits are per workspace
        decision = rate_limit_hit(workspace_id=str(request.user.workspace.pk), group=self.rate_limit_group)
        self._rate_limit_headers = decision.headers()
        if not decision.allowed:
            raise RateLimited("Rate limit exceeded; retry after the window resets.", headers=decision.headers(),
                              details={"limit": decision.limit, "reset": decision.reset})

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in getattr(self, "_rate_limit_headers", {}).items():
            response[name] = value
        return response


def get_in_workspace(queryset: QuerySet, *, workspace: Workspace, pk: Any) -> Model:
    """Fetch by id inside one workspace; another workspace's id is simply "not found"."""
    try:
        return queryset.get(workspace=workspace, pk=pk)
    except (queryset.model.DoesNotExist, DjangoValidationError, ValueError):  # a malformed UUID is "not found" too
        raise NotFound() from None
