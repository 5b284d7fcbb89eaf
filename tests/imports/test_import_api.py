"""POST /v1/import/contacts and GET /v1/import/contacts/{job_id} through HTTP."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from contacts.models import Contact, ContactEmail, Tag
from imports.models import ImportJob

URL = "/v1/import/contacts"

pytestmark = pytest.mark.django_db


def post(keyed, body, **extra):
    return keyed.client.post(URL, body, format="json", **extra)


def test_it_imports_rows_synchronously_and_answers_the_contract_shape(owner):
    response = post(
        owner,
        {
            "rows": [
                {"full_name": "Jane Doe", "email": "jane@acme.com"},
                {"full_name": "Bob Smith", "email": "bob@beta.com"},
            ]
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data"}
    data = body["data"]
    assert set(data) == {"job_id", "status", "created_count", "updated_count", "skipped_count", "errors"}
    assert data["status"] == "completed"
    assert data["job_id"].startswith("imp_")
    assert (data["created_count"], data["updated_count"], data["skipped_count"], data["errors"]) == (2, 0, 0, [])
    assert set(Contact.objects.filter(workspace=owner.workspace).values_list("email", flat=True)) == {
        "jane@acme.com",
        "bob@beta.com",
    }
    assert ContactEmail.objects.filter(contact__workspace=owner.workspace, is_primary=True).count() == 2
    assert response["X-RateLimit-Limit"] == "60"


def make_contact(workspace, **fields):
    contact = Contact.objects.create(workspace=workspace, **fields)
    if contact.email:
        ContactEmail.objects.create(contact=contact, email=contact.email, is_primary=True)
    return contact


def test_it_matches_existing_contacts_by_email_case_insensitively_and_skips_them_by_default(owner):
    existing = make_contact(owner.workspace, full_name="Old Name", email="Jane@Acme.com")
    response = post(owner, {"rows": [{"full_name": "New Name", "email": "jane@ACME.com"}]})
    data = response.json()["data"]
    assert (data["created_count"], data["updated_count"], data["skipped_count"]) == (0, 0, 1)
    existing.refresh_from_db()
    assert existing.full_name == "Old Name"
    assert Contact.objects.filter(workspace=owner.workspace).count() == 1


def test_it_updates_email_matches_when_update_existing_is_true(owner):
    existing = make_contact(owner.workspace, full_name="Old Name", email="jane@acme.com", job_title="CTO")
    response = post(owner, {"rows": [{"full_name": "New Name", "email": "JANE@acme.com"}], "update_existing": True})
    data = response.json()["data"]
    assert (data["created_count"], data["updated_count"], data["skipped_count"]) == (0, 1, 0)
    existing.refresh_from_db()
    assert existing.full_name == "New Name"
    assert existing.job_title == "CTO"  # fields the row does not carry are left alone


def test_it_matches_by_normalised_phone(owner):
    existing = make_contact(owner.workspace, full_name="Phone Person", phone="+14155550100")
    response = post(owner, {"rows": [{"full_name": "Renamed", "phone": "(415) 555-0100"}], "update_existing": True})
    data = response.json()["data"]
    assert (data["created_count"], data["updated_count"]) == (0, 1), data
    existing.refresh_from_db()
    assert existing.full_name == "Renamed"
    skipped = post(owner, {"rows": [{"full_name": "Again", "phone": "+1 415 555 0100"}]}).json()["data"]
    assert skipped["skipped_count"] == 1


def test_it_stores_phones_normalised_to_e164(owner):
    post(owner, {"rows": [{"full_name": "A", "phone": "(415) 555-0199"}]})
    assert Contact.objects.get(workspace=owner.workspace).phone == "+14155550199"


def test_tags_are_added_to_every_imported_row_but_not_to_skipped_ones(owner):
    make_contact(owner.workspace, email="old@acme.com")
    response = post(
        owner,
        {
            "rows": [{"email": "a@acme.com", "tags": ["vip"]}, {"email": "b@acme.com"}, {"email": "old@acme.com"}],
            "tags": ["expo-2024", "lead"],
        },
    )
    assert response.json()["data"]["skipped_count"] == 1
    a = Contact.objects.get(email="a@acme.com")
    b = Contact.objects.get(email="b@acme.com")
    old = Contact.objects.get(email="old@acme.com")
    assert set(a.tags.values_list("name", flat=True)) == {"vip", "expo-2024", "lead"}
    assert set(b.tags.values_list("name", flat=True)) == {"expo-2024", "lead"}
    assert old.tags.count() == 0
    assert Tag.objects.filter(workspace=owner.workspace).count() == 3


def test_a_bad_row_is_reported_and_skipped_without_aborting_the_good_rows(owner):
    response = post(
        owner,
        {
            "rows": [
                {"full_name": "Good", "email": "good@acme.com"},
                {"full_name": "Bad", "email": "not-an-email"},
                {"full_name": "Bad phone", "phone": "12"},
                {"full_name": "Bad url", "email": "u@acme.com", "linkedin_url": "ht!tp://x y"},
                {"full_name": "Bad date", "email": "d@acme.com", "created_at": "yesterday"},
                "not an object",
                {"job_title": "nobody"},
                {"full_name": "Good 2", "email": "good2@acme.com", "created_at": "2020-01-02T03:04:05Z"},
            ]
        },
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["created_count"] == 2
    errors = {(e["row"], e["field"], e["code"]) for e in data["errors"]}
    assert errors == {
        (2, "email", "invalid_email"),
        (3, "phone", "invalid_phone"),
        (4, "linkedin_url", "invalid_url"),
        (5, "created_at", "invalid_datetime"),
        (6, "", "invalid_row"),
        (7, "", "missing_identity"),
    }
    assert all(set(e) == {"row", "field", "code", "message"} and e["message"] for e in data["errors"])
    assert Contact.objects.get(email="good2@acme.com").created_at.year == 2020


def test_duplicates_inside_one_file_the_later_row_updates_the_earlier(owner):
    response = post(
        owner,
        {
            "rows": [
                {"full_name": "First", "email": "dup@acme.com", "job_title": "CEO"},
                {"full_name": "Second", "email": "DUP@acme.com"},
                {"full_name": "Phone", "phone": "+14155550123"},
                {"full_name": "Phone later", "phone": "4155550123"},
            ]
        },
    )
    data = response.json()["data"]
    assert (data["created_count"], data["updated_count"], data["skipped_count"]) == (2, 2, 0)
    contact = Contact.objects.get(email__iexact="dup@acme.com")
    assert (contact.full_name, contact.job_title) == ("Second", "CEO")
    assert Contact.objects.get(phone="+14155550123").full_name == "Phone later"


def test_csv_with_header_mapping_ignores_unknown_columns(owner):
    csv_text = "Full Name,E-mail,Favourite colour\nJane Doe,jane@acme.com,blue\n"
    response = post(owner, {"csv": csv_text, "mapping": {"Full Name": "full_name", "E-mail": "email"}})
    assert response.status_code == 200, response.content
    assert response.json()["data"]["created_count"] == 1
    contact = Contact.objects.get(workspace=owner.workspace)
    assert (contact.full_name, contact.email, contact.custom) == ("Jane Doe", "jane@acme.com", {})


def test_csv_without_mapping_maps_headers_that_are_field_names(owner):
    csv_text = 'full_name,email,phone,tags,custom.plan,shoe_size\nJane,jane@acme.com,+14155550111,"a, b",gold,44\n'
    response = post(owner, {"csv": csv_text})
    assert response.json()["data"]["created_count"] == 1
    contact = Contact.objects.get(workspace=owner.workspace)
    assert contact.phone == "+14155550111"
    assert contact.custom == {"plan": "gold"}
    assert set(contact.tags.values_list("name", flat=True)) == {"a", "b"}


def test_csv_positional_mapping_without_header(owner):
    csv_text = "jane@acme.com,Jane Doe,ignored\nbob@acme.com,Bob,ignored\n"
    response = post(owner, {"csv": csv_text, "has_header": False, "mapping": {"0": "email", "1": "full_name"}})
    data = response.json()["data"]
    assert data["created_count"] == 2, data
    assert Contact.objects.get(email="bob@acme.com").full_name == "Bob"


def test_csv_row_numbers_count_the_header_as_row_one(owner):
    csv_text = "email\r\ngood@acme.com\r\nbad\r\n"
    data = post(owner, {"csv": csv_text}).json()["data"]
    assert [(e["row"], e["code"]) for e in data["errors"]] == [(3, "invalid_email")]
    data = post(owner, {"csv": "bad\n", "has_header": False, "mapping": {"0": "email"}}).json()["data"]
    assert data["errors"][0]["row"] == 1


def test_csv_with_bom_crlf_and_quoted_multiline_fields(owner):
    csv_text = (
        '\ufefffull_name,email,job_title\r\n"Jane\r\nDoe",jane@acme.com,"Head of ""Sales"""\r\nBob,bob@acme.com,CTO\r\n'
    )
    data = post(owner, {"csv": csv_text}).json()["data"]
    assert data["created_count"] == 2 and data["errors"] == []
    jane = Contact.objects.get(email="jane@acme.com")
    assert jane.full_name == "Jane\r\nDoe"
    assert jane.job_title == 'Head of "Sales"'


def test_malformed_csv_gives_row_errors_and_imports_the_rest(owner):
    csv_text = (
        "full_name,email\n"
        "Good,good@acme.com\n"
        "Long,long@acme.com,extra\n"
        'Quote,"unterminated@acme.com\n'
        "After,after@acme.com\n"
    )
    response = post(owner, {"csv": csv_text})
    assert response.status_code == 200
    data = response.json()["data"]
    assert [(e["row"], e["code"]) for e in data["errors"]] == [(3, "too_many_columns"), (4, "malformed_csv")]
    assert set(Contact.objects.values_list("email", flat=True)) == {"good@acme.com", "after@acme.com"}


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "rows"),
        ({"rows": "nope"}, "rows"),
        ({"rows": [], "csv": "email\n"}, "rows"),
        ({"csv": 5}, "csv"),
        ({"csv": "email\n", "mapping": ["email"]}, "mapping"),
        ({"csv": "email\n", "mapping": {"email": "shoe_size"}}, "mapping"),
        ({"csv": "email\n", "mapping": {"E-mail": "email"}}, "mapping"),
        ({"csv": "a,b\n", "has_header": False, "mapping": {"a": "email"}}, "mapping"),
        ({"csv": "a,b\n", "has_header": False}, "mapping"),
        ({"csv": "colour\nblue\n"}, "mapping"),
        ({"rows": [], "update_existing": "maybe"}, "update_existing"),
        ({"rows": [], "tags": 5}, "tags"),
        ({"rows": [], "colour": "blue"}, "colour"),
    ],
)
def test_bad_parameters_answer_400_validation_error(owner, body, field):
    response = post(owner, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"]


def test_more_than_a_million_rows_is_refused(owner, monkeypatch):
    import imports.services as services

    monkeypatch.setattr(services, "MAX_ROWS", 3)
    response = post(owner, {"rows": [{"email": f"{i}@acme.com"} for i in range(4)]})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["limit"] == 3


def test_the_real_limit_is_one_million():
    from imports.services import MAX_ROWS

    assert MAX_ROWS == 1_000_000


def test_it_needs_a_key_with_write_scope(anon, reader):
    assert anon.post(URL, {"rows": []}, format="json").status_code == 401
    response = reader.client.post(URL, {"rows": [{"email": "a@acme.com"}]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_permissions"


def test_body_over_the_limit_is_refused_with_413(owner, settings):
    settings.LEADLEX_MAX_BODY_BYTES = 1000
    response = post(owner, {"rows": [{"email": f"p{i}@acme.com"} for i in range(100)]})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Contact.objects.count() == 0


def test_text_csv_body_with_query_parameters(owner):
    response = owner.client.post(
        f"{URL}?mapping=Mail%3Demail,Name%3Dfull_name&tags=a,b&update_existing=true",
        data=b"Name,Mail\nJane,jane@acme.com\n",
        content_type="text/csv",
    )
    assert response.status_code == 200, response.content
    contact = Contact.objects.get(workspace=owner.workspace)
    assert (contact.full_name, contact.email) == ("Jane", "jane@acme.com")
    assert set(contact.tags.values_list("name", flat=True)) == {"a", "b"}


def test_multipart_upload_of_a_file(owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(
        "contacts.csv", b"\xef\xbb\xbfemail,full_name\r\njane@acme.com,Jane\r\n", content_type="text/csv"
    )
    response = owner.client.post(URL, {"file": upload, "tags": "fair"}, format="multipart")
    assert response.status_code == 200, response.content
    contact = Contact.objects.get(workspace=owner.workspace)
    assert contact.full_name == "Jane"
    assert list(contact.tags.values_list("name", flat=True)) == ["fair"]


def test_500_rows_complete_in_the_request(owner):
    response = post(owner, {"rows": [{"email": f"p{i}@acme.com"} for i in range(500)]})
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "completed"
    assert Contact.objects.filter(workspace=owner.workspace).count() == 500


def test_501_rows_are_queued_with_a_job_id(owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(owner, {"rows": [{"email": f"p{i}@acme.com"} for i in range(501)]})
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["status"] == "queued"
    assert (data["created_count"], data["updated_count"], data["skipped_count"], data["errors"]) == (0, 0, 0, [])
    assert len(callbacks) == 1  # the task is enqueued only after the job row commits
    job = ImportJob.objects.get()
    assert job.payload_key and job.total_rows == 501
    assert Contact.objects.count() == 0


def test_status_of_a_completed_import_with_errors_and_a_download_link(owner):
    rows = [{"email": f"p{i}@acme.com"} for i in range(3)] + [{"email": "bad"} for _ in range(150)]
    data = post(owner, {"rows": rows}).json()["data"]
    assert len(data["errors"]) == 100
    response = owner.client.get(f"{URL}/{data['job_id']}")
    assert response.status_code == 200
    status = response.json()["data"]
    assert status["status"] == "completed"
    assert status["created_count"] == 3
    assert status["error_count"] == 150
    assert status["processed_rows"] == status["total_rows"] == 153
    assert status["progress_percent"] == 100
    assert len(status["errors"]) == 100
    url = status["errors_url"]
    assert url
    download = owner.client.get(url.replace("http://testserver", ""))
    if download.status_code == 200 and hasattr(download, "streaming_content"):
        content = b"".join(download.streaming_content).decode()
    else:  # S3 profile: a presigned URL to the S3 server
        import requests

        content = requests.get(url, timeout=10).text
    lines = content.strip().splitlines()
    assert lines[0] == "row,field,code,message"
    assert len(lines) == 151
    assert lines[1].startswith("4,email,invalid_email,")


def test_errors_url_is_null_without_errors(owner):
    data = post(owner, {"rows": [{"email": "a@acme.com"}]}).json()["data"]
    assert owner.client.get(f"{URL}/{data['job_id']}").json()["data"]["errors_url"] is None


def test_another_workspaces_job_is_not_found(owner, stranger):
    data = post(owner, {"rows": [{"email": "a@acme.com"}]}).json()["data"]
    response = stranger.client.get(f"{URL}/{data['job_id']}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    for bad in ("imp_nothex", "12", "imp_" + "0" * 32):
        assert owner.client.get(f"{URL}/{bad}").status_code == 404


def test_an_import_never_touches_another_workspace(owner, stranger):
    theirs = make_contact(stranger.workspace, full_name="Theirs", email="same@acme.com")
    data = post(owner, {"rows": [{"full_name": "Mine", "email": "same@acme.com"}], "update_existing": True}).json()
    assert data["data"]["created_count"] == 1
    theirs.refresh_from_db()
    assert theirs.full_name == "Theirs"
    assert Contact.objects.filter(email="same@acme.com").count() == 2


def test_rows_may_name_lists_by_id_or_by_name_and_unknown_ids_are_row_errors(owner, stranger):
    from contacts.models import ContactList

    mine = ContactList.objects.create(workspace=owner.workspace, name="Customers")
    theirs = ContactList.objects.create(workspace=stranger.workspace, name="Secret")
    data = post(
        owner,
        {
            "rows": [
                {"email": "a@acme.com", "lists": [str(mine.id), "Prospects"]},
                {"email": "b@acme.com", "lists": [str(theirs.id)]},
            ]
        },
    ).json()["data"]
    assert data["created_count"] == 1
    assert [(e["row"], e["code"]) for e in data["errors"]] == [(2, "unknown_list")]
    contact = Contact.objects.get(email="a@acme.com")
    assert set(contact.lists.values_list("name", flat=True)) == {"Customers", "Prospects"}
    assert not theirs.contacts.exists()


def test_changing_an_email_by_phone_match_keeps_contact_emails_in_sync(owner):
    existing = make_contact(owner.workspace, email="old@acme.com", phone="+14155550100")
    post(owner, {"rows": [{"email": "new@acme.com", "phone": "+14155550100"}], "update_existing": True})
    existing.refresh_from_db()
    assert existing.email == "new@acme.com"
    emails = dict(ContactEmail.objects.filter(contact=existing).values_list("email", "is_primary"))
    assert emails == {"old@acme.com": False, "new@acme.com": True}


def test_the_openapi_document_describes_both_endpoints(client):
    paths = client.get("/v1/openapi.json").json()["paths"]
    post_body = paths["/v1/import/contacts"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", "multipart/form-data"} <= set(post_body)
    assert "get" in paths["/v1/import/contacts/{job_id}"]


def test_the_sweeper_drops_expired_idempotency_keys(owner):
    from datetime import timedelta

    from django.utils import timezone

    from imports.engine import import_jobs_sweep
    from imports.models import ImportIdempotencyKey

    post(owner, {"rows": [{"email": "a@acme.com"}]}, HTTP_IDEMPOTENCY_KEY="old")
    post(owner, {"rows": [{"email": "b@acme.com"}]}, HTTP_IDEMPOTENCY_KEY="new")
    ImportIdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    import_jobs_sweep()
    assert list(ImportIdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_a_job_interrupted_too_often_is_failed_by_the_sweeper_with_import_failed(
    owner, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from imports.engine import MAX_ATTEMPTS, import_jobs_sweep
    from leadlex.models import WebhookDelivery

    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = True
    owner.client.post("/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["import.failed"]}, format="json")
    with django_capture_on_commit_callbacks(execute=False):
        data = post(owner, {"rows": [{"email": f"p{i}@acme.com"} for i in range(501)]}).json()["data"]
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(
        status="processing", attempts=MAX_ATTEMPTS, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=False):
        assert import_jobs_sweep(stale_after=timedelta(minutes=5)) == []
    status = owner.client.get(f"{URL}/{data['job_id']}").json()["data"]
    assert status["status"] == "failed" and "interrupted" in status["error"]
    assert WebhookDelivery.objects.filter(event="import.failed").count() == 1


def test_a_synchronous_import_whose_request_died_is_failed_not_requeued(owner):
    from datetime import timedelta

    from django.utils import timezone

    from imports.engine import import_jobs_sweep

    job = ImportJob.objects.create(
        workspace=owner.workspace,
        source="rows",
        status="processing",
        attempts=1,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    assert import_jobs_sweep(stale_after=timedelta(minutes=5)) == []
    job.refresh_from_db()
    assert job.status == "failed" and job.error


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
field_names = st.sampled_from(
    [
        "full_name",
        "email",
        "phone",
        "job_title",
        "company_name",
        "company_id",
        "linkedin_url",
        "tags",
        "custom",
        "created_at",
        "lists",
        "id",
        "nonsense",
    ]
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.dictionaries(field_names, json_values, max_size=5) | json_values, max_size=4),
    extra=st.dictionaries(
        st.sampled_from(["update_existing", "tags", "mapping", "has_header"]), json_values, max_size=2
    ),
)
def test_any_json_body_gets_an_answer_in_the_contract_never_a_500(owner, settings, rows, extra):
    settings.LEADLEX_RATE_LIMITS = {**settings.LEADLEX_RATE_LIMITS, "import_contacts": "100000/minute"}
    response = post(owner, {"rows": rows, **extra})
    assert response.status_code in (200, 400), response.content
    body = response.json()
    if response.status_code == 200:
        assert len(body["data"]["errors"]) + body["data"]["created_count"] + body["data"]["updated_count"] + body[
            "data"
        ]["skipped_count"] >= len(rows)
    else:
        assert body["error"]["code"] == "validation_error"


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet=st.sampled_from(list('ab@.,"\r\n {}[]:+1é\ufeff0')), max_size=120),
    header=st.sampled_from(["email,full_name,tags,custom,lists,created_at,phone\n", "", "\ufeffemail\r\n"]),
)
def test_any_csv_text_gets_an_answer_in_the_contract_never_a_500(owner, settings, text, header):
    settings.LEADLEX_RATE_LIMITS = {**settings.LEADLEX_RATE_LIMITS, "import_contacts": "100000/minute"}
    response = post(owner, {"csv": header + text})
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "validation_error"
