"""API-key authentication: ``Authorization: Bearer <key>`` or HTTP Basic with the key
as user name and an empty password (the Close dialect)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core import checks
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from leadlex.models import KEY_PREFIX, LOOKUP_LENGTH, ApiKey, Workspace, hash_key

# last_used_at is a hint for humans, not an audit log: write it at most this often
# so that a busy key does not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class ApiPrincipal:
    """What ``request.user`` is on the API: a key acting for one workspace."""

    api_key: ApiKey
    workspace: Workspace
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return str(self.api_key.pk)


def request_principal(request: Request) -> ApiPrincipal | None:
    """``request.user`` as the API sets it: the key's principal, or None when no key was
    sent (``UNAUTHENTICATED_USER`` is None; no Django user ever reaches an API view)."""
    user: object = request.user
    return user if isinstance(user, ApiPrincipal) else None


def _raw_key_from_header(header: str) -> str | None:
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        return credentials or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Malformed Basic credentials.") from None
        user, _, _password = decoded.partition(":")
        return user or None
    return None


def authenticate_key(raw_key: str) -> ApiKey:
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) < LOOKUP_LENGTH + 24:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    api_key = ApiKey.objects.select_related("workspace").filter(lookup=raw_key[:LOOKUP_LENGTH]).first()
    secret_index = api_key.matching_secret(raw_key) if api_key is not None else None
    if api_key is None or secret_index is None:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    now = timezone.now()
    if not api_key.is_usable(now):
        raise exceptions.AuthenticationFailed("This API key has expired or been revoked.")
    if secret_index != 0:
        # Hashed under a fallback secret (before a rotation, or before the hash secret
        # existed): move it to the current one, so the fallback can be retired once
        # every key still in use has been seen. last_used_at moves with it, so "used
        # after the rotation" means "moved". Conditional: two requests at once write once.
        ApiKey.objects.filter(pk=api_key.pk, key_hash=api_key.key_hash).update(
            key_hash=hash_key(raw_key), last_used_at=now
        )
    elif api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        raw_key = _raw_key_from_header(header)
        if raw_key is None:
            raise exceptions.AuthenticationFailed(
                "Use 'Authorization: Bearer <key>' or Basic with the key as user name."
            )
        api_key = authenticate_key(raw_key)
        principal = ApiPrincipal(api_key=api_key, workspace=api_key.workspace, scopes=frozenset(api_key.scopes))
        return principal, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


@checks.register(checks.Tags.security, deploy=False)
def check_api_key_hash_secret(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """Warn where API keys still hang on SECRET_KEY (production without the setting)."""
    if settings.LEADLEX_API_KEY_HASH_SECRET:
        return []
    return [
        checks.Warning(
            "LEADLEX_API_KEY_HASH_SECRET is not set: API keys are hashed with DJANGO_SECRET_KEY, so rotating it "
            "without keeping the old value in DJANGO_SECRET_KEY_FALLBACKS invalidates every key.",
            hint="Set LEADLEX_API_KEY_HASH_SECRET to the current DJANGO_SECRET_KEY value: existing keys keep "
            "working unchanged, and DJANGO_SECRET_KEY can then be rotated on its own.",
            id="leadlex.W001",
        )
    ]
