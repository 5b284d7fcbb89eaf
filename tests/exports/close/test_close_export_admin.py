"""Admin: Close-style jobs in the job list under the Close dialect, with readable
parameters, and the form that starts one from a pasted s_query (validated as the API
does)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from exports.models import CloseExport, ExportJob
from tests.exports.close.helpers import SEED_REQUEST, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


def test_the_close_dialect_filter_shows_only_close_style_jobs_with_a_start_link(world, owner, staff):
    export = start(owner.client, SEED_REQUEST)
    ExportJob.objects.create(workspace=world.workspace, kind="contacts", format="ndjson", parameters={})
    response = staff.get("/admin/exports/exportjob/?dialect=close")
    assert response.status_code == 200
    page = response.content.decode()
    assert export["id"] in page
    assert page.count("expo_") == 1
    assert "Start a Close-style export" in page


def test_the_change_page_shows_the_parameters_readably(world, owner, staff):
    export = start(owner.client, SEED_REQUEST)
    job = CloseExport.objects.get()
    page = staff.get(f"/admin/exports/exportjob/{job.pk}/change/").content.decode()
    assert export["id"] in page
    assert "&quot;full_words&quot;" in page and "ACME Inc." in page


def test_the_start_form_queues_an_export_from_a_pasted_s_query(world, staff):
    response = staff.post(
        "/admin/exports/exportjob/close/start/",
        {
            "workspace": str(world.workspace.pk),
            "type": "contacts",
            "format": "csv",
            "date_format": "excel",
            "s_query": json.dumps(SEED_REQUEST["s_query"]),
            "sort": "",
            "fields": "name, lead_name",
        },
    )
    job = CloseExport.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/exportjob/{job.pk}/change/")
    assert job.kind == "close_contacts" and job.created_by_user.username == "admin"
    assert job.parameters["s_query"] == SEED_REQUEST["s_query"] and job.parameters["fields"] == ["name", "lead_name"]


@pytest.mark.parametrize(
    ("s_query", "message"),
    [
        ('{"type": "and", "queries": [{"type": "nope"}]}', "queries[0].type: unknown query type"),
        ("{not json", "Not valid JSON"),
    ],
)
def test_the_start_form_shows_query_errors(world, staff, s_query, message):
    response = staff.post(
        "/admin/exports/exportjob/close/start/",
        {
            "workspace": str(world.workspace.pk),
            "type": "leads",
            "format": "json",
            "date_format": "original",
            "s_query": s_query,
        },
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ExportJob.objects.exists()


def test_the_start_form_renders(staff, world):
    assert staff.get("/admin/exports/exportjob/close/start/").status_code == 200
