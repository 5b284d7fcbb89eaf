from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from leadlex.auth import request_principal
from leadlex.errors import InsufficientPermissions, SubscriptionInactive
from leadlex.models import SCOPE_READ_CONTACTS, SCOPE_WRITE_CONTACTS

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class WorkspaceScopePermission(permissions.BasePermission):
    """An authenticated key of an active workspace holding the view's scope.

    Views may set ``required_scope`` (one scope for every method); otherwise reads
    need ``read:contacts`` and writes ``write:contacts``.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request_principal(request)
        if principal is None:
            raise exceptions.NotAuthenticated("Missing API key: send 'Authorization: Bearer <key>'.")
        if not principal.workspace.is_active:
            raise SubscriptionInactive("This workspace's subscription is inactive.")
        scope = getattr(view, "required_scope", None)
        if scope is None:
            scope = SCOPE_READ_CONTACTS if request.method in SAFE_METHODS else SCOPE_WRITE_CONTACTS
        if scope not in principal.scopes:
            raise InsufficientPermissions(
                f"This API key lacks the {scope} permission.", details={"required_scope": scope}
            )
        return True
