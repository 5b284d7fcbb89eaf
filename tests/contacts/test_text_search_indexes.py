"""The trigram indexes of the Close query language, declared in contacts/models.py:
on PostgreSQL they are exactly the indexes in the database, and SQLite, which has
none, still rebuilds the tables they are declared on."""

from __future__ import annotations

import pytest
from django.db import connection, connections
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

from contacts.models import Company, Contact, FoldedTrigramIndex
from tests.conftest import is_postgres

DECLARED = [(model, index) for model in (Contact, Company) for index in model._meta.indexes]
TRIGRAM = [(model, index) for model, index in DECLARED if isinstance(index, FoldedTrigramIndex)]


def test_contacts_and_companies_declare_the_three_trigram_indexes() -> None:
    assert sorted(index.name for _, index in TRIGRAM) == [
        "lx_close_company_name_trgm",
        "lx_close_contact_name_trgm",
        "lx_close_contact_title_trgm",
    ]


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.skipif(not is_postgres(), reason="the indexes exist on PostgreSQL only")
@pytest.mark.parametrize(("model", "index"), TRIGRAM, ids=[index.name for _, index in TRIGRAM])
def test_on_postgresql_the_declared_index_is_the_one_in_the_database(model, index) -> None:
    # Create what the declaration would create, under another name, and compare the
    # two definitions as PostgreSQL prints them (the test's transaction drops it again).
    twin = FoldedTrigramIndex(index.column, name="lx_declared_twin")
    with connection.schema_editor() as editor:
        editor.add_index(model, twin)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN (%s, %s)", [index.name, twin.name]
        )
        definitions = dict(cursor.fetchall())
    assert definitions[index.name] == definitions[twin.name].replace(twin.name, index.name)


def test_sqlite_rebuilds_a_table_with_trigram_indexes_without_creating_them(django_db_blocker) -> None:
    # SQLite alters a column by rebuilding the table, re-creating every declared index;
    # a GIN index there would be a syntax error. (A database of its own, on either profile.)
    config = connections.configure_settings({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
    sqlite = SQLiteWrapper(config["default"], alias="scratch")
    connections["scratch"] = sqlite  # the schema editor's transactions look it up by alias
    with django_db_blocker.unblock():
        with sqlite.schema_editor() as editor:
            editor.create_model(Company)
            editor.create_model(Contact)
            old = Contact._meta.get_field("job_title")
            new = Contact._meta.get_field("job_title").clone()
            new.set_attributes_from_name("job_title")
            new.max_length = 500
            editor.alter_field(Contact, old, new)
        with sqlite.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts_contact'")
            names = {row[0] for row in cursor.fetchall()}
        sqlite.close()
    del connections["scratch"]
    assert "contact_ws_created" in names and not {i.name for _, i in TRIGRAM} & names
