"""Writes of the platform: workspaces and API keys (webhooks live in webhooks.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from leadlex.models import ALL_SCOPES, ApiKey, Workspace, validate_timezone


def workspace_create(*, name: str, timezone_name: str = "UTC", is_active: bool = True) -> Workspace:
    """Raises ``ValidationError`` for an empty/duplicate name or an unknown time zone."""
    name = name.strip()
    if not name:
        raise ValidationError("The workspace name must not be empty.")
    validate_timezone(timezone_name)
    try:
        with transaction.atomic():
            return Workspace.objects.create(name=name, timezone=timezone_name, is_active=is_active)
    except IntegrityError:
        raise ValidationError(f"A workspace named {name!r} already exists.") from None


def scopes_parse(raw: str | Iterable[str]) -> list[str]:
    """``"read:contacts,write:contacts"`` (or a list) → the scopes, validated, in canonical order."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    scopes = {s.strip() for s in items if s and s.strip()}
    unknown = sorted(scopes - set(ALL_SCOPES))
    if unknown or not scopes:
        raise ValidationError(
            f"Scopes must be a non-empty subset of {', '.join(ALL_SCOPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + "."
        )
    return [s for s in ALL_SCOPES if s in scopes]


def api_key_create(
    *,
    workspace: Workspace,
    scopes: Iterable[str],
    owner_email: str = "",
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key; returns the row and the raw key, which exists nowhere else afterwards."""
    raw = ApiKey.generate()
    api_key = ApiKey(
        workspace=workspace, scopes=scopes_parse(scopes), owner_email=owner_email, name=name, expires_at=expires_at
    )
    api_key.set_key(raw)
    api_key.full_clean(exclude=["lookup", "key_hash"])
    api_key.save()
    return api_key, raw


def api_key_revoke(*, api_key_ids: Iterable[object]) -> int:
    """Revoke now; keys already revoked keep their original revocation time."""
    return ApiKey.objects.filter(pk__in=list(api_key_ids), revoked_at__isnull=True).update(revoked_at=timezone.now())
