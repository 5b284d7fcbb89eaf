"""Files besides plain CSV: gzip (as a file or as the request's Content-Encoding), a zip
of one CSV, and Excel workbooks written here with openpyxl. They import to the same
contacts as the CSV; decompression is bounded, and a workbook's cells come in as the
text a person saw in them."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import zipfile

import openpyxl
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from contacts.models import Contact
from imports.formats import XLSX_CONTENT_TYPE
from imports.models import ImportJob
from tests.support.imports import WORKER_ENV
from tests.support.worker import QueueWorker, wait_for

pytestmark = pytest.mark.django_db

URL = "/v1/import/contacts"
PEOPLE = [
    ("Jürgen Müller", "juergen@example.de", "+49 30 1234567"),
    ("Hélène Lefèvre", "helene@example.fr", "+33 1 23 45 67 89"),
    ("Łukasz Wójcik", "lukasz@example.pl", "+48 22 123 45 67"),
]
CSV = ("Full Name;Email;Phone\r\n" + "".join(f"{n};{e};{p}\r\n" for n, e, p in PEOPLE)).encode("utf-8")
MAPPING = '{"Full Name": "full_name", "Email": "email", "Phone": "phone"}'


def imported(workspace) -> set[tuple[str, str]]:
    return set(Contact.objects.filter(workspace=workspace).values_list("full_name", "email"))


def expected() -> set[tuple[str, str]]:
    return {(n, e) for n, e, _p in PEOPLE}


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def workbook(
    rows: list[list[object]], *, sheets: tuple[str, ...] = ("Contacts",), formats: dict | None = None
) -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    first.title = sheets[0]
    for name in sheets[1:]:
        book.create_sheet(name)
    target = book[sheets[-1]]
    for row in rows:
        target.append(row)
    for coordinate, number_format in (formats or {}).items():
        target[coordinate].number_format = number_format
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        (gzip.compress(CSV), "text/csv", {"HTTP_CONTENT_ENCODING": "gzip"}),
        (gzip.compress(CSV), "application/gzip", {}),
        (zipped({"contacts.csv": CSV}), "application/zip", {}),
        (zipped({"__MACOSX/._contacts.csv": b"\x00\x05", "export/contacts.csv": CSV}), "application/octet-stream", {}),
    ],
    ids=["content-encoding-gzip", "gzip-file", "zip-file", "zip-from-a-mac"],
)
def test_compressed_bodies_import_like_the_csv_inside(owner, body, content_type, headers) -> None:
    response = owner.client.post(f"{URL}?mapping={MAPPING}", data=body, content_type=content_type, **headers)
    assert response.status_code == 200, response.content
    assert response.json()["data"]["created_count"] == 3
    assert imported(owner.workspace) == expected()
    job = ImportJob.objects.get()
    assert (job.params["encoding"], job.params["delimiter"]) == ("utf-8", ";")


def test_gz_and_zip_uploads_by_multipart(owner) -> None:
    for name, data in (("contacts.csv.gz", gzip.compress(CSV)), ("contacts.zip", zipped({"c.csv": CSV}))):
        upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
        response = owner.client.post(URL, {"file": upload, "mapping": MAPPING, "update_existing": "true"})
        assert response.status_code == 200, response.content
    assert imported(owner.workspace) == expected()
    assert ImportJob.objects.filter(params__compression="gzip").exists()
    assert ImportJob.objects.filter(params__compression="zip").exists()


def test_a_zip_with_several_files_or_a_broken_archive_is_a_400_saying_so(owner) -> None:
    two = zipped({"a.csv": CSV, "b.csv": CSV})
    response = owner.client.post(f"{URL}?mapping={MAPPING}", data=two, content_type="application/zip")
    assert response.status_code == 400, response.content
    assert "exactly one CSV" in response.json()["error"]["message"] and "a.csv" in response.json()["error"]["message"]
    cut = gzip.compress(CSV * 50)[:-40]
    response = owner.client.post(f"{URL}?mapping={MAPPING}", data=cut, content_type="application/gzip")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert not Contact.objects.exists()


@pytest.mark.parametrize("kind", ["gzip", "zip"])
def test_a_decompression_bomb_is_refused_without_expanding_it(owner, settings, kind) -> None:
    settings.LEADLEX_IMPORT_MAX_EXPANDED_BYTES = 32 * 1024 * 1024
    bomb_csv = b"email\r\n" + b"a" * (64 * 1024 * 1024)  # 64 MiB that compress to ~64 KiB
    body = gzip.compress(bomb_csv, 9) if kind == "gzip" else zipped({"bomb.csv": bomb_csv})
    assert len(body) < 1024 * 1024
    response = owner.client.post(URL, data=body, content_type=f"application/{kind}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "zip bomb" in error["message"], error
    assert not ImportJob.objects.exists()


def test_a_workbook_imports_the_text_its_cells_showed(owner) -> None:
    rows = [
        ["Full Name", "Email", "Phone", "Customer no", "Zip", "Signed up", "Score", "Share", "Active"],
        ["Jürgen Müller", "juergen@example.de", "+49 30 1234567", 4930123456789, 501, dt.datetime(2024, 3, 5), 0.5,
         0.125, True],
        ["Ada Lovelace", "ada@example.com", "+44 20 7946 0018", 12, "00501", dt.datetime(2024, 3, 5, 14, 30), 2, 1,
         False],
    ]  # fmt: skip
    data = workbook(
        rows, formats={"E2": "00000", "F2": "dd.mm.yyyy", "G2": "0.00", "H2": "0.0%", "F3": "yyyy-mm-dd hh:mm"}
    )
    mapping = (
        '{"Full Name": "full_name", "Email": "email", "Phone": "phone", "Customer no": "custom.number",'
        ' "Zip": "custom.zip", "Signed up": "custom.signed_up", "Score": "custom.score", "Share": "custom.share",'
        ' "Active": "custom.active"}'
    )
    response = owner.client.post(f"{URL}?mapping={mapping}", data=data, content_type=XLSX_CONTENT_TYPE)
    assert response.status_code == 200, response.content
    assert response.json()["data"]["created_count"] == 2, response.content
    juergen = Contact.objects.get(email="juergen@example.de")
    assert juergen.full_name == "Jürgen Müller"
    assert juergen.custom == {
        "number": "4930123456789",  # every digit of a number, never 4.93012E+12
        "zip": "00501",  # the zeros its format shows
        "signed_up": "2024-03-05",
        "score": "0.50",
        "share": "12.5%",
        "active": "TRUE",
    }
    ada = Contact.objects.get(email="ada@example.com")
    assert ada.custom == {
        "number": "12",
        "zip": "00501",  # typed as text: kept as typed
        "signed_up": "2024-03-05 14:30:00",
        "score": "2",
        "share": "1",
        "active": "FALSE",
    }
    job = ImportJob.objects.get()
    assert job.params["format"] == "xlsx" and job.params["encoding"] is None
    status = owner.client.get(f"{URL}/{job.public_id}").json()["data"]
    assert (status["encoding"], status["delimiter"]) == (None, None)


def test_a_workbooks_sheet_by_name_and_a_missing_one(owner) -> None:
    data = workbook([["email", "full_name"], ["ada@example.com", "Ada"]], sheets=("Notes", "People"))
    response = owner.client.post(f"{URL}?sheet=People", data=data, content_type="application/octet-stream")
    assert response.status_code == 200, response.content
    assert imported(owner.workspace) == {("Ada", "ada@example.com")}
    response = owner.client.post(f"{URL}?sheet=Kontakte", data=data, content_type=XLSX_CONTENT_TYPE)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["details"]["field"] == "sheet" and "Notes, People" in error["message"]
    response = owner.client.post(f"{URL}?encoding=utf-8", data=data, content_type=XLSX_CONTENT_TYPE)
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "encoding"


def test_the_command_imports_a_workbook_and_a_gzipped_csv(owner, tmp_path) -> None:
    book = tmp_path / "contacts.xlsx"
    book.write_bytes(workbook([["Full Name", "Email", "Phone"], *[list(p) for p in PEOPLE[:2]]]))
    packed = tmp_path / "more.csv.gz"
    packed.write_bytes(gzip.compress(CSV))
    for path in (book, packed):
        err = io.StringIO()
        call_command(
            "import_contacts",
            str(path),
            "--workspace",
            owner.workspace.name,
            "--mapping",
            MAPPING,
            "--update-existing",
            "--no-progress",
            stdout=io.StringIO(),
            stderr=err,
        )
        assert ("Excel workbook" if path == book else "gzip-compressed utf-8") in err.getvalue()
    assert imported(owner.workspace) == expected()


def test_the_admin_previews_a_workbook_and_imports_it(client, workspace) -> None:
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw-123456789"))
    data = workbook([["Full Name", "Email"], ["Jürgen Müller", "juergen@example.de"]], sheets=("Cover", "People"))
    response = client.post(
        "/admin/imports/importjob/upload/",
        {"workspace": workspace.pk, "file": SimpleUploadedFile("people.xlsx", data), "has_header": "on"},
    )
    assert response.status_code == 302
    mapping_url = response["Location"]
    page = client.get(mapping_url).content.decode()
    assert "Excel workbook" in page  # the first sheet, "Cover", is empty
    page = client.get(mapping_url, {"sheet": "People"}).content.decode()
    assert "Jürgen Müller" in page
    response = client.post(mapping_url, {"col_0": "full_name", "col_1": "email", "sheet": "People"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert imported(workspace) == {("Jürgen Müller", "juergen@example.de")}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["gzip", "xlsx"])
def test_a_queued_compressed_file_or_workbook_is_read_by_the_worker(owner, import_queue, kind) -> None:
    people = [(f"Jürgen Müller {i}", f"j{i}@example.de") for i in range(700)]
    if kind == "gzip":
        body = gzip.compress(("email,full_name\n" + "".join(f"{e},{n}\n" for n, e in people)).encode("cp1252"))
        content_type = "application/gzip"
    else:
        body = workbook([["email", "full_name"], *[[e, n] for n, e in people]])
        content_type = XLSX_CONTENT_TYPE
    worker = QueueWorker(f"imports-{kind}", import_queue, extra_env=WORKER_ENV)
    try:
        response = owner.client.post(URL, data=body, content_type=content_type)
        assert response.status_code == 202, response.content
        job_id = response.json()["data"]["job_id"].removeprefix("imp_")
        job = wait_for(
            lambda: (j := ImportJob.objects.get(pk=job_id)).is_finished and j, timeout=120, message="the import"
        )
    finally:
        worker.stop()
    assert (job.status, job.created_count, job.error_count) == ("completed", 700, 0), job.error
    assert imported(owner.workspace) == set(people)
