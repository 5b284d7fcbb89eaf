"""Contacts and the Close "lead" world (companies, opportunities, activities).

Every row carries its workspace so that every query can be scoped by it and
every index can lead with it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.backends.ddl_references import Columns, Statement, Table
from django.db.models.functions import Lower
from django.utils import timezone

from leadlex.models import Workspace


class FoldedTrigramIndex(models.Index):
    """A trigram GIN index on ``lx_fold(column::text)`` (lower-cased, accents removed),
    which PostgreSQL uses for the Close query language's word and phrase conditions
    (exports/close/query.py emits exactly ``lx_fold((column)::text) ~ …``).

    PostgreSQL only: ``exports/migrations/0004_close_text_search.py`` creates the
    extensions (pg_trgm, unaccent), ``lx_fold`` and these indexes, and SQLite (which
    has neither GIN nor ``lx_fold``) never has them. On any other database this index
    is therefore no statement at all, so that SQLite's table rebuilds (any later
    AddField or AlterField on the table) do not try to create it. The SQL is written
    out rather than composed from ``OpClass``, whose placement Django only gets right
    with django.contrib.postgres installed.
    """

    def __init__(self, column: str, *, name: str) -> None:
        super().__init__(fields=[column], name=name)

    @property
    def column(self) -> str:
        return self.fields[0]

    def deconstruct(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        path, _, kwargs = super().deconstruct()
        return path, (self.column,), {"name": kwargs["name"]}

    def create_sql(self, model: type[models.Model], schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return f"-- {self.name}: PostgreSQL only"
        table = model._meta.db_table
        field = model._meta.get_field(self.column)
        column = field.column if isinstance(field, models.Field) else None
        if column is None:  # a reverse relation or a many-to-many field has no column to index
            raise ValueError(f"{self.name}: {self.column!r} is not a column of {table}")
        return Statement(
            "CREATE INDEX %(name)s ON %(table)s USING gin (lx_fold((%(column)s)::text) gin_trgm_ops)",
            name=schema_editor.quote_name(self.name),
            table=Table(table, schema_editor.quote_name),
            column=Columns(table, [column], schema_editor.quote_name),
        )

    def remove_sql(self, model: type[models.Model], schema_editor: Any, **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return f"-- {self.name}: PostgreSQL only"
        return super().remove_sql(model, schema_editor, **kwargs)


class Company(models.Model):
    """A Close "lead": an organisation with contacts, opportunities and activities."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="companies")
    name = models.CharField(max_length=300)
    url = models.URLField(max_length=1000, blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=100, blank=True)
    addresses = models.JSONField(default=list, blank=True)
    custom = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "companies"
        indexes = [
            models.Index(fields=["workspace", "created_at", "id"], name="company_ws_created"),
            FoldedTrigramIndex("name", name="lx_close_company_name_trgm"),
        ]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="tag_unique_per_workspace")]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="contacts")
    full_name = models.CharField(max_length=300, blank=True)
    # NULL, not "", means "no address": the case-insensitive unique constraint below holds only
    # for non-NULL emails, so any number of contacts can have none.
    email = models.CharField(max_length=254, null=True, blank=True)  # noqa: DJ001 - NULL is "none", see above
    # NULL means "no phone" as for email: matching by phone skips NULLs, and the API answers null.
    phone = models.CharField(  # noqa: DJ001 - NULL is "none", as for email
        max_length=40, null=True, blank=True, help_text="E.164 where it parses."
    )
    job_title = models.CharField(max_length=300, blank=True)
    # The contact's own company name; when ``company`` is set, the company's name wins.
    company_name = models.CharField(max_length=300, blank=True)
    company = models.ForeignKey(Company, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts")
    linkedin_url = models.URLField(max_length=1000, blank=True)
    custom = models.JSONField(default=dict, blank=True)
    tags = models.ManyToManyField(Tag, through="ContactTag", related_name="contacts", blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Case-insensitive uniqueness in the database itself, so that concurrent
            # imports and API writes cannot both insert the same address.
            models.UniqueConstraint(
                Lower("email"), "workspace", name="contact_email_ci_unique", condition=models.Q(email__isnull=False)
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "created_at", "id"], name="contact_ws_created"),
            models.Index(fields=["workspace", "updated_at"], name="contact_ws_updated"),
            # Phone first: an import's lookups reach contacts by phone alone (imports.upsert).
            models.Index(fields=["phone", "workspace"], name="contact_phone_ws"),
            FoldedTrigramIndex("full_name", name="lx_close_contact_name_trgm"),
            FoldedTrigramIndex("job_title", name="lx_close_contact_title_trgm"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email or str(self.id)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.updated_at = timezone.now()
        super().save(*args, **kwargs)

    @property
    def display_company_name(self) -> str:
        return self.company.name if self.company_id and self.company else self.company_name


class ContactTag(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "tag"], name="contact_tag_unique")]
        indexes = [models.Index(fields=["tag", "contact"], name="contact_tag_by_tag")]

    def __str__(self) -> str:
        # Ids, not names: the admin shows this on every inline row, and a name would cost a query each.
        return f"tag {self.tag_id} on contact {self.contact_id}"


class ContactEmail(models.Model):
    """Every address a contact has had, the primary one and those of merged profiles."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="emails")
    email = models.CharField(max_length=254)
    is_primary = models.BooleanField(default=False)
    merged_from = models.UUIDField(null=True, blank=True, help_text="The contact this address came from in a merge.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), "contact", name="contact_email_once_per_contact")]

    def __str__(self) -> str:
        return self.email


class CometToken(models.Model):
    """An opaque tracking token seen for a contact at a time."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="comet_tokens")
    token = models.CharField(max_length=500)
    seen_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["contact", "-seen_at", "-id"], name="comet_by_contact_recent")]

    def __str__(self) -> str:
        return self.token


class ContactList(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="lists")
    name = models.CharField(max_length=200)
    contacts = models.ManyToManyField(Contact, through="ListMembership", related_name="lists", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="list_name_unique_per_workspace")]

    def __str__(self) -> str:
        return self.name


class ListMembership(models.Model):
    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact_list", "contact"], name="list_membership_unique")]
        indexes = [models.Index(fields=["contact", "contact_list"], name="membership_by_contact")]

    def __str__(self) -> str:
        # Ids, not names, as for ContactTag: no query per inline row.
        return f"list {self.contact_list_id} has contact {self.contact_id}"


class Opportunity(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        WON = "won"
        LOST = "lost"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="opportunities")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, null=True, blank=True, related_name="opportunities")
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="opportunities")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    value = models.BigIntegerField(null=True, blank=True, help_text="Integer cents.")
    currency = models.CharField(max_length=3, default="USD")
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    note = models.TextField(blank=True)
    date_won = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "opportunities"
        indexes = [models.Index(fields=["workspace", "created_at", "id"], name="opp_ws_created")]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.value or 0} {self.currency}"


class Activity(models.Model):
    class Type(models.TextChoices):
        NOTE = "note"
        CALL = "call"
        EMAIL = "email"
        MEETING = "meeting"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="activities")
    type = models.CharField(max_length=10, choices=Type.choices)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, null=True, blank=True, related_name="activities")
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="activities")
    body = models.TextField(blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["workspace", "occurred_at"], name="activity_ws_occurred"),
            models.Index(fields=["company", "occurred_at"], name="activity_company_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.type} at {self.occurred_at:%Y-%m-%d}"
