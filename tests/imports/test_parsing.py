"""The pure parser: CSV dialect quirks, mappings, row numbers, malformed input."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from imports.parsing import (
    FileSpec,
    MappingError,
    count_file_records,
    iter_csv,
    iter_ndjson,
    iter_rows,
    validate_mapping,
)


def parse(text, **kwargs):
    return list(iter_csv(text, **kwargs))


def test_header_is_row_one_and_multiline_records_count_once():
    rows = parse('email,full_name\r\na@x.com,"two\r\nlines"\r\nb@x.com,B\r\n')
    assert [(r.row, r.data) for r in rows] == [
        (2, {"email": "a@x.com", "full_name": "two\r\nlines"}),
        (3, {"email": "b@x.com", "full_name": "B"}),
    ]


@pytest.mark.parametrize(
    "data",
    [
        "\ufeffemail\na@x.com\n",
        b"\xef\xbb\xbfemail\r\na@x.com\r\n",
        b"email\ra@x.com\r",
        "email\na@x.com",
    ],
)
def test_bom_and_every_line_ending(data):
    assert [r.data for r in parse(data)] == [{"email": "a@x.com"}]


def test_bytes_stream_input_streams():
    assert [r.data for r in parse(io.BytesIO(b"email\na@x.com\nb@x.com\n"))] == [
        {"email": "a@x.com"},
        {"email": "b@x.com"},
    ]


def test_unbalanced_quote_is_one_row_error_and_later_rows_survive():
    rows = parse('email,full_name\na@x.com,"open\nb@x.com,B\nc@x.com,C\n')
    assert rows[0].error.code == "malformed_csv" and rows[0].row == 2
    assert [r.data["email"] for r in rows[1:]] == ["b@x.com", "c@x.com"]
    assert [r.row for r in rows[1:]] == [3, 4]


def test_a_row_longer_than_the_header_is_an_error_but_trailing_empty_cells_are_not():
    rows = parse("email\na@x.com,extra\nb@x.com,,\n")
    assert rows[0].error.code == "too_many_columns"
    assert rows[1].data == {"email": "b@x.com"}


def test_blank_lines_import_nothing_but_keep_spreadsheet_row_numbers():
    rows = parse("email\n\na@x.com\n\n\nbad\n")
    assert [(r.row, r.data) for r in rows] == [(3, {"email": "a@x.com"}), (6, {"email": "bad"})]
    assert count_file_records("email\n\na@x.com\n\n\nbad\n", FileSpec()) == 2


def test_skip_records_resumes_exactly_where_a_checkpoint_says():
    text = "email\n" + "".join(f"p{i}@x.com\n" for i in range(10))
    all_rows = parse(text)
    assert [r.row for r in parse(text, skip_records=4)] == [r.row for r in all_rows[4:]]


def test_headers_naming_fields_map_themselves_case_insensitively_and_unknown_are_ignored():
    assert parse("Email, Full_Name ,colour\na@x.com,A,blue\n")[0].data == {"email": "a@x.com", "full_name": "A"}


def test_mapping_by_position_without_header():
    rows = parse("a@x.com,A\n", has_header=False, mapping={"1": "full_name", "0": "email"})
    assert rows[0].data == {"email": "a@x.com", "full_name": "A"} and rows[0].row == 1


@pytest.mark.parametrize(
    "mapping, has_header",
    [
        ({"a": "nope"}, True),
        ({"a": "email", "b": "email"}, True),
        ({"x": "email"}, False),
        ([], True),
        ({}, True),
        ("{not json", True),
        ({"a": 1}, True),
    ],
)
def test_bad_mappings_are_refused(mapping, has_header):
    with pytest.raises(MappingError):
        validate_mapping(mapping, has_header=has_header)


def test_mapping_to_a_missing_column_is_refused():
    with pytest.raises(MappingError):
        parse("email\na@x.com\n", mapping={"Mail": "email"})


def test_custom_columns_and_a_json_custom_column_merge():
    rows = parse('custom,custom.plan\n"{""a"": 1}",gold\n')
    assert rows[0].data == {"custom": {"a": 1, "plan": "gold"}}


def test_rows_and_ndjson_number_from_one_and_ignore_read_only_fields():
    assert [(r.row, r.data) for r in iter_rows([{"id": "x", "email": "a"}, {"email": "b"}])] == [
        (1, {"email": "a"}),
        (2, {"email": "b"}),
    ]
    rows = list(iter_ndjson(b'{"email": "a", "updated_at": "x"}\nnot json\n[1]\n'))
    assert rows[0].data == {"email": "a"}
    assert [(r.row, r.error.code) for r in rows[1:]] == [(2, "invalid_row"), (3, "invalid_row")]


cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@hsettings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=8),
    st.sampled_from(["\r\n", "\n"]),
    st.booleans(),
)
def test_any_table_written_as_csv_reads_back(table, newline, bom):
    if newline == "\n":
        # Python's writer quotes only the terminator's characters: with "\n" it would
        # leave a bare "\r" unquoted, which no reader can tell from a line end.
        table = [[c.replace("\r", "") for c in row] for row in table]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_MINIMAL).writerows(
        [["full_name", "email", "job_title"], *table]
    )
    text = ("\ufeff" if bom else "") + buffer.getvalue()
    got = [r for r in parse(text.encode()) if r.data is not None or r.error is not None]
    expected = [
        {k: v.strip() for k, v in zip(("full_name", "email", "job_title"), row, strict=True) if v.strip()}
        for row in table
    ]
    # Rows whose cells are all blank are blank lines to a spreadsheet: nothing to import.
    assert [r.data for r in got] == [e for e, row in zip(expected, table, strict=True) if any(c.strip() for c in row)]


@hsettings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(data):
    try:
        rows = parse(b"email,full_name\n" + data)
    except MappingError:
        return
    assert all((r.data is None) != (r.error is None) for r in rows)
