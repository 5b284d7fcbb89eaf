"""Admin for the platform's models. Actions are one service call and a message.

This shared layer imports no app. What an app adds to the workspace admin (a
column counting its rows, an action) it declares with ``workspace_admin_extend()``
from its own ``AppConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from leadlex.models import ALL_SCOPES, ApiKey, WebhookDelivery, WebhookEndpoint, Workspace, validate_timezone


def _count_of(model: type[models.Model], **filters: Any) -> Coalesce:
    """A correlated COUNT subquery per workspace row: several of these on one list
    page neither multiply each other (as JOIN + COUNT would) nor cost a query per row."""
    sub = (
        model._default_manager.filter(workspace=OuterRef("pk"), **filters)
        .order_by()
        .values("workspace")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(sub, output_field=IntegerField()), 0)


@dataclass(frozen=True)
class WorkspaceCount:
    """A column of the workspace list that counts an app's rows per workspace."""

    name: str  # the column's name, e.g. "contact_count"
    title: str  # its header, e.g. "contacts"
    model: type[models.Model]  # rows with a ``workspace`` foreign key
    filters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alias(self) -> str:
        return f"_{self.name}"

    def annotation(self) -> Coalesce:
        return _count_of(self.model, **self.filters)

    def column(self) -> Callable[[Workspace], int]:
        def show(obj: Workspace) -> int:
            return getattr(obj, self.alias)

        show.__name__ = self.name
        return admin.display(description=self.title, ordering=self.alias)(show)


# Filled by the apps' AppConfig.ready() through workspace_admin_extend(); the admin reads
# them per request, as ready() runs after the admin has registered its classes.
_contributed_counts: dict[str, WorkspaceCount] = {}
_contributed_actions: dict[str, Callable[..., Any]] = {}


def workspace_admin_extend(
    *, counts: Iterable[WorkspaceCount] = (), actions: Iterable[Callable[..., Any]] = ()
) -> None:
    """Add count columns (after is_active) and actions (after the workspace's own) to the
    workspace admin. Called from an app's ``AppConfig.ready()``; calling it again with
    the same names replaces them."""
    for count in counts:
        _contributed_counts[count.name] = count
    for action in actions:
        _contributed_actions[action.__name__] = action


class WorkspaceForm(forms.ModelForm):
    class Meta:
        model = Workspace
        fields = ["name", "timezone", "is_active"]

    def clean_timezone(self) -> str:
        value = self.cleaned_data["timezone"]
        validate_timezone(value)
        return value


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    form = WorkspaceForm
    list_display = ["name", "timezone", "is_active", "api_key_count", "webhook_count", "created_at"]
    list_filter = ["is_active", "timezone"]
    search_fields = ["name", "=id"]
    readonly_fields = ["id", "created_at"]
    ordering = ["name"]
    own_actions = ["deactivate", "activate"]

    @property
    def actions(self) -> list[Any]:  # type: ignore[override]  # other apps' actions arrive after the admin is built
        return [*self.own_actions, *_contributed_actions.values()]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        own = list(super().get_list_display(request))
        at = own.index("is_active") + 1
        return [*own[:at], *(count.column() for count in _contributed_counts.values()), *own[at:]]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        contributed = {count.alias: count.annotation() for count in _contributed_counts.values()}
        return (
            super()
            .get_queryset(request)
            .annotate(
                **contributed,
                _keys=_count_of(ApiKey, revoked_at__isnull=True),
                _webhooks=_count_of(WebhookEndpoint),
            )
        )

    @admin.display(description="active keys", ordering="_keys")
    def api_key_count(self, obj: Workspace) -> int:
        return obj._keys  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description="webhooks", ordering="_webhooks")
    def webhook_count(self, obj: Workspace) -> int:
        return obj._webhooks  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.action(description="Deactivate (subscription lapsed): API answers 403")
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        n = queryset.update(is_active=False)
        self.message_user(request, f"Deactivated {n} workspace(s).", messages.SUCCESS)

    @admin.action(description="Activate")
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        n = queryset.update(is_active=True)
        self.message_user(request, f"Activated {n} workspace(s).", messages.SUCCESS)


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in ALL_SCOPES], widget=forms.CheckboxSelectMultiple, initial=list(ALL_SCOPES)
    )

    class Meta:
        model = ApiKey
        fields = ["workspace", "name", "owner_email", "scopes", "expires_at"]


class ApiKeyChangeForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in ALL_SCOPES], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "owner_email", "scopes", "expires_at", "revoked_at"]


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("usable", "usable"), ("revoked", "revoked"), ("expired", "expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "usable":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "key_prefix",
        "name",
        "workspace",
        "scopes",
        "owner_email",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [KeyStatusFilter, "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["lookup", "name", "owner_email", "workspace__name"]
    readonly_fields = ["key_prefix", "workspace", "created_at", "last_used_at"]
    actions: list = ["revoke"]

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = ApiKeyChangeForm if obj is not None else ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("workspace", "name", "owner_email", "scopes", "expires_at")
        return (
            "key_prefix",
            "workspace",
            "name",
            "owner_email",
            "scopes",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        )

    @admin.display(description="key", ordering="lookup")
    def key_prefix(self, obj: ApiKey) -> str:
        # Only the lookup prefix is known after creation; the rest is a hash.
        return f"{obj.lookup}…"

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        raw = ApiKey.generate()
        obj.set_key(raw)
        super().save_model(request, obj, form, change)
        # The one and only time the full key is shown; it is in no page or log after this.
        self.message_user(
            request,
            format_html(
                'New API key (copy it now, it will not be shown again): <code class="leadlex-new-key">{}</code>',
                raw,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        from leadlex.services import api_key_revoke

        n = api_key_revoke(api_key_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Revoked {n} key(s).", messages.SUCCESS)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in WebhookEndpoint.EVENTS], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["workspace", "url", "events", "is_active"]

    def clean_url(self) -> str:
        from django.conf import settings

        from leadlex import ssrf

        url = self.cleaned_data["url"]
        try:
            ssrf.target_resolve(url, allow_private=settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE)
        except ssrf.UnsafeUrl as exc:
            raise forms.ValidationError(str(exc)) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "workspace", "events", "is_active", "created_at"]
    list_filter = ["is_active", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["url", "workspace__name"]
    actions: list = ["disable", "enable"]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: forms.ModelForm, change: bool) -> None:
        if not change:
            import secrets

            from leadlex.webhooks import SECRET_PREFIX

            obj.secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request,
                format_html(
                    "Signing secret (copy it now, it will not be shown again): <code>{}</code>",
                    obj.secret,
                ),
                messages.WARNING,
            )

    @admin.action(description="Disable selected endpoints")
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.message_user(request, f"Disabled {queryset.update(is_active=False)} endpoint(s).", messages.SUCCESS)

    @admin.action(description="Enable selected endpoints")
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.message_user(request, f"Enabled {queryset.update(is_active=True)} endpoint(s).", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read-only, plus "retry now"."""

    list_display = [
        "created_at",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "short_error",
        "next_attempt_at",
        "delivered_at",
        "endpoint_url",
        "workspace",
    ]
    list_filter = ["status", "event", "created_at"]
    list_select_related = ["endpoint__workspace"]
    search_fields = ["=id", "endpoint__url", "endpoint__workspace__name"]
    date_hierarchy = "created_at"
    actions: list = ["retry_now"]
    readonly_fields = [
        "id",
        "endpoint",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "payload",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="endpoint", ordering="endpoint__url")
    def endpoint_url(self, obj: WebhookDelivery) -> str:
        return obj.endpoint.url

    @admin.display(description="workspace", ordering="endpoint__workspace__name")
    def workspace(self, obj: WebhookDelivery) -> str:
        return obj.endpoint.workspace.name

    @admin.display(description="last error")
    def short_error(self, obj: WebhookDelivery) -> str:
        return obj.last_error[:80]

    @admin.action(description="Retry now", permissions=["view"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        from leadlex.webhooks import webhook_delivery_retry

        ids = list(queryset.values_list("pk", flat=True))
        delivered = queryset.filter(status=WebhookDelivery.Status.DELIVERED).count()
        n = webhook_delivery_retry(delivery_ids=ids)
        self.message_user(request, f"Queued {n} delivery(ies) for another attempt.", messages.SUCCESS)
        busy = len(ids) - delivered - n
        if busy > 0:
            self.message_user(
                request,
                f"{busy} delivery(ies) are being attempted right now and were left alone; "
                "retry them once that attempt has ended.",
                messages.WARNING,
            )
