"""GET /v1/contacts/export with created_after / created_before at any offset ISO 8601
allows (Python: up to ±23:59) and at the ends of the calendar: an answer, never a
500. PostgreSQL takes offsets only up to ±15:59, so the bounds are compared in UTC.
Found by the Schemathesis run (tests/leadlex/test_openapi_conformance.py)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.exports.factories import make_contacts
from tests.support.files import csv_records, streamed

pytestmark = pytest.mark.django_db


def _ids(owner, query: str) -> list[str]:
    response = owner.client.get("/v1/contacts/export?" + query)
    assert response.status_code == 200, response.content
    return [row[0] for row in csv_records(streamed(response))[1:]]


@pytest.mark.parametrize(
    ("after", "before", "matches"),
    [
        ("2026-04-15T09:00:00-17:39", "4953-04-26T10:29:06-21:22", 0),  # after 02:39 UTC the next day: none
        ("2026-04-14T12:00:00-20:00", "2026-04-16T09:00:00+23:59", 3),  # 08:00 .. 09:01 UTC: all three
        ("0374-09-29T15:16:27-17:39", "9999-12-31T23:59:59-23:59", 3),  # before lies past year 9999 in UTC
        ("0001-01-01T00:00:00+05:00", "2026-04-15T09:00:01+00:00", 1),  # after lies before year 1 in UTC
    ],
)
def test_any_offset_and_the_calendars_ends_filter_as_the_instants_they_name(
    owner,
    after: str,
    before: str,
    matches: int,
) -> None:
    contacts = make_contacts(owner.workspace, 3)  # 09:00:00, :01, :02 UTC on 2026-04-15
    ids = _ids(owner, f"created_after={quote(after)}&created_before={quote(before)}")
    assert ids == [str(c.pk) for c in contacts][:matches]
