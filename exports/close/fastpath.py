"""PostgreSQL fast path of the ``leads`` JSON / NDJSON export (default fields).

One query per batch of company ids in which the database builds each lead's
whole JSON document (nested contacts with their e-mails and tags, opportunities,
activities and smart fields) and returns it as text; Python only joins lines.
The records are the same as the generic renderer's (``render.lead_json``): same
keys in the same order, same values; tests/exports/close/test_fast_path_parity.py
parses both and compares them. Only the spacing of the JSON text differs.

Used for the raw-backup case (``type=leads``, ``json``/``ndjson``, no ``fields``
narrowing); every other combination takes the generic path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction

from leadlex.conf import setting_bool


def enabled() -> bool:
    return connection.vendor == "postgresql" and setting_bool("LEADLEX_CLOSE_EXPORT_FAST_PATH", True)


def _ts(col: str) -> str:
    # Same text as render.json_datetime: UTC, microseconds always, "+00:00".
    return f"(to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00')"


_MONEY = (
    "CASE WHEN o.value IS NULL THEN NULL ELSE (CASE WHEN o.value < 0 THEN '-' ELSE '' END) || "
    "to_char(abs(o.value) / 100, 'FM9,999,999,999,999,999,990') || '.' || "
    "lpad((abs(o.value) %% 100)::text, 2, '0') || ' ' || o.currency END"
)

_EMAILS = """COALESCE((SELECT json_agg(json_build_object('email', x.e, 'type', 'office') ORDER BY x.o1, x.o2, x.o3)
    FROM (SELECT ct.email AS e, 0 AS o1, NULL::timestamptz AS o2, NULL::bigint AS o3 WHERE COALESCE(ct.email, '') <> ''
          UNION ALL
          SELECT ce.email, 1, ce.created_at, ce.id FROM contacts_contactemail ce
           WHERE ce.contact_id = ct.id AND (ct.email IS NULL OR lower(ce.email) <> lower(ct.email))) x), '[]'::json)"""

_CONTACT = f"""json_build_object(
    'id', ct.id::text, 'lead_id', ct.company_id::text, 'name', ct.full_name, 'display_name', ct.full_name,
    'title', ct.job_title, 'emails', {_EMAILS},
    'phones', CASE WHEN COALESCE(ct.phone, '') <> ''
                   THEN json_build_array(json_build_object('phone', ct.phone, 'type', 'office')) ELSE '[]'::json END,
    'urls', CASE WHEN COALESCE(ct.linkedin_url, '') <> ''
                 THEN json_build_array(json_build_object('url', ct.linkedin_url, 'type', 'url')) ELSE '[]'::json END,
    'tags', COALESCE((SELECT json_agg(t.name ORDER BY t.name)
                      FROM contacts_contacttag tg JOIN contacts_tag t ON t.id = tg.tag_id
                      WHERE tg.contact_id = ct.id), '[]'::json),
    'custom', COALESCE(ct.custom, '{{}}'::jsonb),
    'date_created', {_ts("ct.created_at")}, 'date_updated', {_ts("ct.updated_at")})"""

_OPPORTUNITY = f"""json_build_object(
    'id', o.id::text, 'lead_id', o.company_id::text, 'contact_id', o.contact_id::text, 'contact_name', oc.full_name,
    'status_type', o.status, 'status_label', initcap(o.status), 'value', o.value, 'value_currency', o.currency,
    'value_formatted', {_MONEY}, 'confidence', o.confidence, 'note', o.note,
    'date_won', to_char(o.date_won, 'YYYY-MM-DD'),
    'date_created', {_ts("o.created_at")}, 'date_updated', {_ts("o.updated_at")})"""

_ACTIVITY = f"""json_build_object(
    'id', a.id::text,
    '_type', CASE a.type WHEN 'note' THEN 'Note' WHEN 'call' THEN 'Call' WHEN 'email' THEN 'Email'
                         WHEN 'meeting' THEN 'Meeting' ELSE a.type END,
    'lead_id', a.company_id::text, 'contact_id', a.contact_id::text, 'note', a.body,
    'activity_at', {_ts("a.occurred_at")}, 'date_created', {_ts("a.created_at")})"""


def _lead_sql(*, activities: bool, smart: bool) -> str:
    status_slug = "trim(both '_' from regexp_replace(lower(c.status), '[^a-z0-9]+', '_', 'g'))"
    parts = [
        "'id', c.id::text",
        "'display_name', c.name",
        "'name', c.name",
        "'description', c.description",
        "'url', NULLIF(c.url, '')",
        f"'status_id', CASE WHEN {status_slug} = '' THEN NULL ELSE 'stat_' || {status_slug} END",
        "'status_label', c.status",
        f"'date_created', {_ts('c.created_at')}",
        f"'date_updated', {_ts('c.updated_at')}",
        "'created_by', NULL",
        "'created_by_name', NULL",
        "'updated_by', NULL",
        "'updated_by_name', NULL",
        "'addresses', COALESCE(c.addresses, '[]'::jsonb)",
        f"'contacts', COALESCE((SELECT json_agg({_CONTACT} ORDER BY ct.created_at, ct.id) FROM contacts_contact ct "
        f"WHERE ct.company_id = c.id), '[]'::json)",
        f"'opportunities', COALESCE((SELECT json_agg({_OPPORTUNITY} ORDER BY o.created_at, o.id) "
        f"FROM contacts_opportunity o LEFT JOIN contacts_contact oc ON oc.id = o.contact_id "
        f"WHERE o.company_id = c.id), '[]'::json)",
        "'custom', COALESCE(c.custom, '{}'::jsonb)",
    ]
    if activities:
        parts.append(
            f"'activities', COALESCE((SELECT json_agg({_ACTIVITY} ORDER BY a.occurred_at, a.id) "
            f"FROM contacts_activity a WHERE a.company_id = c.id), '[]'::json)"
        )
    if smart:
        parts += [
            "'num_contacts', (SELECT count(*) FROM contacts_contact x WHERE x.company_id = c.id)",
            "'num_opportunities', (SELECT count(*) FROM contacts_opportunity x WHERE x.company_id = c.id)",
            "'num_activities', (SELECT count(*) FROM contacts_activity x WHERE x.company_id = c.id)",
            "'num_emails', (SELECT count(*) FROM contacts_activity x WHERE x.company_id = c.id AND x.type = 'email')",
            f"'last_activity_date', (SELECT {_ts('max(x.occurred_at)')} FROM contacts_activity x "
            f"WHERE x.company_id = c.id HAVING count(*) > 0)",
        ]
    # json_build_object takes at most 100 arguments: this is well below.
    return (
        f"SELECT json_build_object({', '.join(parts)})::text FROM unnest(%s::uuid[]) WITH ORDINALITY AS u(id, ord) "
        f"JOIN contacts_company c ON c.id = u.id ORDER BY u.ord"
    )


def lead_documents(*, company_ids: Sequence[Any], activities: bool, smart: bool) -> list[str]:
    """The JSON text of each company in ``company_ids`` (in that order): one query."""
    # JIT compilation would cost tens of milliseconds per batch (the planner's
    # estimate for the correlated subqueries always asks for it): off, for this
    # statement only.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_lead_sql(activities=activities, smart=smart), [list(company_ids)])
        return [row[0] for row in cursor.fetchall()]
