"""The files an import reads besides plain CSV: gzip and zip archives of one CSV, and
Excel workbooks (``.xlsx``). Pure: no database, no Django.

Each is read as a stream: gzip is decompressed as it is read, a zip's one CSV member
likewise, a workbook's sheet row by row (openpyxl's read-only mode). An archive or a
workbook needs a seekable file (its directory is at its end): a stream that is not one
(an S3 body) is first copied to a temporary file on disk, never to memory; gzip needs
no seeking.

Decompression is bounded: a file may expand to at most ``max_ratio`` times its
compressed size (plus 16 MiB, for small files that compress well) and never beyond
``max_bytes``; past that it is refused as what it most likely is, a zip bomb.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SLACK = 16 * 1024 * 1024


class FileFormatError(ValueError):
    """The file cannot be read as what it is (a broken archive, a missing sheet, a bomb): a 400."""

    def __init__(self, message: str, *, field: str = "file") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Limits:
    max_ratio: int
    max_bytes: int

    def allowed(self, compressed: int) -> int:
        return min(self.max_bytes, compressed * self.max_ratio + _SLACK)


DEFAULT_LIMITS = Limits(max_ratio=200, max_bytes=8 * 1024**3)


def sniff_format(head: bytes, *, file_name: str = "", content_type: str = "") -> tuple[str, str | None]:
    """(format, compression) of a file from its first bytes and its name: ("csv", None),
    ("csv", "gzip"), ("csv", "zip") or ("xlsx", None). A zip whose name or media type
    says workbook is one; any other zip may still be one (``zip_is_workbook`` tells)."""
    name = file_name.lower()
    if head.startswith(GZIP_MAGIC):
        return "csv", "gzip"
    if head.startswith(ZIP_MAGIC):
        if name.endswith((".xlsx", ".xlsm")) or content_type == XLSX_CONTENT_TYPE:
            return "xlsx", None
        return "csv", "zip"
    return "csv", None


def zip_is_workbook(fh: IO[bytes]) -> bool:
    """Whether a zip archive is an Excel workbook (it has ``xl/workbook.xml``)."""
    try:
        return "xl/workbook.xml" in zipfile.ZipFile(seekable(fh)).namelist()
    except zipfile.BadZipFile:
        return False


def seekable(fh: IO[bytes]) -> IO[bytes]:
    """``fh`` itself when it can seek, else a temporary file with its bytes."""
    try:
        if fh.seekable():
            return fh
    except (AttributeError, OSError):
        pass
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it, as it would the stream
    shutil.copyfileobj(fh, spool, 1024 * 1024)
    spool.seek(0)
    return spool


def _size(fh: IO[bytes]) -> int:
    position = fh.tell()
    end = fh.seek(0, io.SEEK_END)
    fh.seek(position)
    return end - position


class _Counting(io.RawIOBase):
    """Reads ``inner`` and counts the bytes (the compressed side of a stream)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self.count += len(data)
        buffer[: len(data)] = data
        return len(data)


class _Bounded(io.RawIOBase):
    """Reads the expanded stream ``inner`` and refuses to give more than ``limits``
    allow for the compressed bytes read so far (``compressed()``)."""

    def __init__(self, inner: Any, limits: Limits, compressed: Callable[[], int], what: str) -> None:
        self._inner = inner
        self._limits = limits
        self._compressed = compressed
        self._what = what
        self._expanded = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile) as exc:
            raise FileFormatError(f"{self._what} is broken or cut short ({exc or type(exc).__name__}).") from None
        self._expanded += len(data)
        if self._expanded > self._limits.allowed(self._compressed()):
            raise FileFormatError(
                f"{self._what} expands to more than {self._limits.max_ratio} times its size "
                f"(or past {self._limits.max_bytes // 1024**2:,} MiB); it is refused as a likely zip bomb. "
                "Send it uncompressed, or split it."
            )
        buffer[: len(data)] = data
        return len(data)


def open_csv_bytes(fh: IO[bytes], compression: str | None, limits: Limits) -> IO[bytes]:
    """The CSV bytes inside ``fh`` (itself, or decompressed as it is read)."""
    if compression is None:
        return fh
    if compression == "gzip":
        # Streamed from any reader: the bound follows the compressed bytes read so far.
        counted = _Counting(fh)
        source = gzip.GzipFile(fileobj=io.BufferedReader(counted, 1024 * 1024))
        return io.BufferedReader(_Bounded(source, limits, lambda: counted.count, "The gzip file"), 1024 * 1024)
    if compression == "zip":
        fh = seekable(fh)
        compressed_size = _size(fh)
        try:
            archive = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise FileFormatError("The file is not a readable zip archive.") from None
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and not info.filename.startswith("__MACOSX/")
            and not info.filename.endswith(".DS_Store")
        ]
        if len(members) != 1:
            names = ", ".join(info.filename for info in members[:5]) or "none"
            raise FileFormatError(
                f"A zip file must hold exactly one CSV file; this one holds {len(members)} ({names})."
            )
        [member] = members
        allowed = limits.allowed(compressed_size)
        if member.file_size > allowed:
            raise FileFormatError(
                f"{member.filename} in the zip file expands to {member.file_size:,} bytes, more than the "
                f"{allowed:,} allowed for a file of this size; it is refused as a likely zip bomb."
            )
        # The member's declared size is checked above; what it really expands to, here.
        return io.BufferedReader(_Bounded(archive.open(member), limits, lambda: compressed_size, "The zip file"))
    raise ValueError(f"unknown compression {compression!r}")


# --- Excel ---------------------------------------------------------------------------------


def open_workbook(fh: IO[bytes], limits: Limits) -> Any:
    """An openpyxl read-only workbook over ``fh``, after a look at the sizes its parts
    declare (a workbook is a zip archive too)."""
    import openpyxl  # imported on use: most imports are CSV

    fh = seekable(fh)
    compressed_size = _size(fh)
    try:
        expanded = sum(info.file_size for info in zipfile.ZipFile(fh).infolist())
    except zipfile.BadZipFile:
        raise FileFormatError("The file is not a readable Excel workbook (.xlsx).") from None
    if expanded > limits.allowed(compressed_size):
        raise FileFormatError(f"The workbook expands to {expanded:,} bytes; it is refused.")
    fh.seek(0)
    try:
        return openpyxl.load_workbook(fh, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken file
        raise FileFormatError(f"The file is not a readable Excel workbook (.xlsx): {exc}.") from None


def workbook_sheet(workbook: Any, sheet: str | None) -> Any:
    if not sheet:
        return workbook.worksheets[0]
    if sheet not in workbook.sheetnames:
        raise FileFormatError(
            f"The workbook has no sheet named {sheet!r}; its sheets: {', '.join(workbook.sheetnames)}.", field="sheet"
        )
    return workbook[sheet]


def iter_xlsx_records(fh: IO[bytes], *, sheet: str | None, limits: Limits) -> Iterator[tuple[list[str], None]]:
    """The sheet's rows as lists of the text each cell showed, in the shape of
    ``parsing.iter_csv_records``."""
    workbook = open_workbook(fh, limits)
    try:
        rows = workbook_sheet(workbook, sheet).iter_rows()
        for row in rows:
            yield [cell_text(cell) for cell in row], None
    finally:
        workbook.close()


def cell_text(cell: Any) -> str:
    """What a person saw in the cell, as import text: a number stored as a number keeps
    all its digits (a phone is not ``4.91511E+12``), zero-padded formats keep their
    zeros (``00501``), fixed decimals their decimals, percentages their ``%``; dates and
    times become ISO 8601, which every date field reads; text stays as it was typed."""
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and not _has_time(cell):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        return _number_text(value, getattr(cell, "number_format", "General") or "General")
    return str(value)


def _has_time(cell: Any) -> bool:
    fmt = (getattr(cell, "number_format", "") or "").lower()
    return "h" in fmt or "s" in fmt


def _number_text(value: float | int | Decimal, number_format: str) -> str:
    fmt = number_format.split(";", 1)[0].strip()
    if fmt.endswith("%"):
        decimals = _decimals(fmt[:-1])
        return f"{float(value) * 100:.{decimals}f}%"
    plain = fmt.replace("#", "").replace(",", "")
    if plain and set(plain) <= set("0.") and plain.count(".") <= 1:
        whole, _, fraction = plain.partition(".")
        text = f"{float(value):.{len(fraction)}f}" if fraction else _integral(value)
        if fraction:
            return text.rjust(len(whole) + 1 + len(fraction), "0") if len(whole) > 1 else text
        return text.rjust(len(whole), "0")
    return _integral(value) if float(value).is_integer() else repr(float(value))


def _decimals(fmt: str) -> int:
    _, _, fraction = fmt.partition(".")
    return len(fraction)


def _integral(value: float | int | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    number = Decimal(str(value)) if isinstance(value, float) else value
    if number == number.to_integral_value():
        return str(int(number))
    return str(number)
