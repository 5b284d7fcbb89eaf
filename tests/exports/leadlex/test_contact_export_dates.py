"""The dates POST /v1/contacts/exports accepts: the documented ``YYYY-MM-DD HH:MM:SS``
(workspace time zone) and ISO 8601 date-times, with an offset or ``Z`` (that
instant) or without one (workspace time zone); anything else is a 422 naming
the field and both forms."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from tests.exports.factories import make_contacts
from tests.support.files import download, ndjson_records
from tests.support.worker import wait_job

CREATE = "/v1/contacts/exports"


def _exported_ids(client, job_id: str) -> list[str]:
    wait_job(job_id)
    body = client.get(f"{CREATE}/{job_id}").json()
    assert body["status"] == "completed", body
    return [r["id"] for r in ndjson_records(gzip.decompress(download(body["download_url"])[2]))]


@pytest.mark.django_db(transaction=True)
def test_iso_8601_with_z_or_an_offset_is_that_instant_whatever_the_workspace_zone(owner, celery_worker) -> None:
    ws = owner.workspace
    ws.timezone = "America/New_York"
    ws.save()
    times = [
        datetime(2020, 1, 1, 0, 0, 0),
        datetime(2020, 1, 1, 0, 0, 1),
        datetime(2020, 1, 1, 4, 59, 59, 900000),
        datetime(2020, 1, 1, 5, 0, 0),
        datetime(2020, 1, 1, 5, 0, 1),
    ]
    made = [make_contacts(ws, 1, start=t.replace(tzinfo=UTC))[0] for t in times]
    # 00:00:01Z to 05:00:00+00:00 (= 00:00:00 in New York), the whole last second included.
    response = owner.client.post(
        CREATE, {"start_date": "2020-01-01T00:00:01Z", "end_date": "2020-01-01T00:00:00-05:00"}, format="json"
    )
    assert response.status_code == 202, response.content
    assert _exported_ids(owner.client, response.json()["id"]) == [str(c.id) for c in made[1:4]]


@pytest.mark.django_db(transaction=True)
def test_iso_8601_without_an_offset_is_read_in_the_workspace_zone_like_the_seed_form(owner, celery_worker) -> None:
    ws = owner.workspace
    ws.timezone = "Europe/Berlin"  # UTC+1 in January
    ws.save()
    times = [
        datetime(2020, 1, 1, 8, 59, 59),
        datetime(2020, 1, 1, 9, 0, 0),
        datetime(2020, 1, 1, 10, 0, 0, 500000),
        datetime(2020, 1, 1, 10, 0, 1),
    ]
    made = [make_contacts(ws, 1, start=t.replace(tzinfo=UTC))[0] for t in times]
    iso = owner.client.post(
        CREATE, {"start_date": "2020-01-01T10:00:00", "end_date": "2020-01-01T11:00:00"}, format="json"
    )
    seed = owner.client.post(
        CREATE, {"start_date": "2020-01-01 10:00:00", "end_date": "2020-01-01 11:00:00"}, format="json"
    )
    assert iso.status_code == seed.status_code == 202, (iso.content, seed.content)
    expected = [str(c.id) for c in made[1:3]]
    assert _exported_ids(owner.client, iso.json()["id"]) == expected
    assert _exported_ids(owner.client, seed.json()["id"]) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "start, end",
    [
        ("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"),
        ("2020-01-01T00:00:00z", "2020-01-02T00:00:00.250+02:00"),
        ("2020-01-01T00:00:00+0530", "2020-01-02 00:00:00"),
        ("2020-01-01T00:00:00.123456", "2020-01-02T00:00"),
        (" 2020-01-01 00:00:00 ", "2020-01-02T00:00:00Z"),
    ],
)
def test_every_accepted_form_queues_the_export(owner, start: str, end: str) -> None:
    response = owner.client.post(CREATE, {"start_date": start, "end_date": end}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01",
        "2020-01-01T25:00:00Z",
        "2020-02-30T00:00:00Z",
        "01/02/2020 10:00:00",
        "2020-01-01T00:00:00+25:00",
        "yesterday",
        "2020-01-01 00:00:00Z junk",
        20200101,
        ["2020-01-01T00:00:00Z"],
    ],
)
def test_a_bad_date_answers_422_naming_the_field_and_both_accepted_forms(owner, value: object) -> None:
    response = owner.client.post(CREATE, {"start_date": value, "end_date": "2020-01-02T00:00:00Z"}, format="json")
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"] == {"field": "start_date"}
    assert error["message"].startswith("start_date: ")
    assert "YYYY-MM-DD HH:MM:SS" in error["message"] and "ISO 8601" in error["message"], error["message"]


@pytest.mark.django_db
def test_an_end_at_or_before_the_start_across_forms_answers_422(owner) -> None:
    # 2020-01-01 00:00:00 in UTC (the fixture's zone) is the same instant as 01:00+01:00.
    response = owner.client.post(
        CREATE, {"start_date": "2020-01-01 00:00:00", "end_date": "2020-01-01T01:00:00+01:00"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "end_date"}
