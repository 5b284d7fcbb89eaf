"""Keyset (cursor) pagination over ``(created_at, id)``.

Lists that read newest first (comet tokens) use ``(seen_at, id)`` descending.

An offset would lose or repeat rows while contacts are inserted between two
pages; a cursor on ``created_at`` alone would lose rows when many share one
timestamp (imports, the seeder). The pair is unique and indexed
(``workspace, created_at, id``) on every paginated model.

The cursor is the last row's key, signed so that a client cannot craft one
that leaks into another ordering or crashes the parser: it is opaque.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
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
        raise ValidationFailed(
            "The cursor is not valid; use next_cursor from a previous page.", details={"field": "cursor"}
        ) from None
    return CursorKey(created_at=created_at, id=pk_raw)


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(
            f"limit must be an integer between 1 and {maximum}.", details={"field": "limit"}
        ) from None
    if not 1 <= value <= maximum:
        raise ValidationFailed(f"limit must be between 1 and {maximum}.", details={"field": "limit"})
    return value


def after_cursor(
    queryset: QuerySet[T], cursor: str | None, *, key: str = "created_at", descending: bool = False
) -> QuerySet[T]:
    """Rows strictly after the cursor's row in ``(key, pk)`` order (both descending if asked)."""
    queryset = queryset.order_by(f"-{key}", "-pk") if descending else queryset.order_by(key, "pk")
    if not cursor:
        return queryset
    position = decode_cursor(cursor)
    try:
        pk = queryset.model._meta.pk.to_python(position.id)
    except DjangoValidationError:
        raise ValidationFailed(
            "The cursor is not valid; use next_cursor from a previous page.", details={"field": "cursor"}
        ) from None
    op = "lt" if descending else "gt"
    return queryset.filter(
        Q(**{f"{key}__{op}": position.created_at}) | Q(**{key: position.created_at, f"pk__{op}": pk})
    )


def paginate(
    queryset: QuerySet[T], *, cursor: str | None, limit: int, key: str = "created_at", descending: bool = False
) -> Page[T]:
    """One page; ``next_cursor`` is None on the last page. One query: limit + 1 rows."""
    rows = list(after_cursor(queryset, cursor, key=key, descending=descending)[: limit + 1])
    if len(rows) <= limit:
        return Page(rows=rows, next_cursor=None)
    rows = rows[:limit]
    last = rows[-1]
    return Page(rows=rows, next_cursor=encode_cursor(created_at=getattr(last, key), pk=last.pk))


def next_link(*, url: str, params: dict[str, Any], next_cursor: str) -> str:
    """The RFC 8288 ``Link`` header value for the next page, keeping the other parameters."""
    query = {k: v for k, v in params.items() if k != "cursor"}
    query["cursor"] = next_cursor
    return f'<{url}?{urlencode(query, doseq=True)}>; rel="next"'
