"""The X-Request-ID of the request that started an export is on the job (status
JSON, admin) and on the log lines a real worker writes while running it."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse

from exports.close.ids import export_id_parse
from exports.models import ExportJob
from leadlex.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import basic_auth
from tests.exports.close.conftest import build_world
from tests.exports.close.helpers import SEED_REQUEST
from tests.exports.factories import make_contacts
from tests.support.worker import QueueWorker, tasks_routed_to, wait_for, wait_job

pytestmark = pytest.mark.django_db(transaction=True)

CREATE = "/v1/contacts/exports"
FULL_YEAR = {"start_date": "2026-01-01 00:00:00", "end_date": "2026-12-31 23:59:59"}

# The head line of a record in the LOGGING format (config/settings.py).
RECORD = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+ ")


def lines_about(log: str, job_id: uuid.UUID) -> list[str]:
    """The log records that name the job (a traceback's own lines are not records)."""
    return [line for line in log.splitlines() if RECORD.match(line) and (str(job_id) in line or job_id.hex in line)]


@pytest.fixture
def worker():
    """A worker of our own, on a queue of our own: its log holds only our jobs' lines."""
    queue = f"reqid-{uuid.uuid4().hex[:8]}"
    with tasks_routed_to("exports.export_job_run", queue):
        w = QueueWorker("reqid", queue)
        try:
            yield w
        finally:
            w.stop()


@pytest.mark.worker
def test_a_contact_exports_request_id_is_on_its_status_and_on_every_worker_line_about_it(owner, worker) -> None:
    make_contacts(owner.workspace, 5)
    WebhookEndpoint.objects.create(
        workspace=owner.workspace, url="https://hooks.example.com/lx", events=["export.completed"], secret="whsec_test"
    )
    first = owner.client.post(CREATE, FULL_YEAR, format="json", HTTP_X_REQUEST_ID="abc-123")
    second = owner.client.post(CREATE, FULL_YEAR, format="json")  # no header: the server's own id
    assert first.status_code == second.status_code == 202
    first_id, second_id = uuid.UUID(first.json()["id"]), uuid.UUID(second.json()["id"])
    generated = second["X-Request-ID"]
    for job_id in (first_id, second_id):
        assert wait_job(job_id).status == "completed", worker.log()[-3000:]

    body = owner.client.get(f"{CREATE}/{first_id}").json()
    assert body["request_id"] == "abc-123" and body["status"] == "completed"
    assert owner.client.get(f"{CREATE}/{second_id}").json()["request_id"] == generated

    log = worker.log()
    # One pool process ran both, one after the other: each job's lines name its own
    # request, and the first one's id does not leak into the second's.
    about_first, about_second = lines_about(log, first_id), lines_about(log, second_id)
    assert about_first and all("request_id=abc-123" in line for line in about_first), log[-3000:]
    assert about_second and all(f"request_id={generated}" in line for line in about_second), log[-3000:]
    assert "completed" in about_first[-1]

    deliveries = wait_for(
        lambda: len(found := list(WebhookDelivery.objects.filter(event="export.completed"))) == 2 and found,
        timeout=30,
        message="both export.completed deliveries",
    )
    delivered = {d.payload["data"]["id"]: d.payload["data"]["request_id"] for d in deliveries}
    assert delivered == {str(first_id): "abc-123", str(second_id): generated}


@pytest.mark.worker
def test_a_close_exports_request_id_is_on_its_export_object_and_its_worker_lines(workspace, owner, worker) -> None:
    build_world(workspace)
    owner.client.credentials(HTTP_AUTHORIZATION=basic_auth(owner.raw_key))
    response = owner.client.post(
        "/v1/export/lead/", {**SEED_REQUEST, "s_query": None}, format="json", HTTP_X_REQUEST_ID="close-req-77"
    )
    assert response.status_code == 200, response.content
    assert response.json()["request_id"] == "close-req-77"
    job_id = export_id_parse(response.json()["id"])
    assert wait_job(job_id).status == "completed", worker.log()[-3000:]

    detail = owner.client.get(f"/v1/export/{response.json()['id']}/").json()
    assert detail["request_id"] == "close-req-77" and detail["status"] == "done"
    listed = owner.client.get("/v1/export/").json()["data"]
    assert [e["request_id"] for e in listed] == ["close-req-77"]
    about = lines_about(worker.log(), job_id)
    assert about and all("request_id=close-req-77" in line for line in about), worker.log()[-3000:]


def test_an_export_started_from_the_admin_carries_the_admin_requests_id(admin_client, owner) -> None:
    response = admin_client.post(
        "/admin/leadlex/workspace/",
        {"action": "export_all_contacts_ndjson", "_selected_action": [str(owner.workspace.pk)]},
        HTTP_X_REQUEST_ID="admin-req-9",
    )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.request_id == "admin-req-9"
    detail = admin_client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    assert "admin-req-9" in detail
    found = admin_client.get("/admin/exports/exportjob/", {"q": "admin-req-9"}).content.decode()
    assert str(job.pk) in found


def test_an_export_no_request_started_shows_a_null_request_id(owner) -> None:
    from exports.leadlex.services import contact_export_start

    job = contact_export_start(workspace=owner.workspace, format="ndjson", enqueue=False)  # as the command does
    assert job.request_id == ""
    assert owner.client.get(f"{CREATE}/{job.pk}").json()["request_id"] is None


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


@pytest.mark.parametrize(
    "path, inner",
    [
        ("/v1/contacts/exports/{export_id}", None),
        ("/v1/export/{export_id}/", None),
        ("/v1/import/contacts/{job_id}", "data"),
    ],
)
def test_the_openapi_document_describes_request_id_on_each_job_status(anon, path: str, inner: str | None) -> None:
    doc = anon.get("/v1/openapi.json").json()
    schema = _resolve(doc, doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    if inner:
        schema = _resolve(doc, schema["properties"][inner])
    field = schema["properties"]["request_id"]
    assert field["type"] == "string" and field.get("nullable") is True and "X-Request-ID" in field["description"]
