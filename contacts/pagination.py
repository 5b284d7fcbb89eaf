"""Keyset (cursor) pagination over ``(created_at, id)``.

An offset would lose or repeat rows while contacts are inserted between two
pages; a cursor on ``created_at`` alone would lose rows when many share one
timestamp (imports, the seeder). The pair is unique and indexed
(``workspace, created_at, id``) on every paginated model.

The cursor is the last row's key, signed so that a client cannot craft one
that leaks into another ordering or crashes the parser: it is opaque.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from django.core import signing
from django.db.models import Model, Q, QuerySet

from leadlex.errors import ValidationFailed

T = TypeVar("T", bound=Model)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_SALT = "leadlex.cursor.v1"


@dataclass(frozen=True)
class CursorKey:
    created_at: dt.datetime
    id: Any


@dataclass
class Page(Generic[T]):
    rows: list[T]
    next_cursor: str | None


def encode_cursor(*, created_at: dt.datetime, pk: Any) -> str:
    return signing.dumps([created_at.isoformat(), str(pk)], salt=_SALT, compress=True)


def decode_cursor(cursor: str) -> CursorKey:
    try:
        created_at_raw, pk_raw = signing.loads(cursor, salt=_SALT)
        created_at = dt.datetime.fromisoformat(created_at_raw)
    except (signing.BadSignature, ValueError, TypeError):
        raise ValidationFailed("The cursor is not valid; use next_cursor from a previous page.",
                               details={"field": "cursor"}) from None
    return CursorKey(created_at=created_at, id=pk_raw)


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(f"limit must be an integer between 1 and {maximum}.", details={"field": "limit"}) from None
    if not 1 <= value <= maximum:
        raise ValidationFailed(f"limit must be between 1 and {maximum}.", details={"field": "limit"})
    return value


def after_cursor(queryset: QuerySet[T], cursor: str | None) -> QuerySet[T]:
    """Rows strictly after the cursor's row in ``(created_at, id)`` order."""
    queryset = queryset.order_by("created_at", "id")
    if not cursor:
        return queryset
    key = decode_cursor(cursor)
    pk: Any = key.id
    if isinstance(queryset.model._meta.pk.to_python(pk), uuid.UUID):
        pk = uuid.UUID(pk)
    return queryset.filter(Q(created_at__gt=key.created_at) | Q(created_at=key.created_at, pk__gt=pk))


def paginate(queryset: QuerySet[T], *, cursor: str | None, limit: int) -> Page[T]:
    """One page; ``next_cursor`` is None on the last page. One query: limit + 1 rows."""
    rows = list(after_cursor(queryset, cursor)[: limit + 1])
    if len(rows) <= limit:
        return Page(rows=rows, next_cursor=None)
    rows = rows[:limit]
    last = rows[-1]
    return Page(rows=rows, next_cursor=encode_cursor(created_at=last.created_at, pk=last.pk))


def next_link(*, url: str, params: dict[str, Any], next_cursor: str) -> str:
    """The RFC 8288 ``Link`` header value for the next page, keeping the other parameters."""
    query = {k: v for k, v in params.items() if k != "cursor"}
    query["cursor"] = next_cursor
    return f'<{url}?{urlencode(query, doseq=True)}>; rel="next"'
