"""GET /v1/contacts/export: the streamed CSV export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.http import StreamingHttpResponse

from contacts.models import Contact
from leadlex.models import SCOPE_WRITE_CONTACTS, Workspace
from tests.conftest import basic_auth, keyed_client
from tests.exports.factories import BASE, add_to_list, company, make_contacts, tag
from tests.support.files import csv_records, streamed

pytestmark = pytest.mark.django_db

URL = "/v1/contacts/export"
DEFAULT_HEADER = [
    "id",
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "linkedin_url",
    "tags",
    "created_at",
]


def get_rows(client, query: str = "") -> tuple[list[str], list[list[str]], object]:
    response = client.get(URL + query)
    assert response.status_code == 200, response.content
    records = csv_records(streamed(response))
    return records[0], records[1:], response


def test_it_streams_the_default_columns_with_the_header_first(owner) -> None:
    contacts = make_contacts(owner.workspace, 3, linkedin_url="https://linkedin.com/in/x")
    tag(contacts[:1], "priority")
    tag(contacts[:1], "lead")
    response = owner.client.get(URL)
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="contacts-export.csv"'
    assert "Link" not in response
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-Request-ID"):
        assert header in response
    records = csv_records(streamed(response))
    assert records[0] == DEFAULT_HEADER
    first = records[1]
    assert first[0] == str(contacts[0].id)
    assert first[1:7] == [
        "Person 0",
        contacts[0].email,
        "+15550000000",
        "Engineer",
        "Acme Corp",
        "https://linkedin.com/in/x",
    ]
    assert first[7] == "lead,priority"  # one cell, comma-joined
    assert first[8] == "2026-04-15T09:00:00Z"
    assert [r[0] for r in records[1:]] == [str(c.id) for c in contacts]


def test_zero_rows_still_give_the_header(owner) -> None:
    header, rows, _ = get_rows(owner.client)
    assert header == DEFAULT_HEADER and rows == []


def test_fields_choose_and_order_the_columns(owner) -> None:
    contact = make_contacts(owner.workspace, 1, custom={"plan": "gold"})[0]
    contact.company = company(owner.workspace, "Globex Holdings")
    contact.save()
    header, rows, _ = get_rows(owner.client, "?fields=email,company_name,custom,updated_at")
    assert header == ["email", "company_name", "custom", "updated_at"]
    assert rows[0][:3] == [contact.email, "Globex Holdings", '{"plan": "gold"}']


@pytest.mark.parametrize(
    "query, field",
    [
        ("?fields=id,password", "fields"),
        ("?fields=,", "fields"),
        ("?limit=0", "limit"),
        ("?limit=50001", "limit"),
        ("?limit=ten", "limit"),
        ("?created_after=yesterday", "created_after"),
        ("?created_before=2026-13-01", "created_before"),
        ("?list_id=not-a-uuid", "list_id"),
        ("?cursor=%%%", "cursor"),
        ("?cursor=WzEsMl0", "cursor"),
    ],
)
def test_bad_parameters_answer_400_validation_error(owner, query: str, field: str) -> None:
    response = owner.client.get(URL + query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]


def test_unknown_parameter_is_refused(owner) -> None:
    response = owner.client.get(URL + "?sort=desc")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_created_after_and_before_without_offset_are_read_in_the_workspace_timezone_across_dst(owner) -> None:
    ws = owner.workspace
    ws.timezone = "America/New_York"  # DST starts 2026-03-08 02:00 local (07:00 UTC)
    ws.save()
    stamps = [datetime(2026, 3, 8, h, m, tzinfo=UTC) for h, m in [(6, 29), (6, 31), (7, 29), (7, 31)]]
    made = [make_contacts(ws, 1, start=s)[0] for s in stamps]
    # 01:30 EST = 06:30Z (before the change); 03:30 EDT = 07:30Z (after it).
    _, rows, _ = get_rows(owner.client, "?created_after=2026-03-08T01:30:00&created_before=2026-03-08T03:30:00")
    assert [r[0] for r in rows] == [str(made[1].id), str(made[2].id)]
    # An explicit offset wins over the workspace's zone.
    _, rows, _ = get_rows(owner.client, "?created_after=2026-03-08T07:30:00Z")
    assert [r[0] for r in rows] == [str(made[3].id)]
    # A bare date is local midnight.
    _, rows, _ = get_rows(owner.client, "?created_before=2026-03-08")
    assert rows == []


def test_created_before_must_follow_created_after(owner) -> None:
    response = owner.client.get(URL + "?created_after=2026-05-01&created_before=2026-04-01")
    assert response.status_code == 400


def test_every_repeated_tag_must_match_and_list_id_filters(owner) -> None:
    contacts = make_contacts(owner.workspace, 4)
    tag(contacts[:3], "lead")
    tag(contacts[1:], "vip")
    members = add_to_list(contacts[2:], "Q3 campaign")
    _, rows, _ = get_rows(owner.client, "?tag=lead&tag=vip")
    assert [r[0] for r in rows] == [str(contacts[1].id), str(contacts[2].id)]
    _, rows, _ = get_rows(owner.client, f"?tag=lead&list_id={members.id}")
    assert [r[0] for r in rows] == [str(contacts[2].id)]
    _, rows, _ = get_rows(owner.client, "?tag=nobody-has-this")
    assert rows == []


def test_awkward_values_round_trip_through_csv_reader(owner) -> None:
    awkward = ['He said "hi", then left', "two\nlines\r\nthree", "Zoë 漢字 🎉", "  padded  ", "a,b", "back\\slash"]
    contacts = make_contacts(owner.workspace, len(awkward))
    for contact, text in zip(contacts, awkward, strict=True):
        contact.full_name = text
        contact.job_title = text
    Contact.objects.bulk_update(contacts, ["full_name", "job_title"])
    _, rows, _ = get_rows(owner.client, "?fields=full_name,job_title")
    assert rows == [[t, t] for t in awkward]


def test_formula_cells_are_neutralised_but_phones_and_negative_numbers_are_not(owner) -> None:
    contacts = make_contacts(owner.workspace, 4)
    values = [
        ('=HYPERLINK("http://evil")', "+1-555-0100"),
        ("@SUM(A1)", "-42.5"),
        ("+cmd|'/C calc'!A0", ""),
        ("\tTabbed", "(555) 010-0100"),
    ]
    for contact, (name, phone) in zip(contacts, values, strict=True):
        contact.full_name, contact.phone = name, phone or None
    Contact.objects.bulk_update(contacts, ["full_name", "phone"])
    _, rows, _ = get_rows(owner.client, "?fields=full_name,phone")
    assert rows == [["'" + name, phone] for name, phone in values]


def _follow(client, url: str) -> tuple[list[list[str]], list[str]]:
    pages, seen = [], []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        records = csv_records(streamed(response))
        assert records[0] == ["id", "created_at"]
        pages.append([r[0] for r in records[1:]])
        seen += [r[0] for r in records[1:]]
        link = response.get("Link")
        if link:
            assert link.endswith('>; rel="next"')
            parts = urlsplit(link[1 : link.index(">")])
            url = parts.path + "?" + parts.query
        else:
            url = ""
    return pages, seen


def test_the_next_link_loses_and_repeats_no_row_when_many_share_created_at(owner) -> None:
    same = make_contacts(owner.workspace, 17, same_time=True)
    later = make_contacts(owner.workspace, 3, start=BASE + timedelta(seconds=5))
    pages, seen = _follow(owner.client, URL + "?fields=id,created_at&limit=6")
    assert [len(p) for p in pages] == [6, 6, 6, 2]
    expected = sorted(str(c.id) for c in same) + [str(c.id) for c in later]
    assert seen == expected


def test_a_page_ends_where_its_link_said_even_if_rows_are_added_meanwhile(owner) -> None:
    make_contacts(owner.workspace, 5)
    response = owner.client.get(URL + "?fields=id&limit=2")
    # Rows created while the body streams, sorting inside the page's range:
    make_contacts(owner.workspace, 2, start=BASE + timedelta(milliseconds=500))
    assert len(csv_records(streamed(response))) == 1 + 3  # they belong to the page, not past its end
    assert 'rel="next"' in response["Link"]


def test_limit_defaults_to_10000_and_goes_up_to_50000(owner) -> None:
    make_contacts(owner.workspace, 50_001, step=timedelta(milliseconds=1))
    _, rows, response = get_rows(owner.client, "?fields=id")
    assert len(rows) == 10_000 and 'rel="next"' in response["Link"]
    _, rows, response = get_rows(owner.client, "?fields=id&limit=50000")
    assert len(rows) == 50_000 and 'rel="next"' in response["Link"]
    assert owner.client.get(URL + "?limit=50001").status_code == 400


def test_keys_need_read_contacts_and_basic_auth_works(owner, anon) -> None:
    assert anon.get(URL).status_code == 401
    assert anon.get(URL).json()["error"]["code"] == "invalid_key"
    writer = keyed_client(owner.workspace, (SCOPE_WRITE_CONTACTS,))
    response = writer.client.get(URL)
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_permissions"
    anon.credentials(HTTP_AUTHORIZATION=basic_auth(owner.raw_key))
    assert anon.get(URL).status_code == 200


def test_an_inactive_workspace_gets_403_subscription_inactive(owner) -> None:
    Workspace.objects.filter(pk=owner.workspace.pk).update(is_active=False)
    response = owner.client.get(URL)
    assert response.status_code == 403 and response.json()["error"]["code"] == "subscription_inactive"


def test_it_allows_ten_exports_per_hour_per_workspace(owner, stranger) -> None:
    for i in range(10):
        response = owner.client.get(URL + "?fields=id")
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "10"
        assert response["X-RateLimit-Remaining"] == str(9 - i)
    response = owner.client.get(URL)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert "Retry-After" in response and "X-RateLimit-Reset" in response
    assert stranger.client.get(URL).status_code == 200  # per workspace


def test_another_workspace_sees_none_of_these_contacts_or_lists(owner, stranger) -> None:
    mine = make_contacts(owner.workspace, 3)
    theirs = make_contacts(stranger.workspace, 1)
    lst = add_to_list(mine, "mine")
    _, rows, _ = get_rows(stranger.client)
    assert [r[0] for r in rows] == [str(theirs[0].id)]
    response = stranger.client.get(URL + f"?list_id={lst.id}")
    assert response.status_code == 400  # exactly as a list that does not exist
    nonexistent = stranger.client.get(URL + "?list_id=00000000-0000-0000-0000-000000000000")
    assert nonexistent.status_code == 400
    assert response.json()["error"]["message"] == nonexistent.json()["error"]["message"]
