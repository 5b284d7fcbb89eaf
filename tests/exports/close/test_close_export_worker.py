"""End to end through HTTP and the real worker process: POST, watch the status
move, download the gzipped file."""

from __future__ import annotations

import gzip
import json

import pytest

from exports.close.ids import export_id_parse
from tests.conftest import basic_auth
from tests.exports.close.conftest import build_world
from tests.exports.close.helpers import SEED_REQUEST, lower_keys
from tests.support.files import download
from tests.support.worker import wait_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_json_leads_export_runs_on_the_worker(celery_worker, workspace, owner, settings):
    build_world(workspace)
    owner.client.credentials(HTTP_AUTHORIZATION=basic_auth(owner.raw_key))
    response = owner.client.post(
        "/v1/export/lead/",
        {**SEED_REQUEST, "format": "json", "s_query": None, "include_activities": True, "include_smart_fields": True},
        format="json",
    )
    assert response.status_code == 200
    export = response.json()
    job = wait_job(export_id_parse(export["id"]))
    assert job.status == "completed", (job.error, celery_worker.log()[-3000:])

    detail = owner.client.get(f"/v1/export/{export['id']}/").json()
    assert (detail["status"], detail["n_docs"], detail["n_docs_processed"]) == ("done", 4, 4)
    status, headers, raw = download(detail["download_url"])
    assert status == 200
    assert lower_keys(headers)["content-encoding"] == "gzip" and lower_keys(headers)["content-type"].startswith(
        "application/json"
    )
    leads = json.loads(gzip.decompress(raw))
    assert [lead["name"] for lead in leads] == ["Globex Corporation", "Café Crème Ltd", "ACME Inc.", "Initech"]
    acme = leads[2]
    assert len(acme["contacts"]) == 2 and len(acme["activities"]) == 2 and acme["num_opportunities"] == 2


def test_a_csv_contacts_export_runs_on_the_worker(celery_worker, workspace, owner):
    build_world(workspace)
    response = owner.client.post(
        "/v1/export/lead/",
        {"type": "contacts", "format": "csv", "date_format": "excel", "send_done_email": False},
        format="json",
    )
    job = wait_job(export_id_parse(response.json()["id"]))
    assert job.status == "completed", job.error
    detail = owner.client.get(f"/v1/export/{response.json()['id']}/").json()
    _, headers, raw = download(detail["download_url"])
    assert lower_keys(headers)["content-type"].startswith("text/csv")
    lines = gzip.decompress(raw).decode().splitlines()
    assert len(lines) == 5 and lines[0].startswith("id,lead_id,name,")
