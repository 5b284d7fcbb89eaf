"""One boto3 client per process, whatever the threads and greenlets.

django-storages' S3Storage keeps its boto3 session in a ``threading.local``; under
the gevent web workers that is one session and client per request, 0.2-0.4 s each.
S3FileStorage shares one (thread-safe) client per process and builds a new one after
a fork. Signing a URL needs no server, so outside the production profile these tests
sign against an endpoint that is never called.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.session import Session
from django.conf import settings as django_settings
from storages.backends.s3 import S3Storage

from leadlex import storage
from tests.support.worker import ROOT

OFFLINE_S3 = {
    "AWS_STORAGE_BUCKET_NAME": "leadlex-offline",
    "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9",  # discard port: nothing here is ever sent
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


@pytest.fixture
def s3_storage(settings) -> None:
    """A freshly built S3FileStorage: the test S3 server's bucket in the production
    profile, an offline stand-in otherwise."""
    if settings.LEADLEX_STORAGE_BACKEND != "s3":
        for name, value in OFFLINE_S3.items():
            setattr(settings, name, value)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "leadlex.storage.S3FileStorage"}}


@pytest.fixture
def client_constructions(monkeypatch) -> list[int]:
    """Thread ids, one per boto3 client built."""
    built: list[int] = []
    lock = threading.Lock()
    create_client = Session.create_client

    def counting(self, *args, **kwargs):
        with lock:
            built.append(threading.get_ident())
        return create_client(self, *args, **kwargs)

    monkeypatch.setattr(Session, "create_client", counting)
    return built


def sign_from_threads(sign, threads: int = 16, per_thread: int = 5) -> list[str]:
    barrier = threading.Barrier(threads)

    def work(i: int) -> list[str]:
        barrier.wait()  # all threads ask for their first client at once
        return [sign(f"exports/{i}-{n}.ndjson.gz") for n in range(per_thread)]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [url for urls in pool.map(work, range(threads)) for url in urls]


def test_one_client_signs_download_links_for_every_thread(s3_storage, client_constructions) -> None:
    meta = storage.ObjectMeta(content_type="text/csv", filename="c.csv")
    urls = sign_from_threads(lambda key: storage.presigned_get(key, expires=60, meta=meta))
    assert len(urls) == 80 and all(
        "X-Amz-Signature=" in url and "response-content-type=text%2Fcsv" in url for url in urls
    )
    assert len(set(urls)) == 80
    assert len(client_constructions) == 1, client_constructions
    # The writers, the readers and the probe's default client are that same client.
    assert storage.s3_client() is storage.files().client() is storage.files().connection.meta.client
    assert len(client_constructions) == 1


def test_the_probe_gets_one_short_timeout_client_of_its_own(s3_storage, client_constructions) -> None:
    probe = storage.s3_client(timeout=2.0)
    assert probe is storage.s3_client(timeout=2.0) and probe is not storage.s3_client()
    assert probe.meta.config.read_timeout == 2.0 and probe.meta.config.retries["total_max_attempts"] == 1
    assert storage.s3_client().meta.config.retries == {"total_max_attempts": 6, "mode": "standard"}
    assert len(client_constructions) == 2


def test_stock_s3storage_builds_a_client_per_thread(s3_storage, client_constructions) -> None:
    """Why S3FileStorage exists: if django-storages stops doing this, the subclass's
    connection override can go."""
    stock = S3Storage()
    sign_from_threads(lambda key: stock.url(key, expire=60), threads=8, per_thread=2)
    assert len(client_constructions) == 8


@pytest.mark.skipif(django_settings.LEADLEX_STORAGE_BACKEND != "s3", reason="needs the production profile's S3 server")
def test_threads_write_read_and_delete_through_the_one_client(s3_bucket, s3_storage, client_constructions) -> None:
    def round_trip(i: int) -> bytes:
        key = f"tests/threads/{i}.txt"
        storage.put_bytes(key, f"file {i}".encode())
        assert storage.exists(key)
        data = b"".join(storage.iter_bytes(key))
        storage.delete(key)
        assert not storage.exists(key)
        return data

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(round_trip, range(24))) == [f"file {i}".encode() for i in range(24)]
    assert len(client_constructions) == 1


def test_greenlets_share_one_client_and_a_forked_child_builds_its_own() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["LEADLEX_DATA_DIR"] = str(django_settings.DATA_DIR)
    env["DJANGO_SECRET_KEY"] = django_settings.SECRET_KEY
    if django_settings.LEADLEX_STORAGE_BACKEND != "s3":
        env.update(OFFLINE_S3)
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "support" / "storage_clients_child.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    child_line, parent_line = out.stdout.strip().splitlines()[-2:]
    result, child = json.loads(parent_line), json.loads(child_line)["child"]
    assert result["backend"] == "s3" and result["child_exit"] == 0
    assert result["greenlets"] == result["signed"] == 50
    assert result["built_in_parent"] == 1, result
    assert child["built"] == 1 and child["pids"] == [child["pid"]], child
    assert child["bucket_on_own_client"], child
