"""The one module that touches file storage (and the only importer of boto3).

Django's ``STORAGES["default"]`` (config/settings.py) picks the backend by profile:
- ``LocalFileStorage`` (embedded): files under ``LEADLEX_FILES_DIR``, downloaded
  through Django with a signed, expiring token (``/files/<token>``);
- ``S3FileStorage`` (production): any S3-compatible server through django-storages'
  S3 backend, which gives configuration (the ``AWS_*`` settings), object names,
  presigned GETs, ``exists`` and deletes. The writers (multipart uploads as the bytes
  come, with each file's own headers, an abort, and for exports a saved state that
  another process resumes) and the streamed reads are written here, on the same
  client: django-storages' ``S3File`` takes headers from the file's name, can neither
  abort nor resume an upload, and downloads a whole object before its first byte.

docs/storage.md says which part is which, and why.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from botocore.config import Config
from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import reverse
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

PART_SIZE = 8 * 1024 * 1024  # S3 wants >= 5 MiB for every part but the last
_SIGNING_SALT = "leadlex.storage.download"


@dataclass(frozen=True)
class ObjectMeta:
    content_type: str = "application/octet-stream"
    content_encoding: str | None = None
    filename: str | None = None


def files() -> Storage:
    """The configured storage: Django's ``STORAGES["default"]``."""
    return storages["default"]


def backend() -> str:
    """``"s3"`` or ``"local"``, from the class of the configured storage."""
    configured = files()
    if isinstance(configured, S3FileStorage):
        return "s3"
    if isinstance(configured, LocalFileStorage):
        return "local"
    raise ImproperlyConfigured(
        f"STORAGES['default'] is {type(configured).__module__}.{type(configured).__qualname__}: "
        "expected leadlex.storage.LocalFileStorage or leadlex.storage.S3FileStorage"
    )


@receiver(setting_changed)
def _rebuild_storage_on_aws_change(*, setting: str, **kwargs: Any) -> None:
    # django-storages reads the AWS_* settings once, when the storage is built, and
    # Django drops its built storages only when STORAGES itself changes; a test that
    # points AWS_S3_ENDPOINT_URL elsewhere must get a storage (and client) built afresh.
    if setting.startswith("AWS_"):
        from django.test.signals import storages_changed

        storages_changed(setting="STORAGES")


# --- S3 -----------------------------------------------------------------------------
class S3FileStorage(S3Storage):
    """django-storages' S3 backend with one boto3 client per process.

    ``S3Storage`` keeps its boto3 session and resource in a ``threading.local``. The
    web workers run gevent, which makes that local per greenlet, i.e. per request:
    every request that signs a download link would build a new session and client
    (0.2-0.4 s of CPU each). boto3 clients are thread-safe, so one client serves all
    threads and greenlets of a process; it is built again after a fork, because the
    child must not share the parent's connection pool.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not self.bucket_name:
            raise ImproperlyConfigured("AWS_STORAGE_BUCKET_NAME is not set")
        self._reset_clients()

    def get_default_settings(self) -> dict[str, Any]:
        defaults = super().get_default_settings()
        if defaults["client_config"] is None:
            # SigV4 for every S3-compatible server; retries with backoff, because an
            # export uploads many parts and one throttled part must not fail the job.
            defaults["client_config"] = Config(
                s3={"addressing_style": defaults["addressing_style"]},
                signature_version=defaults["signature_version"] or "s3v4",
                proxies=defaults["proxies"],
                retries={"max_attempts": 5, "mode": "standard"},
            )
        return defaults

    def _reset_clients(self) -> None:
        self._pid = os.getpid()
        self._clients: dict[float | None, Any] = {}
        self._resource_class: type | None = None
        self._bucket = None
        self._clients_lock = threading.Lock()

    def client(self, *, timeout: float | None = None) -> Any:
        """This process's client; with ``timeout``, a single-attempt one for probes."""
        if self._pid != os.getpid():
            self._reset_clients()  # forked: the parent's sockets are not ours
        client = self._clients.get(timeout)
        if client is None:
            with self._clients_lock:
                client = self._clients.get(timeout)
                if client is None:
                    client = self._clients[timeout] = self._build_client(timeout)
        return client

    def _build_client(self, timeout: float | None) -> Any:
        session = self._create_session()  # credentials or AWS_S3_SESSION_PROFILE, as django-storages does
        options = {
            "region_name": self.region_name,
            "use_ssl": self.use_ssl,
            "endpoint_url": self.endpoint_url,
            "verify": self.verify,
        }
        if timeout is not None:
            # One attempt with short timeouts: a probe wants an answer now, not the
            # retries with backoff that the writers use.
            config = self.client_config.merge(
                Config(
                    connect_timeout=timeout,
                    read_timeout=timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                )
            )
            return session.client("s3", config=config, **options)
        resource = session.resource("s3", config=self.client_config, **options)
        self._resource_class = type(resource)
        return resource.meta.client

    @property
    def connection(self) -> Any:
        # What S3Storage's methods (url, delete, exists...) call through. A resource is a
        # thin front over its client: a new one per use costs microseconds and shares
        # nothing that another thread or greenlet could change under us.
        client = self.client()
        assert self._resource_class is not None  # set by the first client() of this process
        return self._resource_class(client=client)

    @property
    def bucket(self) -> Any:
        # Cached as S3Storage does (boto3 builds a Bucket's class afresh on each call,
        # ~3 ms, on every presigned URL), but per process: after a fork it would hold
        # the parent's client.
        connection = self.connection  # first, so that a fork is noticed before the cache is read
        if self._bucket is None:
            self._bucket = connection.Bucket(self.bucket_name)
        return self._bucket

    def object_name(self, name: str) -> str:
        """The S3 key for a storage name (``AWS_LOCATION`` prefix, no escaping it)."""
        return self._normalize_name(clean_name(name))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("_pid", "_clients", "_resource_class", "_bucket", "_clients_lock"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._reset_clients()


def _s3() -> S3FileStorage:
    configured = files()
    if not isinstance(configured, S3FileStorage):
        raise ImproperlyConfigured("the configured storage (STORAGES['default']) is not S3")
    return configured


def s3_client(*, timeout: float | None = None) -> Any:
    """The shared client; with ``timeout``, a single-attempt one for probes."""
    return _s3().client(timeout=timeout)


def _bucket() -> str:
    return _s3().bucket_name


def _object_name(key: str) -> str:
    return _s3().object_name(key)


# --- Local --------------------------------------------------------------------------
def local_path(key: str) -> Path:
    root = Path(settings.LEADLEX_FILES_DIR).resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError(f"storage key escapes the files directory: {key!r}")
    return path


class LocalFileStorage(FileSystemStorage):
    """Files under ``LEADLEX_FILES_DIR`` (read on each use, so a test can move it);
    ``url()`` is a signed, expiring link served by Django."""

    def __init__(self, **options: Any) -> None:
        if "location" in options:
            raise ImproperlyConfigured("LocalFileStorage keeps its files in LEADLEX_FILES_DIR; set that instead")
        super().__init__(**options)

    @property  # a property, not FileSystemStorage's cached one: the setting can move
    def base_location(self) -> str:
        return str(settings.LEADLEX_FILES_DIR)

    @property  # see base_location
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    def path(self, name: str) -> str:
        # ValueError (not Django's SuspiciousFileOperation), as the download view expects.
        return str(local_path(name))

    def url(  # type: ignore[override]  # the local stand-in for S3Storage.url's presigned GET
        self, name: str, *, expire: int | None = None, meta: ObjectMeta | None = None, base_url: str | None = None
    ) -> str:
        meta = meta or ObjectMeta()
        fields = {"k": name, "t": meta.content_type, "c": meta.content_encoding, "f": meta.filename}
        return signed_link(
            "file-download",
            fields,
            salt=_SIGNING_SALT,
            expires=expire or settings.LEADLEX_DOWNLOAD_URL_TTL,
            base_url=base_url,
        )


def signed_link(view: str, fields: dict[str, Any], *, salt: str, expires: int, base_url: str | None) -> str:
    """A link to one of Django's file views (``view``) carrying ``fields`` in a signed token
    that expires in ``expires`` seconds (field ``e``): the local stand-in for a presigned URL."""
    token = signing.dumps({**fields, "e": int(time.time()) + expires}, salt=salt, compress=True)
    return (base_url or settings.LEADLEX_PUBLIC_URL).rstrip("/") + reverse(view, args=[token])


# --- Writing ------------------------------------------------------------------------
class LocalWriter:
    def __init__(self, key: str, meta: ObjectMeta) -> None:
        self.key = key
        self.path = local_path(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".part")
        self._fh: IO[bytes] = open(self._tmp, "wb")  # noqa: SIM115  held open from write() to close()/abort()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self.size += len(data)

    def close(self) -> int:
        self._fh.close()
        os.replace(self._tmp, self.path)  # readers never see a half-written file
        return self.size

    def abort(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


class S3MultipartWriter:
    def __init__(self, key: str, meta: ObjectMeta, part_size: int = PART_SIZE) -> None:
        self.key = key
        self.part_size = part_size
        self._client = s3_client()
        self._name = _object_name(key)
        extra: dict[str, str] = {"ContentType": meta.content_type}
        if meta.content_encoding:
            extra["ContentEncoding"] = meta.content_encoding
        self.upload_id: str = self._client.create_multipart_upload(Bucket=_bucket(), Key=self._name, **extra)[
            "UploadId"
        ]
        self.parts: list[dict[str, Any]] = []
        self._buffer = bytearray()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self.part_size:
            self._upload_part(bytes(self._buffer[: self.part_size]))
            del self._buffer[: self.part_size]

    def _upload_part(self, body: bytes) -> None:
        number = len(self.parts) + 1
        etag = self._client.upload_part(
            Bucket=_bucket(), Key=self._name, UploadId=self.upload_id, PartNumber=number, Body=body
        )["ETag"]
        self.parts.append({"PartNumber": number, "ETag": etag})

    def close(self) -> int:
        if self._buffer or not self.parts:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(
            Bucket=_bucket(), Key=self._name, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )
        return self.size

    def abort(self) -> None:
        self._client.abort_multipart_upload(Bucket=_bucket(), Key=self._name, UploadId=self.upload_id)


def open_writer(key: str, meta: ObjectMeta | None = None) -> LocalWriter | S3MultipartWriter:
    meta = meta or ObjectMeta()
    if backend() == "s3":
        return S3MultipartWriter(key, meta)
    return LocalWriter(key, meta)


def put_bytes(key: str, data: bytes, meta: ObjectMeta | None = None) -> int:
    meta = meta or ObjectMeta()
    if backend() == "s3":
        extra = {"ContentType": meta.content_type}
        if meta.content_encoding:
            extra["ContentEncoding"] = meta.content_encoding
        s3_client().put_object(Bucket=_bucket(), Key=_object_name(key), Body=data, **extra)
        return len(data)
    writer = LocalWriter(key, meta)
    writer.write(data)
    return writer.close()


# --- Reading ------------------------------------------------------------------------
def open_reader(key: str) -> IO[bytes]:
    """A binary file-like object over the stored bytes, streamed, not loaded whole, and
    seekable. (django-storages' ``S3File`` would download the whole object into a
    temporary file before the first byte could be read.)"""
    if backend() == "s3":
        return io.BufferedReader(_S3Reader(s3_client(), _bucket(), _object_name(key)), 1024 * 1024)
    return open(local_path(key), "rb")


class _S3Reader(io.RawIOBase):
    """An S3 object as a seekable file: read as one streamed GET from where the reader
    is, and after a seek, a ranged GET from the new position. A zip archive or an Excel
    workbook (a zip) reads its directory at the end and then its members where they lie,
    without the whole object first landing in a temporary file."""

    def __init__(self, client: Any, bucket: str, name: str) -> None:
        self._client, self._bucket, self._name = client, bucket, name
        self._size = int(client.head_object(Bucket=bucket, Key=name)["ContentLength"])
        self._pos = 0
        self._body: Any = None
        self._body_pos = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or not len(buffer):
            return 0
        if self._body is None or self._body_pos != self._pos:
            self._drop_body()
            self._body = self._client.get_object(Bucket=self._bucket, Key=self._name, Range=f"bytes={self._pos}-")[
                "Body"
            ]
            self._body_pos = self._pos
        data = self._body.read(len(buffer))
        if not data:  # the object ended early (replaced meanwhile): what is there is all there is
            return 0
        buffer[: len(data)] = data
        self._pos += len(data)
        self._body_pos += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


def iter_bytes(key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    with open_reader(key) as fh:
        while chunk := fh.read(chunk_size):
            yield chunk


def exists(key: str) -> bool:
    """Raises when S3 answers anything but found / not found (a denied or failing
    request is not "no such file")."""
    return files().exists(key)


def delete(key: str) -> None:
    """Idempotent: a missing file is not an error."""
    files().delete(key)


def presigned_get(
    key: str, *, expires: int | None = None, meta: ObjectMeta | None = None, base_url: str | None = None
) -> str:
    """A URL that downloads ``key`` without credentials until it expires, answered
    with ``meta``'s headers. ``base_url`` is the local backend's host for the link
    (S3 links point at the bucket's endpoint)."""
    expires = expires or settings.LEADLEX_DOWNLOAD_URL_TTL
    meta = meta or ObjectMeta()
    configured = files()
    if isinstance(configured, S3FileStorage):
        params: dict[str, Any] = {"ResponseContentType": meta.content_type}
        if meta.filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{meta.filename}"'
        if meta.content_encoding:
            params["ResponseContentEncoding"] = meta.content_encoding
        return configured.url(key, parameters=params, expire=expires)
    if isinstance(configured, LocalFileStorage):
        return configured.url(key, expire=expires, meta=meta, base_url=base_url)
    backend()  # raises: not a storage LeadLex knows
    raise AssertionError("unreachable")


def read_download_token(token: str) -> tuple[str, ObjectMeta]:
    """Key and headers of a local download token; raises ``signing.BadSignature`` when
    forged and ``PermissionError`` when expired."""
    data = signing.loads(token, salt=_SIGNING_SALT)
    if int(data["e"]) < time.time():
        raise PermissionError("download link expired")
    return data["k"], ObjectMeta(content_type=data["t"], content_encoding=data["c"], filename=data["f"])


# --- Resumable writing (export checkpoints) -----------------------------------------
class ResumeFailed(Exception):  # a public name the export engine catches
    """The saved writer state no longer matches what is stored; start over."""


class LocalResumableWriter:
    """Appends committed chunks to ``<key>.part``; the state is the committed length.

    Resuming truncates the file to that length: whatever a killed writer appended
    after its last checkpoint is cut off and written again.
    """

    def __init__(self, key: str, meta: ObjectMeta, state: dict[str, Any] | None = None) -> None:
        self.key = key
        self.path = local_path(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".part")
        offset = int((state or {}).get("offset") or 0)
        if offset:
            if not self._tmp.exists() or self._tmp.stat().st_size < offset:
                raise ResumeFailed(f"{self._tmp.name} is missing or shorter than its checkpoint")
            self._fh: IO[bytes] = open(self._tmp, "r+b")  # noqa: SIM115  held open until complete()/abort()
            self._fh.truncate(offset)
            self._fh.seek(offset)
        else:
            self._fh = open(self._tmp, "wb")  # noqa: SIM115  held open until complete()/abort()
        self.size = offset

    def commit_chunk(self, data: bytes) -> dict[str, Any]:
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())  # a checkpoint must only point at durable bytes
        self.size += len(data)
        return self.state()

    def state(self) -> dict[str, Any]:
        return {"backend": "local", "offset": self.size}

    def complete(self) -> int:
        self._fh.close()
        os.replace(self._tmp, self.path)
        return self.size

    def abort(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


class S3ResumableWriter:
    """A multipart upload whose state (upload id, parts so far) can be saved and
    resumed by another process. Each committed chunk is one part (S3: >= 5 MiB for
    all parts but the last). A part uploaded after the last saved state is simply
    uploaded again under the same number, which replaces it."""

    def __init__(self, key: str, meta: ObjectMeta, state: dict[str, Any] | None = None) -> None:
        self.key = key
        self._client = s3_client()
        self._name = _object_name(key)
        if state and state.get("upload_id"):
            self.upload_id: str = state["upload_id"]
            self.parts: list[dict[str, Any]] = [dict(p) for p in state.get("parts", [])]
            self.size = int(state.get("size") or 0)
            if not self._upload_alive():
                raise ResumeFailed(f"multipart upload {self.upload_id} no longer exists")
        else:
            extra: dict[str, str] = {"ContentType": meta.content_type}
            if meta.content_encoding:
                extra["ContentEncoding"] = meta.content_encoding
            self.upload_id = self._client.create_multipart_upload(Bucket=_bucket(), Key=self._name, **extra)["UploadId"]
            self.parts = []
            self.size = 0

    def _upload_alive(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.list_parts(Bucket=_bucket(), Key=self._name, UploadId=self.upload_id, MaxParts=1)
        except ClientError:
            return False
        return True

    def commit_chunk(self, data: bytes) -> dict[str, Any]:
        number = len(self.parts) + 1
        etag = self._client.upload_part(
            Bucket=_bucket(), Key=self._name, UploadId=self.upload_id, PartNumber=number, Body=data
        )["ETag"]
        self.parts.append({"PartNumber": number, "ETag": etag})
        self.size += len(data)
        return self.state()

    def state(self) -> dict[str, Any]:
        return {"backend": "s3", "upload_id": self.upload_id, "parts": list(self.parts), "size": self.size}

    def complete(self) -> int:
        if not self.parts:
            self.commit_chunk(b"")
        self._client.complete_multipart_upload(
            Bucket=_bucket(), Key=self._name, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )
        return self.size

    def abort(self) -> None:
        abort_resumable(self.key, self.state())


def open_resumable_writer(
    key: str, meta: ObjectMeta | None = None, state: dict[str, Any] | None = None
) -> LocalResumableWriter | S3ResumableWriter:
    """A writer that commits chunks durably and can be resumed from ``state()``
    by another process; raises ``ResumeFailed`` when the state is stale."""
    meta = meta or ObjectMeta()
    if state and state.get("backend") not in (None, backend()):
        raise ResumeFailed(f"checkpoint was written by the {state.get('backend')} backend")
    if backend() == "s3":
        return S3ResumableWriter(key, meta, state)
    return LocalResumableWriter(key, meta, state)


def abort_resumable(key: str, state: dict[str, Any] | None) -> None:
    """Throw away an unfinished resumable upload (idempotent)."""
    if backend() == "s3":
        upload_id = (state or {}).get("upload_id")
        if not upload_id:
            return
        from botocore.exceptions import ClientError

        with contextlib.suppress(ClientError):  # already completed or aborted
            s3_client().abort_multipart_upload(Bucket=_bucket(), Key=_object_name(key), UploadId=upload_id)
        return
    local_path(key).with_name(local_path(key).name + ".part").unlink(missing_ok=True)


def list_uploaded_parts(key: str, upload_id: str) -> list[dict[str, Any]]:
    """Parts S3 holds for an unfinished upload (diagnostics and tests)."""
    response = s3_client().list_parts(Bucket=_bucket(), Key=_object_name(key), UploadId=upload_id)
    return [{"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]} for p in response.get("Parts", [])]


# --- Uploads from clients (imports.uploads) --------------------------------------------
# A client sends a file's bytes straight to storage, as the parts of a multipart upload
# (a file sent in one PUT is an upload of one part): to S3 through presigned part URLs,
# on the local backend through signed, expiring links that Django streams to disk
# (``/files/upload/<token>``). Once completed, the upload id is gone and its links write
# nothing: no PUT can replace a file an import is reading. The parts of a local upload
# are written in place, at their offsets, into ``<key>.upload``, each recorded once whole
# as ``<key>.upload.d/<number>``; completing renames the file into place, so a part sent
# again simply overwrites its own range.
_UPLOAD_SALT = "leadlex.storage.upload"
LOCAL_UPLOAD_ID = "local"  # the multipart "upload id" of the local backend: the key says the rest


@dataclass(frozen=True)
class UploadTarget:
    """Where a local upload link writes: part ``part`` (from 1) of ``key``'s upload."""

    key: str
    part: int
    part_size: int
    max_bytes: int


def multipart_start(key: str) -> str:
    """Begin a multipart upload of ``key``; its upload id."""
    if backend() == "s3":
        return str(s3_client().create_multipart_upload(Bucket=_bucket(), Key=_object_name(key))["UploadId"])
    _local_parts_dir(key).mkdir(parents=True, exist_ok=True)
    _local_parts_file(key).touch()
    return LOCAL_UPLOAD_ID


def presigned_part(
    key: str, *, upload_id: str, part_number: int, part_size: int, expires: int, base_url: str | None = None
) -> str:
    """A URL that takes part ``part_number`` (from 1) of a multipart upload in one ``PUT``."""
    if backend() == "s3":
        return str(
            s3_client().generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": _bucket(),
                    "Key": _object_name(key),
                    "UploadId": upload_id,
                    "PartNumber": part_number,
                },
                ExpiresIn=expires,
            )
        )
    target = UploadTarget(key, part_number, part_size, part_size)
    return _local_upload_url(target, expires=expires, base_url=base_url)


def multipart_parts(key: str, upload_id: str) -> dict[int, int]:
    """The parts received so far: part number → size (S3: with their ETags kept aside)."""
    return {number: size for number, (size, _etag) in _parts_received(key, upload_id).items()}


def _parts_received(key: str, upload_id: str) -> dict[int, tuple[int, str]]:
    if backend() == "s3":
        parts: dict[int, tuple[int, str]] = {}
        marker = 0
        while True:
            page = s3_client().list_parts(
                Bucket=_bucket(), Key=_object_name(key), UploadId=upload_id, PartNumberMarker=marker
            )
            for part in page.get("Parts", []):
                parts[int(part["PartNumber"])] = (int(part["Size"]), part["ETag"])
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])
    received: dict[int, tuple[int, str]] = {}
    directory = _local_parts_dir(key)
    if directory.is_dir():
        for marker_file in directory.iterdir():
            if marker_file.name.isdigit():
                received[int(marker_file.name)] = (int(marker_file.read_text() or 0), "")
    return received


def multipart_finish(key: str, upload_id: str, *, part_count: int, size: int) -> None:
    """Join parts 1..``part_count`` into ``key`` (the caller has checked that they are
    all there, in the right sizes)."""
    if backend() == "s3":
        received = _parts_received(key, upload_id)
        parts = [{"PartNumber": n, "ETag": received[n][1]} for n in range(1, part_count + 1)]
        s3_client().complete_multipart_upload(
            Bucket=_bucket(), Key=_object_name(key), UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        return
    data = _local_parts_file(key)
    fd = os.open(data, os.O_WRONLY)
    try:
        _flock(fd, fcntl.LOCK_EX)  # waits for parts still being written (UploadBusy after 30 s)
        os.ftruncate(fd, size)
        os.fsync(fd)
        os.replace(data, local_path(key))
        _remove_tree(_local_parts_dir(key))
    finally:
        os.close(fd)


def multipart_abort(key: str, upload_id: str) -> None:
    """Throw away an unfinished multipart upload and what it received (idempotent)."""
    if backend() == "s3":
        from botocore.exceptions import ClientError

        with contextlib.suppress(ClientError):  # already completed or aborted
            s3_client().abort_multipart_upload(Bucket=_bucket(), Key=_object_name(key), UploadId=upload_id)
        return
    _remove_tree(_local_parts_dir(key))  # first: a part being written then finds no upload to add to
    _local_parts_file(key).unlink(missing_ok=True)


def stored_size(key: str) -> int | None:
    """The size of a stored file; None when there is none."""
    if backend() == "s3":
        from botocore.exceptions import ClientError

        try:
            return int(s3_client().head_object(Bucket=_bucket(), Key=_object_name(key))["ContentLength"])
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
    try:
        return local_path(key).stat().st_size
    except FileNotFoundError:
        return None


def _local_parts_file(key: str) -> Path:
    path = local_path(key)
    return path.with_name(path.name + ".upload")


def _local_parts_dir(key: str) -> Path:
    path = local_path(key)
    return path.with_name(path.name + ".upload.d")


def _remove_tree(directory: Path) -> None:
    if directory.is_dir():
        for child in directory.iterdir():
            child.unlink(missing_ok=True)
        directory.rmdir()


def _local_upload_url(target: UploadTarget, *, expires: int, base_url: str | None) -> str:
    fields = {"k": target.key, "n": target.part, "s": target.part_size, "m": target.max_bytes}
    return signed_link("file-upload", fields, salt=_UPLOAD_SALT, expires=expires, base_url=base_url)


def read_upload_token(token: str) -> UploadTarget:
    """Where a local upload link writes; raises ``signing.BadSignature`` when forged
    and ``PermissionError`` when expired."""
    data = signing.loads(token, salt=_UPLOAD_SALT)
    if int(data["e"]) < time.time():
        raise PermissionError("upload link expired")
    return UploadTarget(key=data["k"], part=int(data["n"]), part_size=int(data["s"]), max_bytes=int(data["m"]))


class UploadTooLarge(Exception):
    """A local upload's body is longer than its link allows."""


def local_upload_write(target: UploadTarget, chunks: Iterator[bytes]) -> int:
    """Write a local upload link's body (as it arrives) at its part's offset; the bytes
    written. A body longer than the link allows raises ``UploadTooLarge``; a part is
    recorded as received only once whole (and durable)."""
    directory = _local_parts_dir(target.key)
    try:
        fd = os.open(_local_parts_file(target.key), os.O_WRONLY)  # made by multipart_start
    except FileNotFoundError:
        raise FileNotFoundError(f"no unfinished upload of {target.key}") from None
    try:
        _flock(fd, fcntl.LOCK_SH)  # completing takes it exclusively: no write lands in a finished file
        if not directory.is_dir():  # completed or aborted meanwhile: there is no upload to add to
            raise FileNotFoundError(f"no unfinished upload of {target.key}")
        marker = directory / str(target.part)
        marker.unlink(missing_ok=True)  # being written again: not whole until the end
        offset = (target.part - 1) * target.part_size
        written = 0
        for chunk in chunks:
            if written + len(chunk) > target.max_bytes:
                raise UploadTooLarge(f"A part is at most {target.max_bytes} bytes.")
            view = memoryview(chunk)
            while view:
                done = os.pwrite(fd, view, offset + written)
                written += done
                view = view[done:]
        os.fsync(fd)
        tmp = directory / f".{target.part}.tmp"
        tmp.write_text(str(written))
        os.replace(tmp, marker)
        return written
    finally:
        os.close(fd)  # and with it the lock


class UploadBusy(Exception):
    """A part of this local upload is still being written."""


def _flock(fd: int, operation: int, *, wait: float = 30.0) -> None:
    """``flock`` without blocking the process: the web server's requests are greenlets
    of one thread, and a blocked thread would stop the very writer being waited for."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise UploadBusy("a part of this upload is still being sent") from None
            time.sleep(0.05)  # a greenlet switch under gevent


# --- Readiness ----------------------------------------------------------------------
def ping(*, timeout: float) -> None:
    """Raises when the configured storage cannot take files now: the bucket does
    not answer (S3), or the files directory cannot be created or written (local)."""
    if backend() == "s3":
        s3_client(timeout=timeout).head_bucket(Bucket=_bucket())
        return
    root = Path(settings.LEADLEX_FILES_DIR)
    root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        raise PermissionError(f"{root} is not writable")


# --- Errors worth a retry -------------------------------------------------------------
# S3 answers that say "not now" rather than "no": throttling and server-side trouble.
_TRANSIENT_S3_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "500",
        "502",
        "503",
        "504",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether a storage error is worth running the job again for: the storage
    service was unreachable, timed out, dropped the connection or asked to slow
    down. A definite answer (no such key, access denied, bad credentials) is not.
    Lives here because this module is the only one that knows the S3 client library."""
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    if isinstance(exc, boto.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in _TRANSIENT_S3_CODES
    if isinstance(
        exc, boto.ConnectionError | boto.HTTPClientError | boto.IncompleteReadError | boto.ResponseStreamingError
    ):
        # The endpoint unreachable, the connection refused or closed, read and connect
        # timeouts, proxy errors, a body cut short.
        return True
    # A body being streamed can surface the HTTP library's own errors unwrapped.
    return (type(exc).__module__ or "").startswith("urllib3")
