"""Pure byte-producing parts of the export engine: no I/O, no database.

CSV
---
RFC 4180: fields separated by ``,``, rows end with CRLF, a field is quoted (``"``
doubled inside) exactly when it contains ``"``, ``,``, CR or LF. A row of a single
empty field is written ``""`` so that it is not read back as an empty line.

Formula injection (CSV only; NDJSON and JSON are never altered): a cell that
starts with ``=``, ``+``, ``-``, ``@``, TAB or CR would be run as a formula by a
spreadsheet, so it gets a leading ``'``, except when the whole cell is a plain
number or phone-number-like (``+1-555-0100``, ``-42.5``, ``+44 (20) 7946 0018``):
digits, spaces, ``( ) . -`` after an optional sign, which a spreadsheet can at
worst evaluate as arithmetic, never as a function or a link. The PostgreSQL fast
path applies the very same two patterns in SQL (``CSV_DANGER_RE`` /
``CSV_SAFE_RE`` are passed to it as parameters).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

CSV_DANGER_RE = "^[-=+@\t\r]"
CSV_SAFE_RE = "^[+-]?[0-9(][0-9 ().-]*$"
_danger = re.compile(CSV_DANGER_RE)
_safe = re.compile(CSV_SAFE_RE.rstrip("$"))
_needs_quotes = re.compile('[",\r\n]')


def csv_neutralise(value: str) -> str:
    if _danger.match(value) and not _safe.fullmatch(value):
        return "'" + value
    return value


def csv_cell(value: str) -> str:
    value = csv_neutralise(value)
    if _needs_quotes.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_row(cells: Sequence[str]) -> str:
    """One CSV line (with its CRLF) from already-stringified cells."""
    line = ",".join(csv_cell(c) for c in cells)
    if line == "" and len(cells) == 1:
        line = '""'
    return line + "\r\n"


def csv_header(columns: Sequence[str]) -> bytes:
    return csv_row(list(columns)).encode()


def format_timestamp(value: datetime | None) -> str | None:
    """UTC, ``Z``-suffixed, microseconds only when there are any:
    ``2026-04-15T09:00:00Z`` / ``2026-04-15T09:00:00.250000Z``."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def jsonb_text(value: Any) -> str:
    """JSON text laid out as PostgreSQL prints ``jsonb`` (keys ordered by length,
    then bytes; ``", "`` and ``": "`` separators), so that a JSON value in a CSV cell
    reads the same whichever path produced it."""

    def order(obj: Any) -> Any:
        if isinstance(obj, dict):
            keys = sorted(obj, key=lambda k: (len(k.encode()), k.encode()))
            return {k: order(obj[k]) for k in keys}
        if isinstance(obj, list):
            return [order(v) for v in obj]
        return obj

    return json.dumps(order(value), ensure_ascii=False)


class GzipMember:
    """Compresses into one complete gzip member. Members concatenate into a valid
    gzip file (RFC 1952), so a checkpoint can close one member, commit its bytes and
    start the next: committed bytes never need recompressing on resume."""

    def __init__(self, level: int = 1) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._out: list[bytes] = []
        self.compressed_size = 0
        self.raw_size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.raw_size += len(data)
        out = self._z.compress(data)
        if out:
            self._out.append(out)
            self.compressed_size += len(out)

    def finish(self) -> bytes:
        self._out.append(self._z.flush(zlib.Z_FINISH))
        data = b"".join(self._out)
        self._out = []
        return data


def join_json_items(items: Iterable[bytes], *, first: bool) -> bytes:
    """Items of a JSON array document: comma-separated, and comma-prefixed unless this
    batch starts the document (the engine writes ``[`` / ``]`` as header / footer)."""
    body = b",\n".join(items)
    if not body:
        return b""
    return body if first else b",\n" + body
