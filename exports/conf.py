"""Export engine settings: defaults in code, overridable by Django settings (tests)
or by the environment (parsed only through ``leadlex.env``, strictly).

They are read on each use, not at import (``leadlex.conf``), so ``settings``
overrides in tests and env vars passed to a test's worker process both take effect.
"""

from __future__ import annotations

from django.conf import settings

from leadlex.conf import setting_bool, setting_int

S3_MIN_PART_SIZE = 5 * 1024 * 1024


def batch_size() -> int:
    """Rows per keyset batch (one or a few queries each)."""
    return setting_int("LEADLEX_EXPORT_BATCH_SIZE", 5000)


def chunk_bytes() -> int:
    """Compressed bytes after which the current gzip member is closed and committed
    (one S3 part, or an fsync'd append locally) and a checkpoint is written. S3 needs
    every part but the last to be at least 5 MiB, so the S3 backend never goes below."""
    value = setting_int("LEADLEX_EXPORT_CHUNK_BYTES", 8 * 1024 * 1024)
    if settings.LEADLEX_STORAGE_BACKEND == "s3":
        return max(value, S3_MIN_PART_SIZE)
    return max(value, 1)


def gzip_level() -> int:
    # Level 1, as the `gzip -1` baseline: exports are written once and read once;
    # the CPU is better spent producing rows.
    return setting_int("LEADLEX_EXPORT_GZIP_LEVEL", 1)


def render_threads() -> int:
    """PostgreSQL fast path: threads (each with its own database connection) that
    render batches ahead while the job compresses and uploads; 1 renders in the
    job's own connection, one batch at a time."""
    return max(1, setting_int("LEADLEX_EXPORT_RENDER_THREADS", 2))


def progress_rows() -> int:
    """Write processed_count / heartbeat at least every this many rows."""
    return setting_int("LEADLEX_EXPORT_PROGRESS_ROWS", 5000)


def stale_seconds() -> int:
    """A processing job whose heartbeat is older than this is taken over."""
    return setting_int("LEADLEX_EXPORT_STALE_SECONDS", 600)


def max_attempts() -> int:
    """Runs (claims) of one job before it is failed for good."""
    return setting_int("LEADLEX_EXPORT_MAX_ATTEMPTS", 5)


def retention_days() -> int:
    return setting_int("LEADLEX_EXPORT_RETENTION_DAYS", 7)


def download_ttl() -> int:
    return setting_int("LEADLEX_DOWNLOAD_URL_TTL", 15 * 60)


def sql_fast_path() -> bool:
    """On PostgreSQL let the database render the bytes (see exports/leadlex/kinds.py)."""
    return setting_bool("LEADLEX_EXPORT_SQL_FAST_PATH", True)


def task_soft_time_limit() -> int:
    return setting_int("LEADLEX_EXPORT_SOFT_TIME_LIMIT", 6000)
