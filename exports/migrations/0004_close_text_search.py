"""PostgreSQL only: what makes Close-style text conditions fast.

* ``lx_fold(text)``: ``lower(unaccent(x))`` declared IMMUTABLE (``unaccent`` itself
  is only STABLE because its dictionary could change), so it can be indexed. The
  query compiler (exports/close/query.py) emits exactly ``lx_fold((col)::text)``.
* trigram GIN indexes on ``lx_fold`` of the text columns people search by words
  (contact name and title, company name), which PostgreSQL uses for the
  compiler's regular expressions (pg_trgm supports ``~``). Each costs some insert
  time (GIN's pending list absorbs most of it), so e-mail addresses, usually
  matched exactly, get none.

The indexes are on contacts tables but exist only for this query language, so
they live with it; SQLite gets a Python ``lx_fold`` per connection instead.
"""

from django.db import migrations

INDEXES = [
    ("lx_close_contact_name_trgm", "contacts_contact", "full_name"),
    ("lx_close_contact_title_trgm", "contacts_contact", "job_title"),
    ("lx_close_company_name_trgm", "contacts_company", "name"),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # The dictionary is named explicitly (schema-qualified through the extension's
    # schema) so that the function does not depend on search_path.
    schema_editor.execute("""
        DO $$
        DECLARE s text;
        BEGIN
            SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname = 'unaccent';
            EXECUTE format(
                'CREATE OR REPLACE FUNCTION lx_fold(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE '
                'AS $f$ SELECT lower(%%1$I.unaccent(%%2$L::regdictionary, $1)) $f$', s, s || '.unaccent');
        END $$;
    """)
    for name, table, column in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (lx_fold(({column})::text) gin_trgm_ops)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    schema_editor.execute("DROP FUNCTION IF EXISTS lx_fold(text)")


class Migration(migrations.Migration):

    dependencies = [
        ("exports", "0003_close_export_proxy_unaccent"),
        ("contacts", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
