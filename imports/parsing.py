"""The one import parser: ``rows`` (JSON objects) or CSV text → candidate rows.

Pure: no database, no Django settings. Every surface (API body, text/csv body,
multipart upload, admin form, ``import_contacts`` command, queued job reading
its stored payload) comes through here, so a file means the same thing wherever
it is uploaded.

Row numbers are what a spreadsheet user sees: with a header, the header is row 1
and the first data row is row 2; a record with a quoted multi-line field is one
row. For ``rows`` the first object is row 1.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from contacts.validation import CONTACT_INPUT_FIELDS
from imports import formats
from imports.dialect import encoding_label
from imports.formats import Limits
from imports.proposal import propose_mapping, proposed_mapping
from leadlex.parsers import json_value_problem

# Fields a row may carry: those of POST /v1/contacts, one list for both ways in.
# "custom.<name>" targets one custom field.
CONTACT_FIELDS: tuple[str, ...] = CONTACT_INPUT_FIELDS
CUSTOM_PREFIX = "custom."
# Output fields of our own exports that are not input: ignored so that an export
# file imports back as it is.
READ_ONLY_FIELDS: frozenset[str] = frozenset({"id", "updated_at", "emails", "comet_tokens", "company"})
# One field is at most this long: a runaway quote cannot make one "field" eat
# the whole file before it is reported.
MAX_FIELD_CHARS = 1024 * 1024


class MappingError(ValueError):
    """The request's mapping/header combination is unusable: a 400 for the whole request."""


@dataclass
class RowError:
    row: int
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


@dataclass
class SourceRow:
    """A candidate row: ``data`` with the mapped raw values, or ``error`` when the
    record itself is unreadable. ``record`` counts data records from 0 (the resume
    checkpoint), independent of the header."""

    row: int
    record: int
    data: dict[str, Any] | None = None
    error: RowError | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# Import-only targets: two columns the import joins into full_name ("Ada" + "Lovelace").
NAME_PARTS: tuple[str, ...] = ("first_name", "last_name")


def is_target(name: str) -> bool:
    return (
        name in CONTACT_FIELDS
        or name in NAME_PARTS
        or (name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX))
    )


# --- mapping --------------------------------------------------------------------------


def validate_mapping(mapping: Any, *, has_header: bool) -> dict[str, str] | None:
    """Check the shape of a mapping (source column → contact field). ``None`` = no mapping."""
    if mapping is None:
        return None
    if isinstance(mapping, (str, bytes)):
        try:
            mapping = orjson.loads(mapping)
        except orjson.JSONDecodeError:
            raise MappingError("mapping must be a JSON object of column → contact field.") from None
    if not isinstance(mapping, Mapping):
        raise MappingError("mapping must be an object of column → contact field.")
    out: dict[str, str] = {}
    seen_targets: dict[str, str] = {}
    for source, target in mapping.items():
        if not isinstance(source, str) or not isinstance(target, str):
            raise MappingError("mapping keys and values must be strings.")
        target = target.strip()
        if not is_target(target):
            raise MappingError(
                f"mapping[{source!r}]: {target!r} is not a contact field "
                f"(one of {', '.join(CONTACT_FIELDS)}, first_name and last_name, or custom.<name>)."
            )
        if not has_header and not (source.strip().isdigit()):
            raise MappingError(f"mapping key {source!r}: without a header, columns are 0-based positions as strings.")
        if target in seen_targets:
            raise MappingError(f"mapping: columns {seen_targets[target]!r} and {source!r} both map to {target!r}.")
        seen_targets[target] = source
        out[source.strip() if not has_header else source] = target
    if not out:
        raise MappingError("mapping is empty: map at least one column to a contact field.")
    if "full_name" in seen_targets and any(part in seen_targets for part in NAME_PARTS):
        raise MappingError("mapping: map either full_name or first_name/last_name (joined into full_name), not both.")
    return out


def resolve_columns(header: list[str] | None, mapping: dict[str, str] | None) -> dict[int, str]:
    """Column index → target field."""
    if header is None:
        if mapping is None:
            raise MappingError("has_header is false: give a mapping of 0-based column positions to fields.")
        return {int(source): target for source, target in mapping.items()}
    if mapping is None:
        columns = {}
        for index, name in enumerate(header):
            key = name.strip()
            if is_target(key):
                columns[index] = key
            elif is_target(key.lower()):
                columns[index] = key.lower()
        if not columns:
            proposal = proposed_mapping(propose_mapping(header, []))
            hint = f"; this one would do: {orjson.dumps(proposal).decode()}" if proposal else ""
            raise MappingError(
                f"No header names a contact field; give a mapping (header: {', '.join(h for h in header[:20])}){hint}."
            )
        return columns
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        positions.setdefault(name, index)
        positions.setdefault(name.strip(), index)
    columns = {}
    for source, target in mapping.items():
        if source not in positions:
            raise MappingError(f"mapping refers to column {source!r}, which is not in the header.")
        columns[positions[source]] = target
    return columns


# --- CSV ------------------------------------------------------------------------------


def text_stream(data: str | bytes | IO[bytes], encoding: str = "utf-8-sig") -> Iterator[str]:
    """Lines (ends kept) of the input in ``encoding`` (imports.dialect finds it), CRLF or
    LF, decoded incrementally so a stored file of any size streams in constant memory.
    ``newline=""`` as the csv module wants: line ends inside quoted fields are kept.
    A byte the encoding cannot read becomes a lone surrogate (``surrogateescape``), which
    makes its row an ``invalid_encoding`` error: nothing is replaced silently."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            data = data[1:]
        return iter(io.StringIO(data, newline=""))
    if isinstance(data, bytes):
        data = io.BytesIO(data)
    if encoding in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # a BOM is never a character of the header
    buffered = io.BufferedReader(_RawAdapter(data), buffer_size=1024 * 1024)
    return iter(io.TextIOWrapper(buffered, encoding=encoding, errors=_UNDECODED_HANDLER, newline=""))


# Bytes that do not decode become U+DC00 + byte (as ``surrogateescape``, for any byte),
# and the handler counts them, so that rows are searched for them only once a stream
# has had one: a clean file pays nothing.
_UNDECODED_HANDLER = "leadlex-undecoded"
_UNDECODED = re.compile("[\udc00-\udcff]")
_undecoded_count = 0


def _mark_undecoded(exc: UnicodeError) -> tuple[str, int]:
    global _undecoded_count
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _undecoded_count += 1
    return "".join(chr(0xDC00 + byte) for byte in exc.object[exc.start : exc.end]), exc.end


codecs.register_error(_UNDECODED_HANDLER, _mark_undecoded)


def _undecoded_bytes(cell: str) -> str:
    return " ".join(f"0x{ord(ch) - 0xDC00:02X}" for ch in _UNDECODED.findall(cell)[:4])


class _RawAdapter(io.RawIOBase):
    """Any object with ``read(n)`` (a file, an S3 streaming body) as a raw stream."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _LineFeed:
    """Feeds csv.reader one physical line at a time and remembers the lines of the
    record being read, so a record with an unbalanced quote can be reported and the
    lines after its first one read again."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._replay: list[str] = []
        self.current: list[str] = []
        self.chars = 0

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = self._replay.pop() if self._replay else next(self._lines)
        self.current.append(line)
        self.chars += len(line)
        if self.chars > MAX_FIELD_CHARS and len(self.current) > 1:
            raise csv.Error("runaway quoted field")
        return line

    def start_record(self) -> None:
        self.current = []
        self.chars = 0

    def replay_after_first(self) -> None:
        """Push back all lines of the failed record except its first one."""
        rest = self.current[1:]
        self._replay.extend(reversed(rest))
        self.current = []
        self.chars = 0


def iter_csv_records(lines: Iterator[str], delimiter: str = ",") -> Iterator[tuple[list[str] | None, str | None]]:
    """(fields, None) per record, or (None, message) for a malformed record."""
    feed = _LineFeed(lines)
    while True:
        feed.start_record()
        reader = csv.reader(feed, strict=True, delimiter=delimiter)
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = str(exc)
            if len(feed.current) > 1 or "end of data" in message or "runaway" in message:
                # Unbalanced quote: the record swallowed the lines after it. Report this
                # record and read the following lines again as records of their own.
                feed.replay_after_first()
                yield None, "Unbalanced quote: this row opens a quoted field that is never closed."
            else:
                yield None, f"Malformed CSV row: {message}."
            continue
        yield record, None


def iter_csv(
    data: str | bytes | IO[bytes],
    *,
    has_header: bool = True,
    mapping: dict[str, str] | None = None,
    skip_records: int = 0,
    encoding: str = "utf-8-sig",
    delimiter: str = ",",
) -> Iterator[SourceRow]:
    """Candidate rows of a CSV file. Raises ``MappingError`` (before any row) when the
    header and mapping do not fit together."""
    records = iter_csv_records(text_stream(data, encoding), delimiter)
    return iter_table(records, has_header=has_header, mapping=mapping, skip_records=skip_records, encoding=encoding)


def iter_table(
    records: Iterator[tuple[list[str] | None, str | None]],
    *,
    has_header: bool = True,
    mapping: dict[str, str] | None = None,
    skip_records: int = 0,
    encoding: str | None = None,
    what: str = "CSV",
) -> Iterator[SourceRow]:
    """Candidate rows of a table's records (a CSV file's, a sheet's). ``encoding``: the
    records were decoded from bytes in it, so a row may hold bytes that did not decode."""
    undecoded_before, searching = _undecoded_count, False
    header: list[str] | None = None
    leading_blank = 0
    if has_header:
        for fields, problem in records:
            if fields is None:
                raise MappingError(f"The {what} header row is malformed: {problem}")
            if not any(cell.strip() for cell in fields):
                leading_blank += 1  # blank lines before the header
                continue
            if encoding is not None and any(_UNDECODED.search(cell) for cell in fields):
                raise MappingError(f"The {what} header row has bytes that are not valid {encoding_label(encoding)}.")
            header = fields
            break
        else:
            raise MappingError(f"The {what} is empty: it has no header row.")
    columns = resolve_columns(header, mapping)
    width = len(header) if header is not None else None
    offset = (2 if has_header else 1) + leading_blank
    # Blank lines count as records (and rows, as in a spreadsheet) but import nothing.
    for record_index, (fields, problem) in enumerate(records):
        if record_index < skip_records:
            continue
        row_number = record_index + offset
        if fields is None:
            yield SourceRow(
                row=row_number,
                record=record_index,
                error=RowError(row_number, "", "malformed_csv", problem or "Malformed CSV row."),
            )
            continue
        if not fields or not any(cell.strip() for cell in fields):
            continue
        if width is not None and len(fields) > width and any(cell.strip() for cell in fields[width:]):
            yield SourceRow(
                row=row_number,
                record=record_index,
                error=RowError(
                    row_number,
                    "",
                    "too_many_columns",
                    f"This row has {len(fields)} columns but the header has {width}.",
                ),
            )
            continue
        if not searching and encoding is not None and _undecoded_count != undecoded_before:
            searching = True  # this stream (or another, in another thread) had undecodable bytes
        undecoded = next((cell for cell in fields if _UNDECODED.search(cell)), None) if searching else None
        if undecoded is not None:
            yield SourceRow(
                row=row_number,
                record=record_index,
                error=RowError(
                    row_number,
                    "",
                    "invalid_encoding",
                    f"This row has bytes that are not valid {encoding_label(encoding or 'utf-8')} "
                    f"({_undecoded_bytes(undecoded)}); it was not imported.",
                ),
            )
            continue
        source = SourceRow(row=row_number, record=record_index, data=_map_fields(fields, columns))
        # Only a NUL can be unstorable now (undecodable bytes were caught above); a look for one is cheap.
        yield _checked(source) if any("\x00" in cell for cell in fields) else source


def _map_fields(fields: list[str], columns: dict[int, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    parts: dict[str, str] = {}
    for index, target in columns.items():
        if index >= len(fields):
            continue
        value = fields[index].strip()
        if value == "":
            continue  # an empty cell means "no value", never "clear this field"
        if target.startswith(CUSTOM_PREFIX):
            data.setdefault("custom", {})[target[len(CUSTOM_PREFIX) :]] = value
        elif target == "custom":
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed = value  # validation reports "must be a JSON object"
            if isinstance(parsed, dict) and isinstance(data.get("custom"), dict):
                data["custom"] = {**parsed, **data["custom"]}
            else:
                data["custom"] = parsed
        elif target == "lists":
            data["lists"] = [item.strip() for item in value.split(",") if item.strip()]
        elif target in NAME_PARTS:
            parts[target] = value
        else:
            data[target] = value
    if parts and "full_name" not in data:
        data["full_name"] = " ".join(parts[part] for part in NAME_PARTS if part in parts)
    return data


@dataclass(frozen=True)
class FileSpec:
    """How to read an import's file: its format and compression (imports.formats), and
    for CSV the encoding and delimiter (imports.dialect); for a workbook, the sheet."""

    format: str = "csv"
    compression: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    sheet: str | None = None
    limits: Limits = formats.DEFAULT_LIMITS


def file_records(data: str | bytes | IO[bytes], spec: FileSpec) -> Iterator[tuple[list[str] | None, str | None]]:
    """The records of any file an import reads, in the shape of ``iter_csv_records``."""
    if spec.format == "xlsx":
        return formats.iter_xlsx_records(_binary(data), sheet=spec.sheet, limits=spec.limits)
    if spec.compression is not None:
        data = formats.open_csv_bytes(_binary(data), spec.compression, spec.limits)
    return iter_csv_records(text_stream(data, spec.encoding), spec.delimiter)


def iter_file(
    data: str | bytes | IO[bytes],
    spec: FileSpec,
    *,
    has_header: bool = True,
    mapping: dict[str, str] | None = None,
    skip_records: int = 0,
) -> Iterator[SourceRow]:
    """Candidate rows of any file an import reads (CSV, compressed CSV, a workbook's sheet)."""
    return iter_table(
        file_records(data, spec),
        has_header=has_header,
        mapping=mapping,
        skip_records=skip_records,
        encoding=None if spec.format == "xlsx" else spec.encoding,
        what="sheet" if spec.format == "xlsx" else "CSV",
    )


def count_file_records(data: str | bytes | IO[bytes], spec: FileSpec, *, has_header: bool = True) -> int:
    """Non-blank data records (malformed ones included), for the ≤ 500 sync/queued decision."""
    count = 0
    for fields, _problem in file_records(data, spec):
        if fields is not None and not any(cell.strip() for cell in fields):
            continue
        count += 1
    return max(0, count - 1) if has_header else count


def _binary(data: str | bytes | IO[bytes]) -> IO[bytes]:
    if isinstance(data, str):
        return io.BytesIO(data.encode())
    return io.BytesIO(data) if isinstance(data, bytes) else data


# --- JSON rows -------------------------------------------------------------------------


def iter_rows(rows: Iterable[Any], *, skip_records: int = 0) -> Iterator[SourceRow]:
    for index, item in enumerate(rows):
        if index < skip_records:
            continue
        yield _row_from_object(index, item)


def iter_ndjson(data: bytes | IO[bytes], *, skip_records: int = 0) -> Iterator[SourceRow]:
    """The stored form of a queued ``rows`` import: one JSON object per line."""
    # Lines of any object with read(n) (a local file, an S3 streaming body, whose own
    # iteration yields fixed-size chunks rather than lines).
    fh = io.BytesIO(data) if isinstance(data, bytes) else io.BufferedReader(_RawAdapter(data), 1024 * 1024)
    for index, line in enumerate(fh):
        if index < skip_records:
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield SourceRow(
                row=index + 1, record=index, error=RowError(index + 1, "", "invalid_row", "This row is not valid JSON.")
            )
            continue
        yield _row_from_object(index, item)


def _row_from_object(index: int, item: Any) -> SourceRow:
    if not isinstance(item, dict):
        return SourceRow(
            row=index + 1, record=index, error=RowError(index + 1, "", "invalid_row", "Each row must be a JSON object.")
        )
    data = {key: value for key, value in item.items() if key not in READ_ONLY_FIELDS}
    return _checked(SourceRow(row=index + 1, record=index, data=data))


def _checked(source: SourceRow) -> SourceRow:
    """A value no database can store (a NUL) is its row's error, whatever field holds it."""
    problem = json_value_problem(source.data)
    if problem is None:
        return source
    path, message = problem
    field = path.split(".", 1)[0].split("[", 1)[0]
    return SourceRow(
        row=source.row, record=source.record, error=RowError(source.row, field, "invalid_value", f"{path} {message}.")
    )


def rows_to_ndjson(rows: Iterable[Any]) -> Iterator[bytes]:
    for item in rows:
        yield orjson.dumps(item) + b"\n"
