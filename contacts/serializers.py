"""Request and response shapes of the contacts API.

Write serializers are strict: an unknown field is a 400 naming it, so that a
typo (``fullname``) is not silently dropped. Read-only fields of the response
(``id``, ``created_at`` …) are accepted and ignored, so a client may send back
what it read.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contacts.models import Activity, CometToken, Company, Contact, ContactList, Opportunity
from contacts.validation import (
    COMPANY_MAX_LENGTHS,
    CONTACT_INPUT_FIELDS,
    CONTACT_MAX_LENGTHS,
    TAG_MAX_LENGTH,
    ContactInputError,
    clean_contact_input,
    validate_custom,
)

MAX_IDS_PER_REQUEST = 10_000
BIGINT_MAX = 2**63 - 1


class StrictMixin(serializers.Serializer):
    """Refuses a non-object body and fields the serializer does not know (put it first:
    ``class X(StrictMixin, serializers.ModelSerializer)``)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        known = set(self.fields)
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise serializers.ValidationError({key: [f"Unknown field {key!r}."] for key in unknown})
        return super().to_internal_value(data)


# --- contacts ----------------------------------------------------------------------------


class ContactSerializer(serializers.ModelSerializer):
    """The contract's contact object."""

    company_name = serializers.SerializerMethodField()
    company_id = serializers.UUIDField(read_only=True, allow_null=True)
    tags = serializers.SerializerMethodField()
    lists = serializers.SerializerMethodField()
    emails = serializers.SerializerMethodField()
    # Blank when not set: declared so the document says so (a read-only model field would claim format uri).
    linkedin_url = serializers.URLField(read_only=True, allow_blank=True)

    class Meta:
        model = Contact
        fields = [
            "id",
            "full_name",
            "email",
            "phone",
            "job_title",
            "company_name",
            "company_id",
            "linkedin_url",
            "tags",
            "created_at",
            "updated_at",
            "custom",
            "lists",
            "emails",
        ]
        read_only_fields = fields

    # The relations below read what ``contacts_attach_relations`` set on the page's
    # rows (no query per row); a contact loaded some other way falls back to queries.
    def get_company_name(self, obj: Contact) -> str:
        return obj.display_company_name

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, obj: Contact) -> list[str]:
        names = getattr(obj, "tag_names", None)
        return names if names is not None else sorted(tag.name for tag in obj.tags.all())

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_lists(self, obj: Contact) -> list[str]:
        ids = getattr(obj, "list_ids", None)
        return ids if ids is not None else sorted(str(pk) for pk in obj.lists.values_list("pk", flat=True))

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_emails(self, obj: Contact) -> list[str]:
        emails = getattr(obj, "email_list", None)
        if emails is not None:
            return emails
        return list(obj.emails.order_by("-is_primary", "created_at", "id").values_list("email", flat=True))


class ContactWriteSerializer(serializers.Serializer):
    """``POST /v1/contacts`` and ``PATCH /v1/contacts/{id}``.

    The fields are declared for the OpenAPI document; validation itself is the
    shared ``clean_contact_input`` so the API and the import engine agree.
    """

    full_name = serializers.CharField(required=False, allow_blank=True, max_length=CONTACT_MAX_LENGTHS["full_name"])
    email = serializers.EmailField(
        required=False, allow_null=True, allow_blank=True, max_length=CONTACT_MAX_LENGTHS["email"]
    )
    phone = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Any common notation; stored as E.164 (read in the US when no country code).",
    )
    job_title = serializers.CharField(required=False, allow_blank=True, max_length=CONTACT_MAX_LENGTHS["job_title"])
    company_name = serializers.CharField(
        required=False, allow_blank=True, max_length=CONTACT_MAX_LENGTHS["company_name"]
    )
    company_id = serializers.UUIDField(required=False, allow_null=True)
    linkedin_url = serializers.URLField(
        required=False, allow_blank=True, max_length=CONTACT_MAX_LENGTHS["linkedin_url"]
    )
    tags = serializers.ListField(child=serializers.CharField(max_length=TAG_MAX_LENGTH), required=False)
    custom = serializers.DictField(required=False)
    created_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="ISO 8601; without an offset it is read in the workspace's time zone.",
    )
    lists = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="List ids (replaces the set)."
    )

    # Fields of the response a client may echo back; ignored on write.
    READ_ONLY = frozenset({"id", "updated_at", "emails"})

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        data = {key: value for key, value in data.items() if key not in self.READ_ONLY}
        workspace = self.context["workspace"]
        try:
            cleaned = clean_contact_input(data, tz=workspace.tzinfo, allowed=CONTACT_INPUT_FIELDS)
        except ContactInputError as exc:
            raise serializers.ValidationError(exc.by_field()) from None
        if not self.partial and not any(cleaned.get(f) for f in ("full_name", "email", "phone")):
            raise serializers.ValidationError(
                {"non_field_errors": ["A contact needs at least a full_name, an email or a phone."]}
            )
        return cleaned


class ContactMergeSerializer(StrictMixin, serializers.Serializer):
    primary_id = serializers.UUIDField()
    duplicate_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=100)


class CometTokenSerializer(StrictMixin, serializers.ModelSerializer):
    token = serializers.CharField(max_length=CometToken._meta.get_field("token").max_length)
    seen_at = serializers.DateTimeField(required=False, help_text="When the token was seen; default now.")

    class Meta:
        model = CometToken
        fields = ["id", "token", "seen_at", "created_at"]
        read_only_fields = ["id", "created_at"]


# --- lists --------------------------------------------------------------------------------


class ContactListSerializer(StrictMixin, serializers.ModelSerializer):
    name = serializers.CharField(max_length=ContactList._meta.get_field("name").max_length)
    contact_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = ContactList
        fields = ["id", "name", "contact_count", "created_at"]
        read_only_fields = ["id", "contact_count", "created_at"]


class ListMembershipSerializer(StrictMixin, serializers.Serializer):
    contact_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=MAX_IDS_PER_REQUEST)


class ListMembershipResultSerializer(serializers.Serializer):
    list_id = serializers.UUIDField()
    changed = serializers.IntegerField(help_text="How many memberships were added or removed.")


# --- companies, opportunities, activities -------------------------------------------------------


def _custom(value: Any) -> dict[str, Any]:
    try:
        return validate_custom(value)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from None


class CompanySerializer(StrictMixin, serializers.ModelSerializer):
    name = serializers.CharField(max_length=COMPANY_MAX_LENGTHS["name"])
    url = serializers.URLField(required=False, allow_blank=True, max_length=COMPANY_MAX_LENGTHS["url"])
    status = serializers.CharField(required=False, allow_blank=True, max_length=COMPANY_MAX_LENGTHS["status"])
    description = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    addresses = serializers.ListField(child=serializers.DictField(), required=False, max_length=100)
    custom = serializers.DictField(required=False)

    class Meta:
        model = Company
        fields = ["id", "name", "url", "description", "status", "addresses", "custom", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_custom(self, value: Any) -> dict[str, Any]:
        return _custom(value)

    def validate_addresses(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _custom({"addresses": value})  # the same JSON sanity and size checks
        return value


class OpportunitySerializer(StrictMixin, serializers.ModelSerializer):
    company_id = serializers.UUIDField(required=False, allow_null=True)
    contact_id = serializers.UUIDField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=Opportunity.Status.choices, required=False)
    value = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=BIGINT_MAX, help_text="Integer cents."
    )
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, help_text="ISO 4217 code, e.g. USD.")
    confidence = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=100)
    note = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    date_won = serializers.DateField(required=False, allow_null=True)

    class Meta:
        model = Opportunity
        fields = [
            "id",
            "company_id",
            "contact_id",
            "status",
            "value",
            "currency",
            "confidence",
            "note",
            "date_won",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class ActivitySerializer(StrictMixin, serializers.ModelSerializer):
    type = serializers.ChoiceField(choices=Activity.Type.choices)
    company_id = serializers.UUIDField(required=False, allow_null=True)
    contact_id = serializers.UUIDField(required=False, allow_null=True)
    body = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    occurred_at = serializers.DateTimeField(required=False)

    class Meta:
        model = Activity
        fields = ["id", "type", "company_id", "contact_id", "body", "occurred_at", "created_at"]
        read_only_fields = ["id", "created_at"]


# --- envelopes, for the OpenAPI document ----------------------------------------------------------


@functools.cache
def envelope(serializer_class: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """``{"data": {...}}``: the shape of every single-object response."""
    name = serializer_class.__name__.removesuffix("Serializer") + "Envelope"
    return type(name, (serializers.Serializer,), {"data": serializer_class()})


@functools.cache
def page(serializer_class: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """``{"data": [...], "next_cursor": ...}``: the shape of every list response."""
    name = serializer_class.__name__.removesuffix("Serializer") + "Page"
    return type(
        name,
        (serializers.Serializer,),
        {
            "data": serializer_class(many=True),
            "next_cursor": serializers.CharField(
                allow_null=True, help_text="Pass as ?cursor= for the next page; null on the last page."
            ),
        },
    )
