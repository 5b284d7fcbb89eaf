"""CSV files as people have them: UTF-8 with or without BOM, UTF-16, the Windows and ISO
code pages Excel writes, separated by , ; TAB or |. Each imports to the same contacts
through HTTP, the command and the admin; a byte that does not decode is never replaced
silently: a 400 when it is in the part the encoding is found from, its row's error after."""

from __future__ import annotations

import io

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command

from contacts.models import Contact
from imports.models import ImportJob
from tests.support.imports import WORKER_ENV
from tests.support.worker import QueueWorker, wait_for

pytestmark = pytest.mark.django_db

URL = "/v1/import/contacts"

WESTERN = [
    ("Jürgen Müller", "juergen@example.de", "Bäckerei Groß & Söhne"),
    ("Hélène Lefèvre", "helene@example.fr", "Crème, Brûlée; et Cie"),  # a comma and a semicolon in a quoted field
    ("José Muñoz", "jose@example.es", "Peña Ibáñez"),
    ("Jérôme Noël", "jerome@example.fr", "Œuvres Ÿ"),  # Œ Ÿ: bytes where Windows-1252 and ISO-8859-15 differ
    ("Ada Lovelace", "ada@example.com", "Analytical | Engines"),
]
CENTRAL = [
    ("Łukasz Wójcik", "lukasz@example.pl", "Zakład Źródło"),
    ("Jiří Dvořák", "jiri@example.cz", "Kůň a syn"),
    ("Małgorzata Kowalczyk", "malgorzata@example.pl", "Spółka Żak"),
    ("Zdeněk Němec", "zdenek@example.cz", "Čeština s.r.o."),
]


def csv_text(people: list[tuple[str, str, str]], delimiter: str = ",") -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if any(ch in value for ch in ',;|\t"') else value

    lines = [delimiter.join(["Full Name", "Email", "Company"])]
    lines += [delimiter.join(cell(v) for v in person) for person in people]
    return "\r\n".join(lines) + "\r\n"


MAPPING = '{"Full Name": "full_name", "Email": "email", "Company": "company_name"}'


def imported(workspace) -> set[tuple[str, str, str]]:
    return {(c.full_name, c.email, c.display_company_name) for c in Contact.objects.filter(workspace=workspace)}


def post_file(owner, data: bytes, content_type: str = "text/csv", **query: str):
    params = "&".join(f"{k}={v}" for k, v in {"mapping": MAPPING, **query}.items())
    return owner.client.post(f"{URL}?{params}", data=data, content_type=content_type)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
@pytest.mark.parametrize(
    ("encoding", "label", "people"),
    [
        ("utf-8", "utf-8", WESTERN),
        ("utf-8-sig", "utf-8-sig", WESTERN),
        ("utf-16", "utf-16", WESTERN),
        ("cp1252", "windows-1252", WESTERN),
        ("iso8859-15", "iso-8859-15", WESTERN[:1] + WESTERN[3:4]),  # no ISO-8859-15 for ñ's neighbours: all fit
        ("cp1250", "windows-1250", CENTRAL),
    ],
)
def test_every_encoding_and_delimiter_imports_the_same_contacts_undeclared(
    owner, encoding, label, people, delimiter
) -> None:
    response = post_file(owner, csv_text(people, delimiter).encode(encoding))
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["created_count"], data["errors"]) == (len(people), [])
    assert imported(owner.workspace) == set(people)
    status = owner.client.get(f"{URL}/{data['job_id']}").json()["data"]
    assert (status["encoding"], status["delimiter"]) == (label, delimiter)


def test_a_declared_charset_or_encoding_is_used_as_it_is(owner) -> None:
    # Latin-1 and Windows-1252 read these bytes the same; the declaration decides what is recorded.
    data = csv_text(WESTERN[:1], ";").encode("latin-1")
    response = post_file(owner, data, content_type="text/csv; charset=ISO-8859-1")
    assert response.status_code == 200, response.content
    job_id = response.json()["data"]["job_id"]
    assert owner.client.get(f"{URL}/{job_id}").json()["data"]["encoding"] == "iso-8859-1"
    assert imported(owner.workspace) == set(WESTERN[:1])
    # An explicit parameter wins over the Content-Type's charset.
    other = csv_text([("Björn Köhler", "bjoern@example.de", "Köhler KG")], ";").encode("cp1252")
    response = post_file(owner, other, content_type="text/csv; charset=utf-8", encoding="windows-1252")
    assert response.status_code == 200, response.content
    assert ("Björn Köhler", "bjoern@example.de", "Köhler KG") in imported(owner.workspace)


def test_a_file_that_is_not_in_its_declared_encoding_is_refused_saying_where_and_what_fits(owner) -> None:
    data = csv_text(WESTERN[:2]).encode("cp1252")
    response = post_file(owner, data, content_type="text/csv; charset=utf-8")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"]["field"] == "encoding"
    message = error["message"]
    assert "not valid utf-8" in message and "line 2" in message and "0xFC" in message, message
    assert "windows-1252" in message, message
    assert not Contact.objects.exists() and not ImportJob.objects.exists()


def test_an_unknown_encoding_or_delimiter_is_a_400_naming_it(owner) -> None:
    data = csv_text(WESTERN[:1]).encode()
    for query, field in (({"encoding": "klingon-8"}, "encoding"), ({"delimiter": "%3A"}, "delimiter")):
        response = post_file(owner, data, **query)
        assert response.status_code == 400, response.content
        assert response.json()["error"]["details"]["field"] == field
    assert not Contact.objects.exists()


def test_an_undecodable_byte_after_the_sniffed_part_is_its_rows_error_and_the_rest_imports(owner, settings) -> None:
    settings.LEADLEX_IMPORT_SNIFF_BYTES = 200  # the encoding is found from the first 200 bytes
    people = [(f"Person {i}", f"p{i}@example.com", "Acme") for i in range(10)]
    text = csv_text(people)
    raw = text.encode("utf-8").replace(b"Person 8", b"Person \xff8")  # not UTF-8, beyond the first 200 bytes
    response = post_file(owner, raw)
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["created_count"] == 9
    [error] = data["errors"]
    assert (error["row"], error["code"]) == (10, "invalid_encoding")
    assert "0xFF" in error["message"] and "utf-8" in error["message"]
    assert not Contact.objects.filter(email="p8@example.com").exists()
    assert not any("\ufffd" in name for name in Contact.objects.values_list("full_name", flat=True))


def test_a_tsv_upload_and_a_json_csv_with_its_delimiter(owner) -> None:
    tsv = csv_text(WESTERN[:2], "\t").encode("cp1252")
    upload = io.BytesIO(tsv)
    upload.name = "contacts.tsv"
    response = owner.client.post(URL, {"file": upload, "mapping": MAPPING}, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["created_count"] == 2
    body = {
        "csv": csv_text(CENTRAL[:2], "|"),
        "delimiter": "pipe",
        "mapping": {"Full Name": "full_name", "Email": "email"},
    }
    response = owner.client.post(URL, body, format="json")
    assert response.status_code == 200, response.content
    assert {c[:2] for c in imported(owner.workspace)} >= {p[:2] for p in CENTRAL[:2]}
    # A csv string is text already: an encoding for it is a mistake worth saying.
    response = owner.client.post(URL, {**body, "encoding": "utf-8"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "encoding"


def test_an_idempotency_key_tells_two_non_utf8_files_apart(owner) -> None:
    first = csv_text([("Jürgen Müller", "j@example.de", "A")]).encode("cp1252")
    second = first.replace("ü".encode("cp1252"), "ö".encode("cp1252"))  # another file, another request
    headers = {"HTTP_IDEMPOTENCY_KEY": "same-key-1"}
    response = owner.client.post(f"{URL}?mapping={MAPPING}", data=first, content_type="text/csv", **headers)
    assert response.status_code == 200
    again = owner.client.post(f"{URL}?mapping={MAPPING}", data=second, content_type="text/csv", **headers)
    assert again.status_code == 409, again.content  # not a replay of the first file's answer
    assert again.json()["error"]["code"] == "idempotency_conflict"


def test_the_command_finds_the_encoding_and_delimiter_and_says_which(owner, tmp_path) -> None:
    path = tmp_path / "excel-export.csv"
    path.write_bytes(csv_text(WESTERN, ";").encode("cp1252"))
    err = io.StringIO()
    call_command(
        "import_contacts",
        str(path),
        "--workspace",
        owner.workspace.name,
        "--mapping",
        MAPPING,
        "--no-progress",
        stdout=io.StringIO(),
        stderr=err,
    )
    assert "windows-1252" in err.getvalue() and "';'" in err.getvalue()
    assert imported(owner.workspace) == set(WESTERN)


def test_the_admin_mapping_step_previews_decoded_rows_and_lets_staff_choose_the_encoding(client, workspace) -> None:
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw-123456789"))
    data = csv_text(WESTERN[:3], ";").encode("cp1252")
    response = client.post(
        "/admin/imports/importjob/upload/",
        {"workspace": workspace.pk, "file": io.BytesIO(data), "has_header": "on"},
    )
    assert response.status_code == 302
    mapping_url = response["Location"]
    page = client.get(mapping_url).content.decode()
    assert "Jürgen Müller" in page and "\ufffd" not in page
    assert "windows-1252" in page and "semicolon" in page
    # Read as another encoding on request: the preview shows what that makes of the bytes.
    other = client.get(mapping_url, {"encoding": "cp1250", "delimiter": "semicolon"}).content.decode()
    assert "Peńa" in other  # ñ read as Windows-1250
    response = client.post(
        mapping_url,
        {
            "col_0": "full_name",
            "col_1": "email",
            "col_2": "company_name",
            "encoding": "cp1252",
            "delimiter": "semicolon",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.get()
    assert (job.status, job.created_count, job.params["encoding"], job.params["delimiter"]) == (
        "completed",
        3,
        "cp1252",
        ";",
    )
    assert imported(workspace) == set(WESTERN[:3])


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_queued_windows_1252_semicolon_file_is_read_by_the_worker_as_the_request_found_it(
    owner, import_queue
) -> None:
    people = [(f"Jürgen Müller {i}", f"j{i}@example.de", f"Bäckerei {i}; Groß") for i in range(700)]
    data = csv_text(people, ";").encode("cp1252")
    worker = QueueWorker("imports-encoding", import_queue, extra_env=WORKER_ENV)
    try:
        response = post_file(owner, data)
        assert response.status_code == 202, response.content
        job_id = response.json()["data"]["job_id"]
        job = wait_for(
            lambda: (j := ImportJob.objects.get(pk=job_id.removeprefix("imp_"))).is_finished and j,
            timeout=120,
            message="the import to finish",
        )
    finally:
        worker.stop()
    assert (job.status, job.created_count, job.error_count) == ("completed", 700, 0), job.error
    assert imported(owner.workspace) == set(people)
    status = owner.client.get(f"{URL}/{job_id}").json()["data"]
    assert (status["encoding"], status["delimiter"]) == ("windows-1252", ";")


@pytest.mark.skipif(
    django_settings.LEADLEX_STORAGE_BACKEND != "local",
    reason="on S3 the writer holds up to one 5 MiB multipart part, more than these files: bounded, but not flat here",
)
def test_the_command_streams_a_file_through_storage_with_flat_memory(owner, tmp_path, settings) -> None:
    """The command copies the file to storage in chunks and the engine reads it from there:
    ten times the rows do not take ten times the memory (the file is never held whole)."""
    import tracemalloc

    from leadlex import storage

    settings.LEADLEX_IMPORT_BATCH_SIZE = 100  # the prefetched batches fill up within the smaller file
    settings.LEADLEX_IMPORT_SNIFF_BYTES = 64 * 1024  # both files are larger than what the encoding is found from
    settings.LEADLEX_IMPORT_PARSE_PROCESS = False  # parse in this process, where tracemalloc sees it
    peaks = {}
    for rows in (1_000, 10_000):
        path = tmp_path / f"big-{rows}.csv"
        with path.open("w", encoding="cp1252", newline="") as fh:
            fh.write("Full Name;Email;Company\r\n")
            for i in range(rows):
                fh.write(f"Jürgen Müller {i};j{rows}-{i}@example.de;{'Bäckerei ' * 20}{i}\r\n")
        tracemalloc.start()
        call_command(
            "import_contacts",
            str(path),
            "--workspace",
            owner.workspace.name,
            "--mapping",
            MAPPING,
            "--no-progress",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
        peaks[rows] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        job = ImportJob.objects.latest("created_at")
        assert (job.status, job.created_count) == ("completed", rows), job.error
        # An upload of the command's own (imports.uploads), deleted once the import completed.
        assert job.upload is not None and job.payload_key == job.upload.key
        assert job.upload.status == "expired" and not storage.exists(job.payload_key)
    file_growth = (tmp_path / "big-10000.csv").stat().st_size - (tmp_path / "big-1000.csv").stat().st_size
    assert peaks[10_000] - peaks[1_000] < file_growth / 4, (peaks, file_growth)  # holding the file: > file_growth


def test_a_lone_surrogate_in_a_json_csv_string_is_refused_naming_the_field(owner) -> None:
    import json

    text = "email,full_name\r\na@example.com,lone \ud800 surrogate\r\nb@example.com,Bob\r\n"
    response = owner.client.post(URL, data=json.dumps({"csv": text}), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == "csv"
    assert not Contact.objects.exists()
