"""POST /v1/uploads: a file of any size sent straight to storage (S3 presigned part URLs
in the production profile, signed links Django streams to disk in the embedded one),
completed, previewed and imported by ``upload_id``, expired and swept."""

from __future__ import annotations

import io
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from imports import uploads
from imports.engine import import_job_run, import_jobs_sweep
from imports.models import ImportJob, Upload
from leadlex import storage
from leadlex.models import SCOPE_READ_CONTACTS
from tests.conftest import keyed_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("storage_ready")]

UPLOADS = "/v1/uploads"
IMPORT = "/v1/import/contacts"

# What Excel writes on Windows in Germany: Windows-1252, semicolons.
EXCEL_DE = (
    "Name;E-Mail-Adresse;Telefon;Firma\r\n"
    "Jürgen Müller;juergen@example.de;+49 30 1234567;Bäckerei Groß\r\n"
    "Zoë Größer;zoe@example.de;+49 30 7654321;Straße & Söhne\r\n"
).encode("cp1252")
MAPPING = {"Name": "full_name", "E-Mail-Adresse": "email", "Telefon": "phone", "Firma": "company_name"}
# More than 500 rows: an import of it is a queued job.
QUEUED = EXCEL_DE + "".join(f"Person {i};p{i}@example.de;;\r\n" for i in range(600)).encode("cp1252")


def put(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """PUT bytes to an upload link as a client would, without credentials."""
    parts = urlsplit(url)
    if parts.path.startswith("/files/upload/"):  # local backend: served by Django itself
        response = Client().put(parts.path, data=body, content_type="application/octet-stream")
        return response.status_code, dict(response.headers), response.content
    answer = requests.put(url, data=body, timeout=60)
    return answer.status_code, dict(answer.headers), answer.content


def refused_put(url: str, body: bytes) -> bool:
    """Whether a PUT to the link is refused: 404 from ours; S3 answers NoSuchUpload
    (404), the test server moto a 500 for the same."""
    status, _headers, _body = put(url, body)
    return status == 404 if urlsplit(url).path.startswith("/files/upload/") else status >= 400


def create(owner, **body) -> dict:
    response = owner.client.post(UPLOADS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def uploaded(owner, body: bytes, **fields) -> dict:
    """A completed upload of ``body`` in one PUT."""
    data = create(owner, **fields)
    status, _headers, answer = put(data["url"], body)
    assert status == 200, answer
    done = owner.client.post(f"{UPLOADS}/{data['upload_id']}/complete")
    assert done.status_code == 200, done.content
    return done.json()["data"]


def stored(upload_id: str) -> bytes:
    upload = Upload.objects.get(id=upload_id.removeprefix("upl_"))
    with storage.open_reader(upload.key) as fh:
        return fh.read()


def test_a_file_sent_in_one_put_previews_and_imports_by_upload_id_and_stays_for_another_import(owner):
    data = create(owner, file_name="kontakte.csv")
    assert data["status"] == "pending" and data["upload_id"].startswith("upl_")
    assert data["part_count"] == 1 and [p["part_number"] for p in data["parts"]] == [1]
    assert data["url"] == data["parts"][0]["url"] and data["size"] is None
    status, headers, _ = put(data["url"], EXCEL_DE)
    assert status == 200 and headers.get("ETag")

    done = owner.client.post(f"{UPLOADS}/{data['upload_id']}/complete").json()["data"]
    assert done["status"] == "completed" and done["size"] == len(EXCEL_DE)
    assert done["url"] is None and done["parts"] == []
    assert stored(data["upload_id"]) == EXCEL_DE

    preview = owner.client.post(f"{IMPORT}/preview", {"upload_id": data["upload_id"]}, format="json")
    assert preview.status_code == 200, preview.content
    shown = preview.json()["data"]
    assert (shown["encoding"], shown["delimiter"]) == ("windows-1252", ";")
    assert shown["header"] == ["Name", "E-Mail-Adresse", "Telefon", "Firma"]
    assert shown["rows"][0][0] == "Jürgen Müller" and shown["row_count"] == 2
    assert shown["proposed_mapping"] == MAPPING

    body = {"upload_id": data["upload_id"], "mapping": shown["proposed_mapping"], "tags": ["messe"]}
    response = owner.client.post(IMPORT, body, format="json")
    assert response.status_code == 200, response.content  # ≤ 500 rows: done in the request, as any import
    job_id = response.json()["data"]["job_id"]
    job = ImportJob.objects.get(id=job_id.removeprefix("imp_"))
    assert job.status == "completed" and job.total_bytes == len(EXCEL_DE) and job.upload_id is not None
    names = set(Contact.objects.filter(workspace=owner.workspace).values_list("full_name", flat=True))
    assert names == {"Jürgen Müller", "Zoë Größer"}
    status_data = owner.client.get(f"{IMPORT}/{job_id}").json()["data"]
    assert (status_data["created_count"], status_data["encoding"], status_data["delimiter"]) == (2, "windows-1252", ";")
    assert status_data["progress_percent"] == 100

    # The job leaves the upload's file alone: another import reads it again.
    assert stored(data["upload_id"]) == EXCEL_DE
    again = owner.client.post(IMPORT, {**body, "update_existing": True}, format="json")
    assert again.status_code == 200, again.content
    assert (again.json()["data"]["created_count"], again.json()["data"]["updated_count"]) == (0, 2)
    # More than 500 rows: a queued job, which reads the upload from storage.
    rows = "".join(f"Person {i};p{i}@example.de;;\r\n" for i in range(600)).encode("cp1252")
    big = uploaded(owner, EXCEL_DE + rows, file_name="more.csv")
    queued = owner.client.post(IMPORT, {**body, "upload_id": big["upload_id"]}, format="json")
    assert queued.status_code == 202, queued.content
    ran = import_job_run(job_id=queued.json()["data"]["job_id"].removeprefix("imp_"))
    assert ran is not None and (ran.status, ran.created_count, ran.skipped_count) == ("completed", 600, 2)
    assert stored(big["upload_id"]) == EXCEL_DE + rows


def test_an_import_naming_a_pending_upload_completes_it_and_a_missing_part_is_named(owner):
    data = create(owner, file_name="contacts.csv")
    missing = owner.client.post(IMPORT, {"upload_id": data["upload_id"]}, format="json")
    assert missing.status_code == 409, missing.content
    error = missing.json()["error"]
    assert error["code"] == "upload_incomplete" and error["details"]["missing_parts"] == [1]
    assert "1 part(s) not received" in error["message"]

    put(data["url"], b"email,full_name\r\nada@example.com,Ada\r\n")
    response = owner.client.post(IMPORT, {"upload_id": data["upload_id"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["created_count"] == 1
    assert Upload.objects.get(id=data["upload_id"][4:]).status == "completed"


def test_a_file_sent_in_parts_with_a_part_sent_again_is_joined_byte_for_byte(owner, monkeypatch):
    monkeypatch.setattr(uploads, "MIN_PART_SIZE", 5 * 1024 * 1024)  # S3's own minimum, to keep the file small
    line = "Zoë Größer,zoe{}@example.de,+49 30 7654321,Straße & Söhne\r\n"
    text = "full_name,email,phone,company_name\r\n" + "".join(line.format(i) for i in range(160_000))
    body = text.encode()[: 11 * 1024 * 1024 + 12345]
    body = body[: body.rindex(b"\r\n") + 2]
    data = create(owner, file_name="big.csv", size=len(body), multipart=True)
    size = data["part_size"]
    assert size == 5 * 1024 * 1024 and data["part_count"] == 3 and data["url"] is None
    assert [p["size"] for p in data["parts"]] == [size, size, len(body) - 2 * size]
    chunks = [body[i * size : (i + 1) * size] for i in range(3)]
    part = {p["part_number"]: p["url"] for p in data["parts"]}

    assert put(part[1], chunks[1])[0] == 200  # part 1 with the wrong bytes of the right size ...
    assert put(part[3], chunks[2][:-1])[0] == 200  # ... part 3 one byte short ...
    shown = owner.client.get(f"{UPLOADS}/{data['upload_id']}").json()["data"]
    assert shown["parts_received"] == [1, 3] and len(shown["parts"]) == 3  # fresh links, for the rest
    refused = owner.client.post(f"{UPLOADS}/{data['upload_id']}/complete")
    assert refused.status_code == 409
    details = refused.json()["error"]["details"]
    assert details["missing_parts"] == [2]
    assert details["wrong_size_parts"] == [{"part_number": 3, "size": len(chunks[2]) - 1, "expected": len(chunks[2])}]

    for number, chunk in zip((1, 2, 3), chunks, strict=True):  # ... each sent (again) as it should be
        assert put(part[number], chunk)[0] == 200
    done = owner.client.post(f"{UPLOADS}/{data['upload_id']}/complete")
    assert done.status_code == 200, done.content
    assert done.json()["data"]["size"] == len(body)
    assert stored(data["upload_id"]) == body
    # Completing again answers the same; a part sent now writes nothing.
    assert owner.client.post(f"{UPLOADS}/{data['upload_id']}/complete").json()["data"]["size"] == len(body)
    assert refused_put(part[2], chunks[0])
    assert stored(data["upload_id"]) == body

    preview = owner.client.post(f"{IMPORT}/preview", {"upload_id": data["upload_id"]}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["data"]["row_count"] == body.count(b"\r\n") - 1


def test_a_file_larger_than_a_request_body_is_counted_by_its_job_with_progress_in_bytes(owner, settings):
    settings.LEADLEX_MAX_BODY_BYTES = 200  # "large": the request does not count it
    settings.LEADLEX_IMPORT_BATCH_SIZE = 50
    # Long rows (a 2 kB note each), so that the file is several times the readers' 1 MiB buffers.
    note = "Notiz über Größe, Maße & Gewicht; " * 60
    text = "email,full_name,notes\r\n" + "".join(f'p{i}@example.com,Person {i},"{note}"\r\n' for i in range(2000))
    body = text.encode()
    data = uploaded(owner, body, file_name="people.csv")
    preview = owner.client.post(f"{IMPORT}/preview", {"upload_id": data["upload_id"]}, format="json").json()["data"]
    assert preview["row_count"] is None and len(preview["rows"]) == 20

    mapping = {"email": "email", "full_name": "full_name", "notes": "custom.notes"}
    response = owner.client.post(IMPORT, {"upload_id": data["upload_id"], "mapping": mapping}, format="json")
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get(id=response.json()["data"]["job_id"][4:])
    assert (job.total_rows, job.total_bytes, job.progress_percent) == (None, len(body), 0)
    seen: list[tuple[int, int | None]] = []

    def progress(rows: int, total: int | None) -> None:
        current = ImportJob.objects.get(id=job.id)
        seen.append((current.processed_bytes, current.progress_percent))

    finished = import_job_run(job_id=job.id, progress=progress)
    assert finished is not None and finished.status == "completed"
    assert (finished.total_rows, finished.processed_rows, finished.created_count) == (2000, 2000, 2000)
    assert finished.processed_bytes == len(body)
    assert len(seen) == 40 and [b for b, _ in seen] == sorted(b for b, _ in seen)
    assert 0 < seen[0][0] < len(body) / 2 and seen[0][1] is not None and seen[0][1] < 50  # read as it goes
    assert all(p is not None and p < 100 for _, p in seen)  # 100 only once completed
    status = owner.client.get(f"{IMPORT}/{job.public_id}").json()["data"]
    assert (status["total_rows"], status["progress_percent"]) == (2000, 100)
    assert status["total_bytes"] == status["processed_bytes"] == len(body)
    assert Contact.objects.get(workspace=owner.workspace, email="p7@example.com").custom == {
        "notes": note.strip()
    }  # cells are trimmed, as ever


def test_an_expired_upload_is_swept_unless_an_import_reads_it_and_then_answers_410(owner):
    done = uploaded(owner, EXCEL_DE, file_name="a.csv")
    pending = create(owner, file_name="b.csv")
    put(pending["url"], EXCEL_DE)
    reading = uploaded(owner, QUEUED, file_name="c.csv")
    response = owner.client.post(IMPORT, {"upload_id": reading["upload_id"], "mapping": MAPPING}, format="json")
    assert response.status_code == 202
    Upload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    import_jobs_sweep()  # the periodic sweep deletes the files of expired uploads
    by_id = {u.public_id: u for u in Upload.objects.all()}
    assert by_id[done["upload_id"]].status == by_id[pending["upload_id"]].status == "expired"
    assert storage.stored_size(by_id[done["upload_id"]].key) is None
    assert by_id[reading["upload_id"]].status == "completed"  # an unfinished import reads it
    assert storage.stored_size(by_id[reading["upload_id"]].key) == len(QUEUED)

    gone = owner.client.post(IMPORT, {"upload_id": done["upload_id"]}, format="json")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "upload_expired"
    assert owner.client.get(f"{UPLOADS}/{done['upload_id']}").json()["data"]["status"] == "expired"
    assert refused_put(pending["url"], EXCEL_DE)  # its links write nothing any more

    finished = import_job_run(job_id=response.json()["data"]["job_id"][4:])
    assert finished is not None and finished.status == "completed"
    assert uploads.uploads_sweep_expired() == 1  # its import done: now it goes
    assert storage.stored_size(by_id[reading["upload_id"]].key) is None


def test_delete_removes_the_file_now_but_not_while_an_import_reads_it(owner):
    data = uploaded(owner, QUEUED, file_name="a.csv")
    response = owner.client.post(IMPORT, {"upload_id": data["upload_id"], "mapping": MAPPING}, format="json")
    busy = owner.client.delete(f"{UPLOADS}/{data['upload_id']}")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "upload_in_use"
    import_job_run(job_id=response.json()["data"]["job_id"][4:])
    deleted = owner.client.delete(f"{UPLOADS}/{data['upload_id']}")
    assert deleted.status_code == 200 and deleted.json()["data"]["status"] == "expired"
    assert storage.stored_size(Upload.objects.get(id=data["upload_id"][4:]).key) is None

    pending = create(owner, file_name="b.csv", size=len(EXCEL_DE))
    put(pending["url"], EXCEL_DE)
    assert owner.client.delete(f"{UPLOADS}/{pending['upload_id']}").status_code == 200
    assert refused_put(pending["url"], EXCEL_DE)  # the storage's upload is aborted


def test_an_upload_is_its_workspaces_and_needs_a_write_key(owner, stranger, workspace):
    data = uploaded(owner, EXCEL_DE, file_name="a.csv")
    for response in (
        stranger.client.get(f"{UPLOADS}/{data['upload_id']}"),
        stranger.client.post(f"{UPLOADS}/{data['upload_id']}/complete"),
        stranger.client.delete(f"{UPLOADS}/{data['upload_id']}"),
        stranger.client.post(IMPORT, {"upload_id": data["upload_id"]}, format="json"),
        stranger.client.post(f"{IMPORT}/preview", {"upload_id": data["upload_id"]}, format="json"),
        owner.client.get(f"{UPLOADS}/upl_{'0' * 32}"),
        owner.client.get(f"{UPLOADS}/nonsense"),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    reader = keyed_client(workspace, (SCOPE_READ_CONTACTS,))
    for response in (
        reader.client.get(f"{UPLOADS}/{data['upload_id']}"),
        reader.client.post(UPLOADS, {}, format="json"),
    ):
        assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_permissions"


def test_bad_upload_requests_are_clear_400s_and_413s(owner, settings):
    for body, field in (
        ({"multipart": True}, "size"),
        ({"size": -1}, "size"),
        ({"file_name": "a.csv", "colour": "red"}, "colour"),
    ):
        response = owner.client.post(UPLOADS, body, format="json")
        assert response.status_code == 400, response.content
        assert field in str(response.json()["error"]), response.json()
    settings.LEADLEX_UPLOAD_MAX_BYTES = 1000
    too_big = owner.client.post(UPLOADS, {"size": 1001}, format="json")
    assert too_big.status_code == 413 and too_big.json()["error"]["details"]["limit_bytes"] == 1000
    data = create(owner, size=10)
    assert data["parts"][0]["size"] == 10
    for body, field in (
        ({"upload_id": 42}, "upload_id"),
        ({"upload_id": data["upload_id"], "csv": "a"}, "csv"),
        ({"upload_id": data["upload_id"], "colour": "red"}, "colour"),
    ):
        response = owner.client.post(IMPORT, body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["error"]["details"]["field"] == field


def test_an_idempotency_key_answers_a_repeated_upload_import_from_the_first(owner):
    data = uploaded(owner, EXCEL_DE, file_name="a.csv")
    body = {"upload_id": data["upload_id"], "mapping": MAPPING, "tags": ["x"]}
    first = owner.client.post(IMPORT, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = owner.client.post(IMPORT, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and ImportJob.objects.count() == 1
    other = owner.client.post(IMPORT, {**body, "tags": ["y"]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_a_local_upload_link_is_signed_expiring_and_bounded(owner, settings):
    if storage.backend() != "local":
        pytest.skip("the embedded profile's links; S3 checks its own presigned URLs")
    data = create(owner, size=len(EXCEL_DE))
    path = urlsplit(data["url"]).path
    client = Client()
    forged = client.put(path[:-3] + "xyz", data=EXCEL_DE, content_type="text/csv")
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "invalid_signature"
    assert client.get(path).status_code == 405
    too_long = client.put(path, data=EXCEL_DE + b"x", content_type="text/csv")
    assert too_long.status_code == 413 and too_long.json()["error"]["code"] == "payload_too_large"
    assert client.put(path, data=EXCEL_DE, content_type="text/csv").status_code == 200
    upload = Upload.objects.get(id=data["upload_id"][4:])
    expired = storage._local_upload_url(
        storage.UploadTarget(upload.key, 1, upload.part_size, upload.part_size), expires=-1, base_url=None
    )
    answer = client.put(urlsplit(expired).path, data=EXCEL_DE, content_type="text/csv")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "link_expired"


def test_an_empty_file_uploads_and_is_refused_by_the_import_as_a_file_without_a_header(owner):
    data = uploaded(owner, b"", file_name="empty.csv")
    assert data["size"] == 0
    response = owner.client.post(IMPORT, {"upload_id": data["upload_id"]}, format="json")
    assert response.status_code == 400, response.content


def test_the_upload_flow_is_documented_in_the_openapi_document(owner):
    document = owner.client.get("/v1/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/v1/uploads"]) >= {"post"}
    assert set(paths["/v1/uploads/{upload_id}"]) >= {"get", "delete"}
    assert "410" in paths["/v1/uploads/{upload_id}/complete"]["post"]["responses"]
    assert "410" in paths["/v1/import/contacts"]["post"]["responses"]
    schema = document["components"]["schemas"]["ImportRequest"]["properties"]
    assert {"upload_id", "encoding", "sheet"} <= set(schema)


def test_a_stored_file_is_read_from_any_position_without_a_temporary_copy(storage_ready):
    """A zip or a workbook is read where its parts lie (S3: ranged GETs), not first copied whole."""
    from imports.formats import seekable

    body = bytes(range(256)) * 40_000  # 10 MB: larger than the reader's buffer
    storage.put_bytes("tests/seek.bin", body)
    with storage.open_reader("tests/seek.bin") as fh:
        assert seekable(fh) is fh
        assert fh.seek(-22, 2) == len(body) - 22 and fh.read() == body[-22:]
        fh.seek(3_000_001)
        assert fh.read(5) == body[3_000_001:3_000_006] and fh.tell() == 3_000_006
        fh.seek(10)
        assert fh.read(2_500_000) == body[10:2_500_010]
        assert fh.read(100) == body[2_500_010:2_500_110]  # on from there, in the same stream
        fh.seek(0)
        assert fh.read() == body
    storage.delete("tests/seek.bin")


def test_a_workbook_upload_previews_and_imports_as_a_queued_job(owner):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Kontakte"
    sheet.append(["Name", "E-Mail", "Telefon"])
    for i in range(600):
        sheet.append([f"Zoë Größer {i}", f"zoe{i}@example.de", f"+49 30 {i:07d}"])
    out = io.BytesIO()
    book.save(out)
    data = uploaded(owner, out.getvalue(), file_name="kontakte.xlsx")
    shown = owner.client.post(f"{IMPORT}/preview", {"upload_id": data["upload_id"]}, format="json").json()["data"]
    assert (shown["format"], shown["sheet"], shown["rows"][0][0]) == ("xlsx", None, "Zoë Größer 0")
    response = owner.client.post(
        IMPORT, {"upload_id": data["upload_id"], "mapping": {"Name": "full_name", "E-Mail": "email"}}, format="json"
    )
    assert response.status_code == 202, response.content
    ran = import_job_run(job_id=response.json()["data"]["job_id"][4:])
    assert ran is not None and (ran.status, ran.created_count) == ("completed", 600)


def test_an_upload_past_its_expiry_is_refused_before_the_sweep_gets_to_it(owner):
    done = uploaded(owner, EXCEL_DE, file_name="a.csv")
    pending = create(owner, file_name="b.csv")
    put(pending["url"], EXCEL_DE)
    Upload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for response in (
        owner.client.post(IMPORT, {"upload_id": done["upload_id"], "mapping": MAPPING}, format="json"),
        owner.client.post(f"{IMPORT}/preview", {"upload_id": done["upload_id"]}, format="json"),
        owner.client.post(f"{UPLOADS}/{pending['upload_id']}/complete"),
    ):
        assert response.status_code == 410, response.content
        assert response.json()["error"]["code"] == "upload_expired"
    assert not ImportJob.objects.exists()


def test_the_admin_lists_uploads_read_only(owner, admin_client):
    data = uploaded(owner, EXCEL_DE, file_name="kontakte.csv")
    listing = admin_client.get("/admin/imports/upload/")
    assert listing.status_code == 200
    assert data["upload_id"].encode() in listing.content and b"kontakte.csv" in listing.content
    upload = Upload.objects.get(id=data["upload_id"][4:])
    detail = admin_client.get(f"/admin/imports/upload/{upload.pk}/change/")
    assert detail.status_code == 200 and b"completed" in detail.content
    assert (
        admin_client.post(f"/admin/imports/upload/{upload.pk}/delete/").status_code == 403
    )  # the file's fate is the API's
