"""The one module that touches file storage (and the only importer of boto3).

Two backends behind one set of functions, chosen by settings:
- ``local``: files under ``LEADLEX_FILES_DIR``, downloaded through Django with a
  signed, expiring token (``/files/<token>``);
- ``s3``: any S3-compatible server, written with multipart uploads as the bytes
  come, downloaded with presigned GETs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

PART_SIZE = 8 * 1024 * 1024  # S3 wants >= 5 MiB for every part but the last
_SIGNING_SALT = "leadlex.storage.download"


@dataclass(frozen=True)
class ObjectMeta:
    content_type: str = "application/octet-stream"
    content_encoding: str | None = None
    filename: str | None = None


def backend() -> str:
    name = settings.LEADLEX_STORAGE_BACKEND
    if name not in ("local", "s3"):
        raise ImproperlyConfigured(f"LEADLEX_STORAGE_BACKEND={name!r}: expected 'local' or 's3'")
    return name


# --- S3 -----------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _s3_client_for(
    endpoint: str | None, region: str, key_id: str | None, secret: str | None, timeout: float | None
) -> Any:
    import boto3
    from botocore.config import Config

    if timeout is None:
        config = Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"})
    else:
        # One attempt with short timeouts: a probe wants an answer now, not the
        # retries with backoff that the writers use.
        config = Config(
            signature_version="s3v4",
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )


def s3_client(*, timeout: float | None = None) -> Any:
    """The shared client; with ``timeout``, a single-attempt one for probes."""
    if not settings.AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured("AWS_STORAGE_BUCKET_NAME is not set")
    return _s3_client_for(
        settings.AWS_S3_ENDPOINT_URL,
        settings.AWS_S3_REGION_NAME,
        settings.AWS_ACCESS_KEY_ID,
        settings.AWS_SECRET_ACCESS_KEY,
        timeout,
    )


def _bucket() -> str:
    return settings.AWS_STORAGE_BUCKET_NAME


# --- Local --------------------------------------------------------------------------
def local_path(key: str) -> Path:
    root = Path(settings.LEADLEX_FILES_DIR).resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError(f"storage key escapes the files directory: {key!r}")
    return path


# --- Writing ------------------------------------------------------------------------
class LocalWriter:
    def __init__(self, key: str, meta: ObjectMeta) -> None:
        self.key = key
        self.path = local_path(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".part")
        self._fh: IO[bytes] = open(self._tmp, "wb")
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
        extra: dict[str, str] = {"ContentType": meta.content_type}
        if meta.content_encoding:
            extra["ContentEncoding"] = meta.content_encoding
        self.upload_id: str = self._client.create_multipart_upload(Bucket=_bucket(), Key=key, **extra)["UploadId"]
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
            Bucket=_bucket(), Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )["ETag"]
        self.parts.append({"PartNumber": number, "ETag": etag})

    def close(self) -> int:
        if self._buffer or not self.parts:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(
            Bucket=_bucket(), Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )
        return self.size

    def abort(self) -> None:
        self._client.abort_multipart_upload(Bucket=_bucket(), Key=self.key, UploadId=self.upload_id)


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
        s3_client().put_object(Bucket=_bucket(), Key=key, Body=data, **extra)
        return len(data)
    writer = LocalWriter(key, meta)
    writer.write(data)
    return writer.close()


# --- Reading ------------------------------------------------------------------------
def open_reader(key: str) -> IO[bytes]:
    """A binary file-like object over the stored bytes, streamed, not loaded whole."""
    if backend() == "s3":
        return s3_client().get_object(Bucket=_bucket(), Key=key)["Body"]
    return open(local_path(key), "rb")


def iter_bytes(key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    with open_reader(key) as fh:  # type: ignore[union-attr]
        while chunk := fh.read(chunk_size):
            yield chunk


def exists(key: str) -> bool:
    if backend() == "s3":
        from botocore.exceptions import ClientError

        try:
            s3_client().head_object(Bucket=_bucket(), Key=key)
        except ClientError:
            return False
        return True
    return local_path(key).exists()


def delete(key: str) -> None:
    if backend() == "s3":
        s3_client().delete_object(Bucket=_bucket(), Key=key)
        return
    local_path(key).unlink(missing_ok=True)


def presigned_get(
    key: str, *, expires: int | None = None, meta: ObjectMeta | None = None, base_url: str | None = None
) -> str:
    """A URL that downloads ``key`` without credentials until it expires."""
    expires = expires or settings.LEADLEX_DOWNLOAD_URL_TTL
    meta = meta or ObjectMeta()
    if backend() == "s3":
        params: dict[str, Any] = {"Bucket": _bucket(), "Key": key, "ResponseContentType": meta.content_type}
        if meta.filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{meta.filename}"'
        if meta.content_encoding:
            params["ResponseContentEncoding"] = meta.content_encoding
        return s3_client().generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
    token = signing.dumps(
        {
            "k": key,
            "e": int(time.time()) + expires,
            "t": meta.content_type,
            "c": meta.content_encoding,
            "f": meta.filename,
        },
        salt=_SIGNING_SALT,
        compress=True,
    )
    return (base_url or settings.LEADLEX_PUBLIC_URL).rstrip("/") + reverse("file-download", args=[token])


def read_download_token(token: str) -> tuple[str, ObjectMeta]:
    """Key and headers of a local download token; raises ``signing.BadSignature`` when
    forged and ``PermissionError`` when expired."""
    data = signing.loads(token, salt=_SIGNING_SALT)
    if int(data["e"]) < time.time():
        raise PermissionError("download link expired")
    return data["k"], ObjectMeta(content_type=data["t"], content_encoding=data["c"], filename=data["f"])


# --- Resumable writing (export checkpoints) -----------------------------------------
class ResumeFailed(Exception):
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
            self._fh: IO[bytes] = open(self._tmp, "r+b")
            self._fh.truncate(offset)
            self._fh.seek(offset)
        else:
            self._fh = open(self._tmp, "wb")
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
            self.upload_id = self._client.create_multipart_upload(Bucket=_bucket(), Key=key, **extra)["UploadId"]
            self.parts = []
            self.size = 0

    def _upload_alive(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.list_parts(Bucket=_bucket(), Key=self.key, UploadId=self.upload_id, MaxParts=1)
        except ClientError:
            return False
        return True

    def commit_chunk(self, data: bytes) -> dict[str, Any]:
        number = len(self.parts) + 1
        etag = self._client.upload_part(
            Bucket=_bucket(), Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
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
            Bucket=_bucket(), Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
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

        try:
            s3_client().abort_multipart_upload(Bucket=_bucket(), Key=key, UploadId=upload_id)
        except ClientError:
            pass  # already completed or aborted
        return
    local_path(key).with_name(local_path(key).name + ".part").unlink(missing_ok=True)


def list_uploaded_parts(key: str, upload_id: str) -> list[dict[str, Any]]:
    """Parts S3 holds for an unfinished upload (diagnostics and tests)."""
    response = s3_client().list_parts(Bucket=_bucket(), Key=key, UploadId=upload_id)
    return [{"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]} for p in response.get("Parts", [])]


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
