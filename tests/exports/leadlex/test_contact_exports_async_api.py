"""POST /v1/contacts/exports and GET /v1/contacts/exports/{id}, through
HTTP and a real worker."""

from __future__ import annotations

import gzip
import hashlib
import time
from datetime import UTC, datetime, timedelta

import pytest

from exports.models import ExportJob
from leadlex.models import SCOPE_WRITE_CONTACTS
from tests.conftest import keyed_client
from tests.exports.factories import add_emails, add_to_list, add_tokens, make_contacts, tag
from tests.support.clock import wait_for_a_fresh_window
from tests.support.files import download, ndjson_records
from tests.support.worker import wait_job

CREATE = "/v1/contacts/exports"
FULL_YEAR = {"start_date": "2026-01-01 00:00:00", "end_date": "2026-12-31 23:59:59"}


def status_of(client, job_id: str) -> dict:
    response = client.get(f"{CREATE}/{job_id}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_a_queued_export_completes_and_its_presigned_url_downloads_the_gzipped_ndjson(owner, celery_worker) -> None:
    contacts = make_contacts(owner.workspace, 12)
    tag(contacts[:2], "lead")
    lst = add_to_list(contacts[:1], "Q3")
    make_contacts(owner.workspace, 2, start=datetime(2025, 12, 31, 23, 0, tzinfo=UTC))  # outside the range
    response = owner.client.post(CREATE, FULL_YEAR, format="json")
    assert response.status_code == 202
    assert response.json() == {"id": response.json()["id"], "status": "queued"}
    job_id = response.json()["id"]

    wait_job(job_id)
    body = status_of(owner.client, job_id)
    assert body["status"] == "completed", body
    assert body["total_contacts"] == body["processed_contacts"] == 12
    assert body["error"] is None and body["completed_at"] and body["created_at"]
    assert body["download_url"] and body["expires_at"]
    url_expiry = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < url_expiry - datetime.now(UTC) <= timedelta(minutes=15)

    status, headers, raw = download(body["download_url"])
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    records = ndjson_records(gzip.decompress(raw))
    assert [r["id"] for r in records] == [str(c.id) for c in contacts]
    assert records[0]["tags"] == ["lead"] and records[0]["lists"] == [str(lst.id)]
    assert records[0]["created_at"] == "2026-04-15T09:00:00Z"
    assert "comet_tokens" not in records[0] and "emails" not in records[0]  # only on request

    from exports.models import ExportJob

    job = ExportJob.objects.get(pk=job_id)
    assert job.row_count == 12 and job.byte_size == len(raw) and job.sha256 == hashlib.sha256(raw).hexdigest()
    assert job.storage_key.startswith("exports/") and len(job.storage_key.split("/")[-1]) == 36  # a random UUID

    time.sleep(1.1)
    assert status_of(owner.client, job_id)["download_url"] != body["download_url"]  # signed afresh on each read


@pytest.mark.django_db(transaction=True)
def test_comet_tokens_are_the_last_five_newest_first_and_emails_include_merged_ones(owner, celery_worker) -> None:
    contact, bare = make_contacts(owner.workspace, 2)
    add_tokens(contact, 7)
    add_emails(contact, ["old-profile@example.com", "Other@Example.org"])
    payload = {**FULL_YEAR, "include_comet_tokens": 1, "include_all_emails": "1"}
    job_id = owner.client.post(CREATE, payload, format="json").json()["id"]
    wait_job(job_id)
    body = status_of(owner.client, job_id)
    first, second = ndjson_records(gzip.decompress(download(body["download_url"])[2]))
    assert [t["token"] for t in first["comet_tokens"]] == ["tok-6", "tok-5", "tok-4", "tok-3", "tok-2"]
    assert first["comet_tokens"][0]["seen_at"] == "2026-04-15T09:06:00Z"
    assert first["emails"] == [contact.email, "old-profile@example.com", "Other@Example.org"]
    assert second["comet_tokens"] == [] and second["emails"] == [bare.email]


@pytest.mark.django_db(transaction=True)
def test_zero_matching_contacts_give_a_completed_empty_file(owner, celery_worker) -> None:
    job_id = owner.client.post(CREATE, FULL_YEAR, format="json").json()["id"]
    wait_job(job_id)
    body = status_of(owner.client, job_id)
    assert body["status"] == "completed" and body["total_contacts"] == 0
    assert gzip.decompress(download(body["download_url"])[2]) == b""


@pytest.mark.django_db(transaction=True)
def test_dates_are_wall_clock_times_of_the_workspace_timezone_across_dst(owner, celery_worker) -> None:
    ws = owner.workspace
    ws.timezone = "America/New_York"  # 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC)
    ws.save()
    utc = [
        datetime(2026, 3, 8, 6, 29, 59),
        datetime(2026, 3, 8, 6, 30),
        datetime(2026, 3, 8, 7, 30, 59, 500000),
        datetime(2026, 3, 8, 7, 31),
    ]
    made = [make_contacts(ws, 1, start=t.replace(tzinfo=UTC))[0] for t in utc]
    # 01:30:00 EST = 06:30:00Z; 03:30:59 EDT = 07:30:59Z, the whole second included.
    job_id = owner.client.post(
        CREATE, {"start_date": "2026-03-08 01:30:00", "end_date": "2026-03-08 03:30:59"}, format="json"
    ).json()["id"]
    wait_job(job_id)
    records = ndjson_records(gzip.decompress(download(status_of(owner.client, job_id)["download_url"])[2]))
    assert [r["id"] for r in records] == [str(made[1].id), str(made[2].id)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sent, flag",
    [(1, True), (1.0, True), ("1", True), (True, True), (0, False), (0.0, False), ("0", False), (None, False)],
)
def test_the_include_flags_take_the_value_sent_as_a_json_number_text_or_boolean(owner, sent, flag: bool) -> None:
    payload = {**FULL_YEAR, "include_comet_tokens": sent, "include_all_emails": sent}
    response = owner.client.post(CREATE, payload, format="json")
    assert response.status_code == 202, response.content
    parameters = ExportJob.objects.get(pk=response.json()["id"]).parameters
    assert parameters["include_comet_tokens"] is flag and parameters["include_all_emails"] is flag


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, field",
    [
        ({"end_date": "2026-01-02 00:00:00"}, "start_date"),
        ({"start_date": "2026-01-01 00:00:00"}, "end_date"),
        ({"start_date": "2026-01-01", "end_date": "2026-01-02 00:00:00"}, "start_date"),
        ({"start_date": "2026-02-30 00:00:00", "end_date": "2026-03-02 00:00:00"}, "start_date"),
        ({"start_date": 20260101, "end_date": "2026-03-02 00:00:00"}, "start_date"),
        ({"start_date": "2026-01-02 00:00:00", "end_date": "2026-01-01 00:00:00"}, "end_date"),
        ({"start_date": "2026-01-01 00:00:00", "end_date": "2026-01-01 00:00:00"}, "end_date"),
        ({**FULL_YEAR, "include_comet_tokens": 2}, "include_comet_tokens"),
        ({**FULL_YEAR, "include_comet_tokens": 0.5}, "include_comet_tokens"),
        ({**FULL_YEAR, "include_all_emails": "1.0"}, "include_all_emails"),
        ({**FULL_YEAR, "include_all_emails": "yes"}, "include_all_emails"),
        ({**FULL_YEAR, "format": "csv"}, "format"),
    ],
)
def test_bad_parameters_answer_422(owner, payload: dict, field: str) -> None:
    response = owner.client.post(CREATE, payload, format="json")
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["message"]


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_answers_422_and_malformed_json_400(owner) -> None:
    assert owner.client.post(CREATE, [1, 2], format="json").status_code == 422
    response = owner.client.generic("POST", CREATE, "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


@pytest.mark.django_db
def test_it_needs_a_key_with_read_contacts(owner, anon) -> None:
    assert anon.post(CREATE, FULL_YEAR, format="json").status_code == 401
    writer = keyed_client(owner.workspace, (SCOPE_WRITE_CONTACTS,))
    assert writer.client.post(CREATE, FULL_YEAR, format="json").status_code == 403


@pytest.mark.django_db
def test_creating_is_limited_to_five_per_minute_and_reading_to_thirty(owner) -> None:
    wait_for_a_fresh_window()  # all 37 requests in one minute's window
    ids = []
    for _ in range(5):
        response = owner.client.post(CREATE, FULL_YEAR, format="json")
        assert response.status_code == 202 and response["X-RateLimit-Limit"] == "5"
        ids.append(response.json()["id"])
    limited = owner.client.post(CREATE, FULL_YEAR, format="json")
    assert limited.status_code == 429 and "Retry-After" in limited
    for _ in range(30):
        response = owner.client.get(f"{CREATE}/{ids[0]}")
        assert response.status_code == 200 and response["X-RateLimit-Limit"] == "30"
        assert response.json()["status"] == "queued" and "download_url" not in response.json()
    assert owner.client.get(f"{CREATE}/{ids[0]}").status_code == 429


@pytest.mark.django_db
def test_another_workspaces_export_reads_exactly_as_one_that_does_not_exist(owner, stranger) -> None:
    job_id = owner.client.post(CREATE, FULL_YEAR, format="json").json()["id"]
    theirs = stranger.client.get(f"{CREATE}/{job_id}")
    missing = stranger.client.get(f"{CREATE}/00000000-0000-0000-0000-000000000000")
    malformed = stranger.client.get(f"{CREATE}/not-a-uuid")
    assert theirs.status_code == missing.status_code == malformed.status_code == 404
    assert theirs.json() == missing.json() == malformed.json()
    assert owner.client.get(f"{CREATE}/{job_id}").status_code == 200
