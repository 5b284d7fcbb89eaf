"""Admin for the contacts app.

Workspaces hold up to millions of contacts, so every changelist selects its
foreign keys in the row query, counts through annotations, prefetches tags in
one extra query, skips the unfiltered full COUNT, and its sidebar filters list
a bounded number of choices instead of every company in the database.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models, transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from contacts.models import (
    Activity,
    CometToken,
    Company,
    Contact,
    ContactEmail,
    ContactList,
    ContactTag,
    ListMembership,
    Opportunity,
    Tag,
)
from contacts.services import contact_emails_sync_primary
from contacts.validation import normalize_email, normalize_phone
from exports.leadlex.admin import export_selected_contacts_csv, export_selected_contacts_ndjson

FILTER_CHOICES_LIMIT = 100
# A URL typed without a scheme means https, as in the API (and Django 6's default).
URL_FIELD_OVERRIDES: dict[type[models.Field], dict[str, Any]] = {models.URLField: {"assume_scheme": "https"}}


class _BoundedRelatedFilter(admin.SimpleListFilter):
    """A sidebar filter over a related model with at most ``FILTER_CHOICES_LIMIT``
    choices, narrowed to the workspace chosen in the workspace filter."""

    model: type[Tag] | type[ContactList] | type[Company] = Tag
    lookup: str = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        queryset = self.model.objects.select_related("workspace").order_by("name")
        workspace_id = request.GET.get("workspace__id__exact")
        if workspace_id:
            queryset = queryset.filter(workspace_id=workspace_id)
        return [(str(obj.pk), f"{obj.name} ({obj.workspace.name})") for obj in queryset[:FILTER_CHOICES_LIMIT]]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(**{self.lookup: self.value()})
        return queryset


class TagFilter(_BoundedRelatedFilter):
    title = "tag"
    parameter_name = "tag"
    model = Tag
    lookup = "contacttag__tag_id"


class ListFilter(_BoundedRelatedFilter):
    title = "list"
    parameter_name = "list"
    model = ContactList
    lookup = "listmembership__contact_list_id"


class CompanyFilter(_BoundedRelatedFilter):
    title = "company"
    parameter_name = "company"
    model = Company
    lookup = "company_id"


class ContactEmailInline(admin.TabularInline):
    model = ContactEmail
    extra = 0
    fields = ("email", "is_primary", "merged_from", "created_at")
    readonly_fields = ("merged_from", "created_at")


class CometTokenInline(admin.TabularInline):
    model = CometToken
    extra = 0
    fields = ("token", "seen_at", "created_at")
    readonly_fields = ("created_at",)
    ordering = ("-seen_at", "-id")


class ContactTagInline(admin.TabularInline):
    model = ContactTag
    extra = 0
    raw_id_fields = ("tag",)
    verbose_name = "tag"


class ListMembershipInline(admin.TabularInline):
    model = ListMembership
    extra = 0
    raw_id_fields = ("contact_list",)
    readonly_fields = ("added_at",)
    verbose_name = "list membership"


def _formfield(field: models.Field, **kwargs: Any) -> forms.Field | None:
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class ContactAdminForm(forms.ModelForm):
    """Normalises like the API and refuses a duplicate address with a form error
    instead of the database's IntegrityError."""

    class Meta:
        model = Contact
        fields = "__all__"  # noqa: DJ007 - every field, as the ModelAdmin without this form; it only adds cleaning
        formfield_callback = _formfield

    def clean_email(self) -> str | None:
        value = self.cleaned_data.get("email")
        if not value:
            return None
        try:
            email = normalize_email(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        workspace = self.cleaned_data.get("workspace") or getattr(self.instance, "workspace", None)
        if workspace is not None:
            taken = Contact.objects.filter(workspace=workspace, email__iexact=email).exclude(pk=self.instance.pk)
            if taken.exists():
                raise forms.ValidationError("A contact with this email already exists in this workspace.")
        return email

    def clean_phone(self) -> str | None:
        value = self.cleaned_data.get("phone")
        if not value:
            return None
        try:
            return normalize_phone(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
    formfield_overrides = URL_FIELD_OVERRIDES
    list_display = ("__str__", "email", "phone", "company_display", "tag_names", "workspace", "created_at")
    list_select_related = ("workspace", "company")
    list_filter = ("workspace", TagFilter, ListFilter, CompanyFilter, "created_at")
    search_fields = ("full_name", "email", "phone", "company_name", "job_title")
    raw_id_fields = ("company",)
    readonly_fields = ("id", "updated_at")
    inlines = (ContactEmailInline, CometTokenInline, ContactTagInline, ListMembershipInline)
    ordering = ("-created_at", "-id")
    show_full_result_count = False  # a COUNT(*) over millions of rows on every page view is not worth it
    list_per_page = 100
    actions = [export_selected_contacts_csv, export_selected_contacts_ndjson]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="company", ordering="company__name")
    def company_display(self, obj: Contact) -> str:
        return obj.display_company_name

    @admin.display(description="tags")
    def tag_names(self, obj: Contact) -> str:
        return ", ".join(sorted(tag.name for tag in obj.tags.all()))

    def save_model(self, request: HttpRequest, obj: Contact, form: forms.ModelForm, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            contact_emails_sync_primary(contacts=[obj])


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    formfield_overrides = URL_FIELD_OVERRIDES
    list_display = ("name", "status", "url", "contact_count", "workspace", "created_at")
    list_select_related = ("workspace",)
    list_filter = ("workspace", "status")
    search_fields = ("name", "url", "description")
    readonly_fields = ("id", "updated_at")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    actions: list[Any] = []

    def get_queryset(self, request: HttpRequest) -> QuerySet[Company]:
        return super().get_queryset(request).annotate(_contact_count=Count("contacts"))

    @admin.display(description="contacts", ordering="_contact_count")
    def contact_count(self, obj: Company) -> int:
        return obj._contact_count  # type: ignore[attr-defined]  # annotated by get_queryset


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_count", "workspace")
    list_select_related = ("workspace",)
    list_filter = ("workspace",)
    search_fields = ("name",)
    ordering = ("name",)
    actions: list[Any] = []

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(_contact_count=Count("contacttag"))

    @admin.display(description="contacts", ordering="_contact_count")
    def contact_count(self, obj: Tag) -> int:
        return obj._contact_count  # type: ignore[attr-defined]  # annotated by get_queryset


@admin.register(ContactList)
class ContactListAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_count", "workspace", "created_at")
    list_select_related = ("workspace",)
    list_filter = ("workspace",)
    search_fields = ("name",)
    readonly_fields = ("id",)
    actions: list[Any] = []

    def get_queryset(self, request: HttpRequest) -> QuerySet[ContactList]:
        return super().get_queryset(request).annotate(_contact_count=Count("listmembership"))

    @admin.display(description="contacts", ordering="_contact_count")
    def contact_count(self, obj: ContactList) -> int:
        return obj._contact_count  # type: ignore[attr-defined]  # annotated by get_queryset


@admin.register(ContactEmail)
class ContactEmailAdmin(admin.ModelAdmin):
    list_display = ("email", "is_primary", "contact", "merged_from", "created_at")
    list_select_related = ("contact",)
    list_filter = ("is_primary",)
    search_fields = ("email",)
    raw_id_fields = ("contact",)
    show_full_result_count = False
    actions: list[Any] = []


@admin.register(CometToken)
class CometTokenAdmin(admin.ModelAdmin):
    list_display = ("token", "contact", "seen_at", "created_at")
    list_select_related = ("contact",)
    search_fields = ("token",)
    raw_id_fields = ("contact",)
    ordering = ("-seen_at", "-id")
    show_full_result_count = False
    actions: list[Any] = []


@admin.register(Opportunity)
class OpportunityAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "status",
        "value",
        "currency",
        "confidence",
        "company",
        "contact",
        "workspace",
        "date_won",
        "created_at",
    )
    list_select_related = ("workspace", "company", "contact")
    list_filter = ("workspace", "status", "currency")
    search_fields = ("note", "company__name", "contact__full_name", "contact__email")
    raw_id_fields = ("company", "contact")
    readonly_fields = ("id", "updated_at")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    actions: list[Any] = []


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("__str__", "type", "company", "contact", "workspace", "occurred_at")
    list_select_related = ("workspace", "company", "contact")
    list_filter = ("workspace", "type")
    search_fields = ("body", "company__name", "contact__full_name")
    raw_id_fields = ("company", "contact")
    readonly_fields = ("id",)
    ordering = ("-occurred_at", "-id")
    show_full_result_count = False
    actions: list[Any] = []
