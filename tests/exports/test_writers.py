"""Pure writer parts: CSV quoting and formula policy, timestamps, gzip members."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exports.writers import GzipMember, csv_cell, csv_neutralise, csv_row, format_timestamp, join_json_items


@pytest.mark.parametrize(
    "value",
    [
        "+1-555-0100",
        "-42.5",
        "+44 (20) 7946 0018",
        "-7",
        "+15550100",
        "(555) 010-0100",
        "plain",
        "",
        "a=b",
        "mail@example.com",
    ],
)
def test_it_leaves_numbers_phones_and_plain_text_alone(value: str) -> None:
    assert csv_neutralise(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "=1+2",
        '=HYPERLINK("http://x")',
        "+SUM(A1)",
        "-2+3*cmd|' /C calc'!A0",
        "@SUM(1)",
        "\t=1",
        "\r=1",
        "-",
        "+1-555-0100 ext. 4",
        "-1e5",
    ],
)
def test_it_neutralises_cells_a_spreadsheet_would_run(value: str) -> None:
    assert csv_neutralise(value) == "'" + value


def test_it_quotes_per_rfc_4180() -> None:
    assert csv_cell('say "hi"') == '"say ""hi"""'
    assert csv_cell("a,b") == '"a,b"'
    assert csv_cell("two\nlines") == '"two\nlines"'
    assert csv_row(["a", "", "b"]) == "a,,b\r\n"
    assert csv_row([""]) == '""\r\n'


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30), min_size=1, max_size=6))
def test_csv_rows_read_back_with_csv_reader(cells: list[str]) -> None:
    parsed = next(csv.reader(io.StringIO(csv_row(cells), newline="")))
    assert parsed == [csv_neutralise(c) for c in cells]


def test_timestamps_are_utc_z_with_microseconds_only_when_present() -> None:
    berlin = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 4, 15, 11, 0, tzinfo=berlin)) == "2026-04-15T09:00:00Z"
    assert format_timestamp(datetime(2026, 4, 15, 9, 0, 0, 250000, tzinfo=UTC)) == "2026-04-15T09:00:00.250000Z"
    assert format_timestamp(None) is None


def test_concatenated_gzip_members_read_as_one_file() -> None:
    members = []
    for part in (b"first line\n", b"", b"second line\n" * 1000):
        member = GzipMember(level=1)
        member.write(part)
        members.append(member.finish())
    assert gzip.decompress(b"".join(members)) == b"first line\n" + b"second line\n" * 1000


def test_json_items_carry_their_separator_after_the_first_batch() -> None:
    assert join_json_items([b"1", b"2"], first=True) == b"1,\n2"
    assert join_json_items([b"3"], first=False) == b",\n3"
    assert join_json_items([], first=False) == b""
