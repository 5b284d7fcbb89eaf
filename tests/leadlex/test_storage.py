"""Storage: local signed download links (both profiles) and the S3 path (production
profile, against a real S3-compatible server)."""

from __future__ import annotations

import gzip
import os
import time

import pytest
import requests
from django.conf import settings

from leadlex import storage
from leadlex.storage import ObjectMeta

needs_s3 = pytest.mark.skipif(
    settings.LEADLEX_STORAGE_BACKEND != "s3", reason="the embedded profile stores files on local disk (no S3 by design)"
)


@pytest.fixture
def local_storage(settings, tmp_path):
    settings.LEADLEX_STORAGE_BACKEND = "local"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "leadlex.storage.LocalFileStorage"}}
    settings.LEADLEX_FILES_DIR = tmp_path / "files"
    return tmp_path / "files"


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def test_a_local_signed_link_downloads_the_file_with_its_headers(client, local_storage):
    data = gzip.compress(b'{"a":1}\n' * 1000)
    storage.put_bytes("exports/abc.ndjson.gz", data)
    meta = ObjectMeta(content_type="application/x-ndjson", content_encoding="gzip", filename="contacts.ndjson.gz")
    url = storage.presigned_get("exports/abc.ndjson.gz", expires=60, meta=meta, base_url="http://testserver")
    assert url.startswith("http://testserver/files/")
    response = client.get(path_of(url))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Encoding"] == "gzip"
    assert response["Content-Disposition"] == 'attachment; filename="contacts.ndjson.gz"'


def test_a_local_link_expires(client, local_storage, monkeypatch):
    storage.put_bytes("x.bin", b"x")
    url = storage.presigned_get("x.bin", expires=60)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    response = client.get(path_of(url))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "link_expired"


def test_a_forged_or_tampered_token_is_refused(client, local_storage):
    storage.put_bytes("x.bin", b"secret bytes")
    path = path_of(storage.presigned_get("x.bin", expires=60))
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    for forged in (tampered, "/files/" + "e30:1abc:forged", "/files/not-a-token"):
        response = client.get(forged)
        assert response.status_code == 403, forged
        assert response.json()["error"]["code"] == "invalid_signature"


def test_a_link_to_a_deleted_file_answers_404(client, local_storage):
    storage.put_bytes("gone.bin", b"x")
    url = storage.presigned_get("gone.bin", expires=60)
    storage.delete("gone.bin")
    assert not storage.exists("gone.bin")
    assert client.get(path_of(url)).status_code == 404


def test_local_keys_cannot_escape_the_files_directory(local_storage):
    with pytest.raises(ValueError):
        storage.put_bytes("../../etc/evil", b"x")


def test_a_local_writer_is_atomic_and_abort_leaves_nothing(local_storage):
    writer = storage.open_writer("big/file.bin")
    writer.write(b"a" * 10)
    assert not storage.exists("big/file.bin")  # readers never see a half-written file
    writer.write(b"b" * 10)
    assert writer.close() == 20
    assert b"".join(storage.iter_bytes("big/file.bin")) == b"a" * 10 + b"b" * 10
    aborted = storage.open_writer("big/other.bin")
    aborted.write(b"zzz")
    aborted.abort()
    assert not storage.exists("big/other.bin")
    assert os.listdir(local_storage / "big") == ["file.bin"]


@needs_s3
def test_the_s3_multipart_writer_uploads_several_parts_and_a_presigned_get_downloads_them(s3_bucket):
    plain = os.urandom(6 * 1024 * 1024) + b"tail" * 1000  # more than one 5 MiB part once compressed
    data = gzip.compress(plain, compresslevel=1)
    meta = ObjectMeta(content_type="application/x-ndjson", content_encoding="gzip", filename="c.ndjson.gz")
    writer = storage.S3MultipartWriter("tests/multipart.ndjson.gz", meta, part_size=5 * 1024 * 1024)
    for start in range(0, len(data), 1024 * 1024):
        writer.write(data[start : start + 1024 * 1024])
    assert writer.close() == len(data)
    assert len(writer.parts) == 2

    head = storage.s3_client().head_object(Bucket=s3_bucket, Key="tests/multipart.ndjson.gz")
    assert head["ContentEncoding"] == "gzip" and head["ContentType"] == "application/x-ndjson"
    assert head["ContentLength"] == len(data)

    url = storage.presigned_get("tests/multipart.ndjson.gz", expires=300, meta=meta)
    response = requests.get(url, timeout=30, stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert 'filename="c.ndjson.gz"' in response.headers["Content-Disposition"]
    assert response.raw.read(decode_content=False) == data

    # (moto does not verify presigned signatures, so a forged-URL check belongs to real S3/MinIO.)
    storage.delete("tests/multipart.ndjson.gz")
    assert not storage.exists("tests/multipart.ndjson.gz")


@needs_s3
def test_the_default_writer_is_multipart_and_abort_leaves_no_object(s3_bucket):
    writer = storage.open_writer("tests/aborted.bin", ObjectMeta())
    assert isinstance(writer, storage.S3MultipartWriter)
    writer.write(b"x" * 1024)
    writer.abort()
    assert not storage.exists("tests/aborted.bin")
    empty = storage.open_writer("tests/empty.bin")
    assert empty.close() == 0
    assert b"".join(storage.iter_bytes("tests/empty.bin")) == b""


@needs_s3
def test_put_bytes_and_read_back(s3_bucket):
    storage.put_bytes("tests/small.txt", b"hello", ObjectMeta(content_type="text/plain"))
    assert storage.exists("tests/small.txt")
    assert b"".join(storage.iter_bytes("tests/small.txt")) == b"hello"
    assert requests.get(storage.presigned_get("tests/small.txt", expires=60), timeout=30).content == b"hello"
