"""Import engine settings: defaults in code, read on each use (``leadlex.conf``) so
that test overrides and a worker's environment both take effect."""

from __future__ import annotations

import os

from imports.dialect import SAMPLE_BYTES
from imports.formats import Limits
from leadlex.conf import setting_bool, setting_int, setting_str


def batch_size() -> int:
    """Rows per batch: one transaction (upsert, row errors, checkpoint) each."""
    return setting_int("LEADLEX_IMPORT_BATCH_SIZE", 5000)


def parse_in_process() -> bool:
    """Queued jobs parse and validate in a forked child process (the second core), not
    a thread; off on a platform without fork, or to debug in one process."""
    return setting_bool("LEADLEX_IMPORT_PARSE_PROCESS", True) and hasattr(os, "fork")


def max_attempts() -> int:
    """Runs (claims) of one job before it is failed for good."""
    return setting_int("LEADLEX_IMPORT_MAX_ATTEMPTS", 5)


def stale_seconds() -> int:
    """A processing job whose heartbeat is older than this is considered abandoned (its
    worker died): the sweeper queues it again."""
    return setting_int("LEADLEX_IMPORT_STALE_SECONDS", 300)


def queue() -> str:
    """A dedicated Celery queue for import runs ("": the default queue), for a
    deployment that gives imports their own workers."""
    return setting_str("LEADLEX_IMPORT_QUEUE", "")


def idempotency_wait_seconds() -> int:
    """How long a request waits for a concurrent request with the same Idempotency-Key."""
    return setting_int("LEADLEX_IMPORT_IDEMPOTENCY_WAIT_SECONDS", 60)


def sniff_bytes() -> int:
    """How much of a CSV file's start the encoding and delimiter are found from (and
    checked against: a byte there that does not decode is a 400; one after it is its
    row's error)."""
    return setting_int("LEADLEX_IMPORT_SNIFF_BYTES", SAMPLE_BYTES)


def expand_limits() -> Limits:
    """How far a compressed upload (gzip, zip, a workbook) may expand: at most this many
    times its own size (plus 16 MiB) and never past the byte cap (imports.formats)."""
    return Limits(
        max_ratio=setting_int("LEADLEX_IMPORT_MAX_EXPANSION_RATIO", 200),
        max_bytes=setting_int("LEADLEX_IMPORT_MAX_EXPANDED_BYTES", 8 * 1024**3),
    )


def upload_ttl_seconds() -> int:
    """How long an upload (POST /v1/uploads) lives: its links work and its bytes are kept
    this long after it was created; then the sweeper deletes them."""
    return setting_int("LEADLEX_UPLOAD_TTL", 24 * 3600)


def upload_max_bytes() -> int:
    """The largest file an upload takes."""
    return setting_int("LEADLEX_UPLOAD_MAX_BYTES", 20 * 1024**3)


def upload_single_part_max_bytes() -> int:
    """The largest file sent in one PUT (S3's own limit for one PUT is 5 GiB); a larger
    file is sent in parts."""
    return setting_int("LEADLEX_UPLOAD_SINGLE_PART_MAX_BYTES", 5 * 1024**3)
