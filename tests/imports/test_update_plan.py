"""A batch's lookups and its UPDATE of matched contacts reach the contacts by their keys
whatever the statistics say. A fresh workspace's are stale (empty at the last ANALYZE): a plan
driven by the workspace's index then compares every contact of the workspace with the
stage, in every batch, and million-row imports stalled for minutes per batch."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection

from contacts.models import Contact, ContactEmail
from imports.upsert import (
    _STAGE_DDL,
    _by_key,
    contact_upsert_batch,
    match_by_email_statement,
    match_by_phone_statement,
    primary_email_statement,
    update_statement,
)
from imports.validation import CleanRow
from leadlex.models import Workspace
from tests.conftest import is_postgres

pytestmark = pytest.mark.django_db


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


@pytest.fixture
def stale() -> tuple[Workspace, list]:
    """A fresh workspace of 60,000 contacts whose statistics still say it is empty (the
    table's other workspaces are what the last ANALYZE saw), and two of its ids."""
    if not is_postgres():
        pytest.skip("PostgreSQL's planner; SQLite looks each key up by its index")
    contacts = Contact._meta.db_table
    insert = f"""
        INSERT INTO {contacts} (id, workspace_id, full_name, email, phone, job_title, company_name,
                                linkedin_url, custom, created_at, updated_at)
        SELECT gen_random_uuid(), %s, 'Person ' || n, 'p' || n || '@example.com', '+1415' || lpad(n::text, 7, '0'),
               '', '', '', '{{}}', now(), now()
        FROM generate_series(1, %s) n
    """
    addresses = f"""
        INSERT INTO {ContactEmail._meta.db_table} (contact_id, email, is_primary, created_at)
        SELECT id, email, true, now() FROM {contacts} WHERE workspace_id = %s
    """
    workspace = Workspace.objects.create(name="fresh")
    with connection.cursor() as cursor:
        for name in ("a", "b", "c"):  # the table's other workspaces, as the statistics know them
            other = Workspace.objects.create(name=name)
            cursor.execute(insert, [other.pk, 10_000])
            cursor.execute(addresses, [other.pk])
        # The fresh workspace is empty now: "1 row" from here on.
        cursor.execute(f"ANALYZE {contacts}")
        cursor.execute(f"ANALYZE {ContactEmail._meta.db_table}")
        cursor.execute(insert, [workspace.pk, 60_000])
        cursor.execute(addresses, [workspace.pk])
        cursor.execute(f"SELECT id FROM {contacts} WHERE workspace_id = %s LIMIT 2", [workspace.pk])
        ids = [row[0] for row in cursor.fetchall()]
    return workspace, ids


def explain(statement: str, params: list) -> list[dict]:
    with connection.cursor() as cursor:
        # Parameters bound as the batch binds them (literal arrays: the planner sees every key).
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan_nodes(plan[0]["Plan"])


def indexes_read(nodes: list[dict]) -> set[str]:
    """The indexes a plan reads (the stage has none)."""
    return {n["Index Name"] for n in nodes if n.get("Index Name")}


def stage_with_updates(ids: list) -> None:
    """The batch's stage: 5,000 rows, two of them updates of ``ids`` with a new address."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS leadlex_import_stage")
        cursor.execute(_STAGE_DDL)
        cursor.execute(
            "INSERT INTO leadlex_import_stage (id, action, present, email_changed, full_name) "
            "SELECT gen_random_uuid(), 'c', 1, false, 'new' FROM generate_series(1, 4998)"
        )
        for contact_id in ids:  # a batch of 5,000 with two in-file updates
            cursor.execute(
                "INSERT INTO leadlex_import_stage (id, action, present, email_changed, full_name, email) "
                "VALUES (%s, 'u', 1, true, 'updated', 'new@example.com')",
                [contact_id],
            )


def test_the_update_of_matched_contacts_uses_the_primary_key_under_stale_statistics(stale):
    workspace, ids = stale
    contacts = Contact._meta.db_table
    stage_with_updates(ids)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_nestloop TO off")  # as the batch sets it
    nodes = explain(update_statement(contacts), [None, [str(i) for i in ids], workspace.pk])
    on_contacts = [n for n in nodes if n.get("Relation Name") == contacts and n["Node Type"] != "ModifyTable"]
    assert on_contacts and all(n["Node Type"] != "Seq Scan" for n in on_contacts), nodes
    assert indexes_read(nodes) == {f"{contacts}_pkey"}, nodes  # by the ids, never the workspace
    assert not any(n["Node Type"] == "Nested Loop" for n in nodes), nodes


def test_the_primary_address_update_reaches_the_addresses_by_contact_under_stale_statistics(stale):
    _workspace, ids = stale
    emails = ContactEmail._meta.db_table
    stage_with_updates(ids)
    with connection.cursor() as cursor, _by_key(cursor):  # as the batch runs it
        nodes = explain(primary_email_statement(emails), [[str(i) for i in ids]])
    on_emails = [n for n in nodes if n.get("Relation Name") == emails and n["Node Type"] != "ModifyTable"]
    assert on_emails and all(n["Node Type"] == "Index Scan" for n in on_emails), nodes
    assert indexes_read(nodes) == {"contacts_contactemail_contact_id_8dd35e56"}, nodes


@pytest.mark.parametrize(
    ("statement", "keys", "index"),
    [
        (match_by_email_statement, [f"p{n}@example.com" for n in range(1, 5001)], "contact_email_ci_unique"),
        (match_by_phone_statement, [f"+1415{n:07d}" for n in range(1, 5001)], "contact_phone_ws"),
    ],
    ids=["email", "phone"],
)
def test_matching_a_batch_probes_the_key_indexes_under_stale_statistics(stale, statement, keys, index):
    workspace, _ids = stale
    with connection.cursor() as cursor, _by_key(cursor):  # as the batch runs them
        nodes = explain(statement(Contact._meta.db_table), [keys, workspace.pk])
    assert indexes_read(nodes) == {index}, nodes  # never the workspace's own index
    assert not any(n["Node Type"].startswith("Bitmap") or n["Node Type"] == "Seq Scan" for n in nodes), nodes
    # and its result is right: every key found once, in the fresh workspace only
    with connection.cursor() as cursor, _by_key(cursor):
        cursor.execute(statement(Contact._meta.db_table), [[*keys[:3], "nobody"], workspace.pk])
        assert len(cursor.fetchall()) == 3


def test_a_batch_with_in_file_updates_still_updates_exactly_its_matched_contacts():
    workspace, other = Workspace.objects.create(name="a"), Workspace.objects.create(name="b")
    mine = Contact.objects.create(workspace=workspace, email="ada@example.com", full_name="Ada")
    theirs = Contact.objects.create(workspace=other, email="ada@example.com", full_name="Not Ada")
    rows = [CleanRow(row=1, values={"email": "ada@example.com", "full_name": "Ada Lovelace"})]
    rows += [CleanRow(row=i, values={"email": f"p{i}@example.com", "full_name": f"P {i}"}) for i in range(2, 50)]
    result = contact_upsert_batch(workspace=workspace, rows=rows, update_existing=True, tags=[], job_id=uuid.uuid4())
    assert (result.created, result.updated) == (48, 1)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.full_name, theirs.full_name) == ("Ada Lovelace", "Not Ada")
