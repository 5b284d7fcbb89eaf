"""On PostgreSQL the database renders the export bytes; the records must be exactly
those of the generic Python path (which SQLite always uses)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command

from contacts.models import Contact
from tests.conftest import is_postgres
from tests.exports.factories import BASE, add_emails, add_to_list, add_tokens, company, make_contacts, tag
from tests.support.files import csv_records, ndjson_records, streamed

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

AWKWARD = [
    '=HYPERLINK("http://evil")',
    "+1-555-0100",
    "-42.5",
    "@SUM(A1)",
    "\tTabbed",
    "\rCR",
    "plain",
    'He said "hi", then left',
    "multi\nline\r\ntext",
    "",
    "  spaced  ",
    "Zoë Ünïcødé 漢字 🎉",
    "back\\slash",
    "ctrl\x01char",
    "-",
    "+",
    "(555) 010-0100",
    "-(1)",
    "'quoted",
    "a,b,c",
]


def _awkward_workspace(workspace) -> None:
    acme = company(workspace, 'Acme, Inc. "Ltd"')
    contacts = make_contacts(workspace, len(AWKWARD), step=timedelta(microseconds=250_001))
    for i, (contact, text) in enumerate(zip(contacts, AWKWARD, strict=True)):
        contact.full_name = text
        contact.job_title = AWKWARD[-1 - i]
        contact.email = None if i % 5 == 0 else contact.email
        contact.phone = None if i % 3 == 0 else contact.phone
        contact.company = acme if i % 2 else None
        contact.custom = {"note": text, "n": i, "nested": {"z": [1, 2.5, None, True], "a": "x"}, "ü": "ÿ"}
        contact.created_at = BASE + timedelta(microseconds=i * 250_001) if i % 4 else BASE
    Contact.objects.bulk_update(
        contacts, ["full_name", "job_title", "email", "phone", "company", "custom", "created_at"]
    )
    tag(contacts[::2], "Zebra")
    tag(contacts[::3], "alpha, beta")
    tag(contacts[1::4], "=cmd")
    add_to_list(contacts[::2], "L1")
    add_to_list(contacts[::5], "L2")
    add_tokens(contacts[1], 8)
    add_tokens(contacts[2], 2)
    add_emails(contacts[1], ["Merged@Example.com", contacts[1].email.upper()])


@pytest.mark.skipif(not is_postgres(), reason="the fast path exists on PostgreSQL only")
def test_sync_csv_fast_path_gives_the_generic_paths_records_and_bytes(owner, settings) -> None:
    _awkward_workspace(owner.workspace)
    fields = "id,full_name,email,phone,job_title,company_name,linkedin_url,tags,lists,custom,created_at,updated_at"
    settings.LEADLEX_EXPORT_BATCH_SIZE = 7  # several keyset batches
    settings.LEADLEX_EXPORT_SQL_FAST_PATH = True
    fast = streamed(owner.client.get(f"/v1/contacts/export?fields={fields}"))
    settings.LEADLEX_EXPORT_SQL_FAST_PATH = False
    generic = streamed(owner.client.get(f"/v1/contacts/export?fields={fields}"))
    assert csv_records(fast) == csv_records(generic)
    assert len(csv_records(fast)) == len(AWKWARD) + 1
    assert fast == generic  # same quoting, same formula policy, same timestamps


@pytest.mark.skipif(not is_postgres(), reason="the fast path exists on PostgreSQL only")
def test_ndjson_fast_path_gives_the_generic_paths_records(owner, settings, tmp_path) -> None:
    _awkward_workspace(owner.workspace)
    settings.LEADLEX_EXPORT_BATCH_SIZE = 6
    out = {}
    for fast in (True, False):
        settings.LEADLEX_EXPORT_SQL_FAST_PATH = fast
        path = tmp_path / f"fast-{fast}.ndjson"
        call_command(
            "export_contacts",
            "--workspace",
            owner.workspace.name,
            "--format",
            "ndjson",
            "--include-comet-tokens",
            "--include-all-emails",
            "--out",
            str(path),
            "--no-progress",
        )
        out[fast] = path.read_bytes()
    fast_records, generic_records = ndjson_records(out[True]), ndjson_records(out[False])
    assert fast_records == generic_records
    assert len(fast_records) == len(AWKWARD)
    tokens = next(r for r in fast_records if len(r["comet_tokens"]) == 5)["comet_tokens"]
    assert [t["token"] for t in tokens] == ["tok-7", "tok-6", "tok-5", "tok-4", "tok-3"]


@pytest.mark.skipif(not is_postgres(), reason="the fast path exists on PostgreSQL only")
def test_fast_path_renders_a_whole_batch_in_one_query(owner, settings, django_assert_max_num_queries) -> None:
    make_contacts(owner.workspace, 50)
    settings.LEADLEX_EXPORT_BATCH_SIZE = 10
    settings.LEADLEX_EXPORT_SQL_FAST_PATH = True
    # auth + boundary + 6 batch statements (5 full, 1 empty probe), whatever the columns;
    # each wrapped as (savepoint, SET LOCAL jit, statement, release)
    with django_assert_max_num_queries(6 + 6 * 4) as ctx:
        body = streamed(owner.client.get("/v1/contacts/export?fields=id,tags,lists,emails,comet_tokens,custom"))
    assert len(csv_records(body)) == 51
    assert sum("string_agg" in q["sql"] for q in ctx.captured_queries) == 6
