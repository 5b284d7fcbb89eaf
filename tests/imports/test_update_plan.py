"""The batch UPDATE of matched contacts reaches them by primary key whatever the
statistics say. A fresh workspace's are stale (empty at the last ANALYZE): a plan
driven by the workspace's index then compares every contact of the workspace with the
stage, in every batch, and million-row imports stalled for minutes per batch."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection

from contacts.models import Contact
from imports.upsert import _STAGE_DDL, contact_upsert_batch, update_statement
from imports.validation import CleanRow
from leadlex.models import Workspace
from tests.conftest import is_postgres

pytestmark = pytest.mark.django_db


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


def test_the_update_of_matched_contacts_uses_the_primary_key_under_stale_statistics():
    if not is_postgres():
        pytest.skip("PostgreSQL's planner; SQLite updates row by row by primary key")
    contacts = Contact._meta.db_table
    insert = f"""
        INSERT INTO {contacts} (id, workspace_id, full_name, email, phone, job_title, company_name,
                                linkedin_url, custom, created_at, updated_at)
        SELECT gen_random_uuid(), %s, 'Person ' || n, 'p' || n || '@example.com', '+1415555' || n, '', '',
               '', '{{}}', now(), now()
        FROM generate_series(1, %s) n
    """
    workspace = Workspace.objects.create(name="fresh")
    with connection.cursor() as cursor:
        for name in ("a", "b", "c"):  # the table's other workspaces, as the statistics know them
            cursor.execute(insert, [Workspace.objects.create(name=name).pk, 10_000])
        cursor.execute(f"ANALYZE {contacts}")  # the fresh workspace is empty now: "1 row" from here on
        cursor.execute(insert, [workspace.pk, 60_000])
        cursor.execute(f"SELECT id FROM {contacts} WHERE workspace_id = %s LIMIT 2", [workspace.pk])
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute("DROP TABLE IF EXISTS leadlex_import_stage")
        cursor.execute(_STAGE_DDL)
        cursor.execute(
            "INSERT INTO leadlex_import_stage (id, action, present, email_changed, full_name) "
            "SELECT gen_random_uuid(), 'c', 1, false, 'new' FROM generate_series(1, 4998)"
        )
        for contact_id in ids:  # a batch of 5,000 with two in-file updates
            cursor.execute(
                "INSERT INTO leadlex_import_stage (id, action, present, email_changed, full_name) "
                "VALUES (%s, 'u', 1, false, 'updated')",
                [contact_id],
            )
        cursor.execute("SET LOCAL enable_nestloop TO off")  # as the batch sets it
        cursor.execute(
            "EXPLAIN (FORMAT JSON) " + update_statement(contacts), [None, [str(i) for i in ids], workspace.pk]
        )
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes = plan_nodes(plan[0]["Plan"])
    on_contacts = [n for n in nodes if n.get("Relation Name") == contacts]
    assert on_contacts, nodes
    assert all(
        n["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Index Only Scan", "ModifyTable") for n in on_contacts
    )
    scans = [n for n in on_contacts if n["Node Type"] != "ModifyTable"]
    indexes = {n.get("Index Name") for n in nodes if n.get("Index Name")}
    assert indexes == {f"{contacts}_pkey"}, plan
    assert scans and not any(n["Node Type"] == "Nested Loop" for n in nodes), plan


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
