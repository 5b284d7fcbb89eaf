"""Tenancy: workspaces own everything; API keys act on exactly one workspace."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
import zoneinfo
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as dj_timezone

SCOPE_READ_CONTACTS = "read:contacts"
SCOPE_WRITE_CONTACTS = "write:contacts"
ALL_SCOPES = (SCOPE_READ_CONTACTS, SCOPE_WRITE_CONTACTS)

KEY_PREFIX = "wbk_"
# What is stored in clear to find a key's row: the prefix and 8 characters of the
# random part. The rest is only ever compared through its hash.
LOOKUP_LENGTH = len(KEY_PREFIX) + 8


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone name") from None


class Workspace(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    is_active = models.BooleanField(default=True, help_text="False when the subscription has lapsed.")
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def api_key_hash_secrets() -> list[str]:
    """The secrets a stored key hash may be keyed with, the one new hashes use first.

    LEADLEX_API_KEY_HASH_SECRET (when unset, in production: SECRET_KEY, as before the
    setting existed), then its fallbacks, then SECRET_KEY and SECRET_KEY_FALLBACKS,
    under which every key made before the setting existed was hashed.
    """
    from django.conf import settings

    primary = settings.LEADLEX_API_KEY_HASH_SECRET or settings.SECRET_KEY
    candidates = [
        primary,
        *settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS,
        settings.SECRET_KEY,
        *settings.SECRET_KEY_FALLBACKS,
    ]
    return list(dict.fromkeys(c for c in candidates if c))


def hash_key(raw_key: str, *, secret: str | None = None) -> str:
    # Keys carry 256 bits of randomness, so a fast keyed hash is enough: there is
    # nothing to brute-force, and a slow KDF would cost every request.
    if secret is None:
        secret = api_key_hash_secrets()[0]
    return hmac.new(secret.encode(), raw_key.encode(), hashlib.sha256).hexdigest()


class ApiKey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    lookup = models.CharField(max_length=LOOKUP_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    owner_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.lookup}… ({self.workspace})"

    @staticmethod
    def generate() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(32)

    def set_key(self, raw_key: str) -> None:
        self.lookup = raw_key[:LOOKUP_LENGTH]
        self.key_hash = hash_key(raw_key)

    def matches(self, raw_key: str) -> bool:
        return self.matching_secret(raw_key) is not None

    def matching_secret(self, raw_key: str) -> int | None:
        """Which of ``api_key_hash_secrets()`` this key's hash was made with (0: the
        current one), or None when ``raw_key`` is not this key. Every candidate is
        computed and compared in constant time: a handful of HMACs on the one row the
        lookup prefix found, never a scan."""
        found: int | None = None
        for index, secret in enumerate(api_key_hash_secrets()):
            if hmac.compare_digest(self.key_hash, hash_key(raw_key, secret=secret)) and found is None:
                found = index
        return found

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or dj_timezone.now()
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or self.expires_at > now


class WebhookEndpoint(models.Model):
    EVENTS = ("import.completed", "import.failed", "export.completed", "export.failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    # Stored in clear on purpose: it is the HMAC key for signing deliveries, so it
    # must be recoverable. It is only ever shown once through the API.
    secret = models.CharField(max_length=100, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a task for this delivery was last put on the queue: the sweeper skips
    # recently dispatched rows so a backed-up queue does not fill with copies.
    dispatched_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set while a worker holds the delivery for an attempt (the POST may be on the
    # wire): "retry now" leaves such a delivery alone instead of sending it twice.
    leased_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} ({self.status})"
