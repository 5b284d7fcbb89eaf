"""The admin (job list, error file, upload + mapping form) and the import_contacts command."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from contacts.models import Contact
from imports.models import ImportJob
from leadlex import storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("admin", "admin@example.com", "pw-123456789")
    client.force_login(user)
    return client


def test_upload_form_maps_columns_and_starts_an_import(staff, workspace):
    csv_bytes = b"Name,Mail,Plan\r\nJane,jane@acme.com,gold\r\nBob,bad-address,silver\r\n"
    response = staff.post(
        "/admin/imports/importjob/upload/",
        {"workspace": workspace.pk, "file": io.BytesIO(csv_bytes), "has_header": "on", "tags": "fair, 2024"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    page = staff.get(response["Location"])
    assert page.status_code == 200
    assert b"Mail" in page.content and b"jane@acme.com" in page.content
    response = staff.post(response["Location"], {"col_0": "full_name", "col_1": "email", "col_2": "custom.plan"})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert (job.status, job.created_count, job.error_count) == ("completed", 1, 1)
    assert job.upload.status == "expired" and not storage.exists(job.upload.key)  # the file went with the import
    assert job.created_by_user.username == "admin"
    jane = Contact.objects.get(workspace=workspace)
    assert jane.custom == {"plan": "gold"}
    assert set(jane.tags.values_list("name", flat=True)) == {"fair", "2024"}

    changelist = staff.get("/admin/imports/importjob/")
    assert changelist.status_code == 200
    assert job.public_id.encode() in changelist.content
    assert b"errors.csv" in changelist.content
    assert b"Import contacts from CSV" in changelist.content
    detail = staff.get(f"/admin/imports/importjob/{job.pk}/change/")
    assert detail.status_code == 200 and b"progress" in detail.content
    link = staff.get(f"/admin/imports/importjob/{job.pk}/errors/")
    assert link.status_code == 302 and ("/files/" in link["Location"] or "errors.csv" in link["Location"])


def test_mapping_step_reports_a_bad_field_name(staff, workspace):
    response = staff.post(
        "/admin/imports/importjob/upload/",
        {"workspace": workspace.pk, "file": io.BytesIO(b"a,b\n1,2\n"), "has_header": "on"},
    )
    form = staff.get(response["Location"]).content.decode()
    # A choice per column: every field, first and last name, the column as a custom field, or none.
    assert '<select name="col_0"' in form and '<option value="job_title">' in form
    assert '<option value="first_name">' in form and '<option value="custom.a">custom.a (custom field)' in form
    page = staff.post(response["Location"], {"col_0": "shoe_size"})  # not one of them: a forged form
    assert page.status_code == 200
    assert b"Select a valid choice" in page.content
    assert ImportJob.objects.count() == 0


def test_job_list_is_a_fixed_number_of_queries(staff, workspace, django_assert_max_num_queries):
    for _ in range(5):
        ImportJob.objects.create(workspace=workspace, source="rows")
    with django_assert_max_num_queries(12):
        assert staff.get("/admin/imports/importjob/").status_code == 200


def test_import_contacts_command_imports_a_file_with_a_mapping(tmp_path, workspace):
    path = tmp_path / "contacts.csv"
    path.write_text("Mail,Name\njane@acme.com,Jane\nbob@acme.com,Bob\nbad,Bad\n", encoding="utf-8-sig")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_contacts",
        str(path),
        "--workspace",
        "Acme",
        "--mapping",
        "Mail=email,Name=full_name",
        "--tags",
        "cli",
        stdout=out,
        stderr=err,
    )
    assert "2 created" in out.getvalue() and "1 errors" in out.getvalue()
    assert "rows" in err.getvalue()  # the progress bar
    assert set(Contact.objects.filter(tags__name="cli").values_list("email", flat=True)) == {
        "jane@acme.com",
        "bob@acme.com",
    }
    path.write_text("Mail,Name\njane@acme.com,Jane Updated\n")
    out = io.StringIO()
    call_command(
        "import_contacts",
        str(path),
        "--workspace",
        "Acme",
        "--mapping",
        '{"Mail": "email", "Name": "full_name"}',
        "--update-existing",
        "--no-progress",
        stdout=out,
    )
    assert "1 updated" in out.getvalue()
    assert Contact.objects.get(email="jane@acme.com").full_name == "Jane Updated"


def test_import_contacts_command_positional_and_errors(tmp_path, workspace):
    path = tmp_path / "x.csv"
    path.write_text("jane@acme.com,Jane\n")
    out = io.StringIO()
    call_command(
        "import_contacts",
        str(path),
        "--workspace",
        "Acme",
        "--no-header",
        "--mapping",
        "0=email,1=full_name",
        "--no-progress",
        stdout=out,
    )
    assert "1 created" in out.getvalue()
    with pytest.raises(CommandError, match="No workspace"):
        call_command("import_contacts", str(path), "--workspace", "Nope")
    with pytest.raises(CommandError, match="mapping"):
        call_command("import_contacts", str(path), "--workspace", "Acme", "--no-header", "--no-progress")
