"""Adopts the trigram indexes that ``exports/migrations/0004_close_text_search.py``
created on PostgreSQL into the migration state, so that contacts/models.py declares
them. State only: nothing is created or dropped on any database (they exist since
exports 0004 on PostgreSQL, and never on SQLite)."""

from django.db import migrations

import contacts.models


class Migration(migrations.Migration):

    dependencies = [
        ("contacts", "0001_initial"),
        ("exports", "0004_close_text_search"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="company",
                    index=contacts.models.FoldedTrigramIndex("name", name="lx_close_company_name_trgm"),
                ),
                migrations.AddIndex(
                    model_name="contact",
                    index=contacts.models.FoldedTrigramIndex("full_name", name="lx_close_contact_name_trgm"),
                ),
                migrations.AddIndex(
                    model_name="contact",
                    index=contacts.models.FoldedTrigramIndex("job_title", name="lx_close_contact_title_trgm"),
                ),
            ],
            database_operations=[],
        ),
    ]
