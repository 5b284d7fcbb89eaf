"""POST /v1/import/contacts/preview: what an import of a file would read — encoding,
delimiter, header, first rows — and a proposed mapping with its reasons, on the headers
of real exports. Nothing is written; the proposal imports as it is."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.contrib.auth.models import User

from contacts.models import Contact
from imports.models import ImportJob

pytestmark = pytest.mark.django_db

URL = "/v1/import/contacts"
PREVIEW = f"{URL}/preview"

HUBSPOT = (
    "Record ID,First Name,Last Name,Email,Phone Number,Company Name,Job Title,Create Date,Lifecycle Stage\r\n"
    "101,Jürgen,Müller,juergen@example.de,+49 30 1234567,Bäckerei Groß,Inhaber,2024-03-05 10:00,lead\r\n"
    "102,Hélène,Lefèvre,helene@example.fr,+33 1 23 45 67 89,Crème SA,CEO,2024-03-06 11:30,customer\r\n"
)
SALESFORCE = (
    "First Name,Last Name,Title,Account Name,Email,Phone,Mobile,Mailing City\r\n"
    "Ada,Lovelace,Analyst,Analytical Engines,ada@example.com,+44 20 7946 0018,+44 7700 900123,London\r\n"
)
CLOSE = (
    "lead_name,contact_name,title,primary_email,primary_phone\r\n"
    "Acme,Grace Hopper,Admiral,grace@example.com,+1 415 555 0100\r\n"
)
EXCEL_DE = (
    "Name;E-Mail-Adresse;Telefon;Firma;Position\r\nJürgen Müller;juergen@example.de;+49 30 1234567;Groß GmbH;Chef\r\n"
)


def preview(owner, body: bytes, content_type: str = "text/csv", query: str = ""):
    response = owner.client.post(f"{PREVIEW}{query}", data=body, content_type=content_type)
    assert response.status_code == 200, response.content
    return response.json()["data"]


@pytest.mark.parametrize(
    ("text", "encoding", "expected"),
    [
        (
            HUBSPOT,
            "cp1252",
            {
                "First Name": "first_name",
                "Last Name": "last_name",
                "Email": "email",
                "Phone Number": "phone",
                "Company Name": "company_name",
                "Job Title": "job_title",
                "Create Date": "created_at",
            },
        ),
        (
            SALESFORCE,
            "utf-8",
            {
                "First Name": "first_name",
                "Last Name": "last_name",
                "Title": "job_title",
                "Account Name": "company_name",
                "Email": "email",
                "Phone": "phone",
            },
        ),
        (
            CLOSE,
            "utf-8",
            {
                "lead_name": "company_name",
                "contact_name": "full_name",
                "title": "job_title",
                "primary_email": "email",
                "primary_phone": "phone",
            },
        ),
        (
            EXCEL_DE,
            "cp1252",
            {
                "Name": "full_name",
                "E-Mail-Adresse": "email",
                "Telefon": "phone",
                "Firma": "company_name",
                "Position": "job_title",
            },
        ),
    ],
    ids=["hubspot", "salesforce", "close", "excel-de"],
)
def test_real_export_headers_get_a_mapping_that_imports_as_proposed(owner, text, encoding, expected) -> None:
    data = preview(owner, text.encode(encoding))
    assert data["proposed_mapping"] == expected
    assert data["encoding"] == ("windows-1252" if encoding == "cp1252" else "utf-8")
    assert data["header"] == text.splitlines()[0].split(";" if ";" in text.splitlines()[0] else ",")
    assert data["row_count"] == len(text.splitlines()) - 1
    assert all(column["reason"] for column in data["columns"])
    assert not Contact.objects.exists() and not ImportJob.objects.exists()  # a preview writes nothing

    body = {"csv": text, "mapping": data["proposed_mapping"]}
    response = owner.client.post(URL, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["errors"] == []
    names = set(Contact.objects.values_list("full_name", flat=True))
    assert names and all(" " in name for name in names)  # first + last joined, or the whole name


def test_the_preview_shows_decoded_rows_and_why_columns_were_left_out(owner) -> None:
    data = preview(owner, SALESFORCE.encode())
    assert data["rows"] == [SALESFORCE.splitlines()[1].split(",")]
    by_column = {column["column"]: column for column in data["columns"]}
    assert by_column["Mobile"]["field"] is None and "'Phone' is mapped to phone" in by_column["Mobile"]["reason"]
    assert by_column["Mailing City"]["field"] is None and "custom." in by_column["Mailing City"]["reason"]
    assert data["delimiter"] == "," and data["delimiter_reason"] and data["encoding_reason"]

    de = preview(owner, EXCEL_DE.encode("cp1252"))
    assert de["rows"][0][0] == "Jürgen Müller" and de["delimiter"] == ";"
    assert "windows-1252" in de["encoding_reason"] or de["encoding"] == "windows-1252"


def test_a_headerless_file_and_a_workbook(owner) -> None:
    data = preview(
        owner, b"Ada Lovelace,ada@example.com\r\nGrace Hopper,grace@example.com\r\n", query="?has_header=false"
    )
    assert data["header"] is None and len(data["rows"]) == 2
    assert data["proposed_mapping"] == {"1": "email"}  # found from the values

    book = openpyxl.Workbook()
    book.active.append(["Full Name", "Email"])
    book.active.append(["Ada Lovelace", "ada@example.com"])
    buffer = io.BytesIO()
    book.save(buffer)
    data = preview(owner, buffer.getvalue(), content_type="application/octet-stream")
    assert (data["format"], data["encoding"], data["delimiter"]) == ("xlsx", None, None)
    assert data["proposed_mapping"] == {"Full Name": "full_name", "Email": "email"}


def test_a_preview_refuses_what_an_import_would_refuse_and_rows(owner) -> None:
    response = owner.client.post(
        PREVIEW, data="Name\r\nJ\xfcrgen\r\n".encode("latin-1"), content_type="text/csv; charset=utf-8"
    )
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "encoding"
    response = owner.client.post(PREVIEW, {"rows": [{"email": "a@example.com"}]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert owner.client.post(PREVIEW, data=b"email\r\n", content_type="text/csv").status_code == 200


def test_a_file_whose_header_names_no_field_is_refused_with_the_mapping_that_would_do(owner) -> None:
    response = owner.client.post(URL, data=SALESFORCE.encode(), content_type="text/csv")
    assert response.status_code == 200  # "Email" and "Phone" name fields as they are
    response = owner.client.post(URL, data=EXCEL_DE.encode("cp1252"), content_type="text/csv")
    assert response.status_code == 400, response.content
    message = response.json()["error"]["message"]
    assert '"E-Mail-Adresse":"email"' in message and '"Name":"full_name"' in message, message


def test_the_admin_mapping_step_is_prefilled_with_the_proposal(client, workspace) -> None:
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw-123456789"))
    response = client.post(
        "/admin/imports/importjob/upload/",
        {"workspace": workspace.pk, "file": io.BytesIO(EXCEL_DE.encode("cp1252")), "has_header": "on"},
    )
    page = client.get(response["Location"]).content.decode()
    for field in ("full_name", "email", "phone", "company_name", "job_title"):
        assert f'value="{field}"' in page, field
    assert "is a common name for" in page
