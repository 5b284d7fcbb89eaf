"""Unit tests of the pure contact validators shared by the API and the import engine."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contacts.validation import (
    CONTACT_MAX_LENGTHS,
    ContactInputError,
    clean_contact_input,
    normalize_email,
    normalize_phone,
    parse_created_at,
    parse_tags,
    validate_custom,
    validate_url,
)


class TestNormalizeEmail:
    def test_it_lowercases_the_domain_and_keeps_the_local_part(self):
        assert normalize_email("  Jane.Doe@Example.COM ") == "Jane.Doe@example.com"

    def test_it_accepts_internationalised_domains(self):
        assert normalize_email("info@bücher.de") == "info@bücher.de"
        assert normalize_email("info@xn--bcher-kva.de") == "info@bücher.de"

    @pytest.mark.parametrize("bad", ["", "   ", "nobody", "a@", "@b.com", "a@b", "a b@c.com", "a@-b.com", "a@@b.com"])
    def test_it_rejects_malformed_addresses_with_a_message(self, bad):
        with pytest.raises(ValueError) as info:
            normalize_email(bad)
        assert str(info.value)

    def test_it_rejects_non_strings(self):
        with pytest.raises(ValueError, match="string"):
            normalize_email(42)

    def test_it_rejects_addresses_longer_than_the_column(self):
        with pytest.raises(ValueError, match="too long"):
            normalize_email("a" * 250 + "@example.com")

    @given(st.emails())
    def test_every_generated_address_normalises_idempotently(self, address):
        once = normalize_email(address)
        assert normalize_email(once) == once


class TestNormalizePhone:
    @pytest.mark.parametrize(
        "raw", ["(415) 555-2671", "415.555.2671", "+1 415 555 2671", "14155552671", "+14155552671"]
    )
    def test_us_numbers_become_e164(self, raw):
        assert normalize_phone(raw) == "+14155552671"

    def test_international_numbers_keep_their_country(self):
        assert normalize_phone("+44 20 7946 0958") == "+442079460958"

    def test_the_region_reads_numbers_without_a_country_code(self):
        assert normalize_phone("030 901820", region="DE") == "+4930901820"

    def test_an_extension_is_dropped_from_e164(self):
        assert normalize_phone("415-555-2671 x123") == "+14155552671"

    def test_integers_are_accepted(self):
        assert normalize_phone(4155552671) == "+14155552671"

    @pytest.mark.parametrize("bad", ["", "hello", "12", "+", "+999 1234", "1" * 70])
    def test_it_rejects_what_is_not_a_phone_number(self, bad):
        with pytest.raises(ValueError):
            normalize_phone(bad)

    @given(st.text(max_size=40))
    def test_it_never_raises_anything_but_value_error(self, text):
        try:
            result = normalize_phone(text)
        except ValueError:
            return
        assert result.startswith("+") and result[1:].isdigit()


class TestValidateUrl:
    def test_it_adds_https_to_a_bare_host(self):
        assert validate_url("www.linkedin.com/in/jane") == "https://www.linkedin.com/in/jane"

    def test_empty_means_no_url(self):
        assert validate_url("") == "" and validate_url(None) == ""

    @pytest.mark.parametrize("bad", ["javascript:alert(1)", "ftp://x.com/file", "http://", "not a url"])
    def test_it_rejects_other_schemes_and_garbage(self, bad):
        with pytest.raises(ValueError):
            validate_url(bad)

    def test_it_enforces_the_length_limit(self):
        with pytest.raises(ValueError, match="too long"):
            validate_url("https://example.com/" + "a" * 1000)


class TestParseCreatedAt:
    def test_z_suffix_is_utc(self):
        assert parse_created_at("2024-05-01T12:00:00Z") == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)

    def test_an_offset_is_kept(self):
        value = parse_created_at("2024-05-01T12:00:00+02:00")
        assert value.utcoffset() == dt.timedelta(hours=2)

    def test_a_naive_value_is_read_in_the_given_zone(self):
        value = parse_created_at("2024-01-15 09:30:00", tz="America/New_York")
        assert value.tzinfo == ZoneInfo("America/New_York")
        assert value.astimezone(dt.UTC).hour == 14

    def test_a_bare_date_is_its_midnight(self):
        assert parse_created_at("2024-05-01") == dt.datetime(2024, 5, 1, tzinfo=dt.UTC)

    @pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01", "01/05/2024", 12345, None])
    def test_it_rejects_what_is_not_iso_8601(self, bad):
        with pytest.raises(ValueError):
            parse_created_at(bad)


class TestParseTags:
    def test_a_comma_separated_string_is_split_and_stripped(self):
        assert parse_tags(" vip, lead ,, vip ") == ["vip", "lead"]

    def test_a_list_is_cleaned_in_order(self):
        assert parse_tags(["b", " a ", "b", ""]) == ["b", "a"]

    def test_none_is_no_tags(self):
        assert parse_tags(None) == []

    @pytest.mark.parametrize("bad", [5, {"a": 1}, ["ok", 3], ["x" * 101]])
    def test_it_rejects_non_strings_and_oversized_tags(self, bad):
        with pytest.raises(ValueError):
            parse_tags(bad)


class TestValidateCustom:
    def test_an_object_passes(self):
        assert validate_custom({"plan": "pro", "seats": 3}) == {"plan": "pro", "seats": 3}

    @pytest.mark.parametrize("bad", [[1, 2], "x", {"": 1}, {"big": "x" * 70000}])
    def test_it_rejects_non_objects_empty_names_and_huge_values(self, bad):
        with pytest.raises(ValueError):
            validate_custom(bad)


class TestCleanContactInput:
    def test_it_normalises_every_field(self):
        company = uuid.uuid4()
        cleaned = clean_contact_input(
            {
                "full_name": "  Jane Doe ",
                "email": "Jane@Example.com",
                "phone": "(415) 555-2671",
                "linkedin_url": "linkedin.com/in/jane",
                "tags": "a,b",
                "custom": {"x": 1},
                "created_at": "2020-01-01T00:00:00Z",
                "company_id": str(company),
                "lists": [],
            }
        )
        assert cleaned["full_name"] == "Jane Doe"
        assert cleaned["email"] == "Jane@example.com"
        assert cleaned["phone"] == "+14155552671"
        assert cleaned["linkedin_url"] == "https://linkedin.com/in/jane"
        assert cleaned["tags"] == ["a", "b"]
        assert cleaned["company_id"] == company
        assert cleaned["created_at"].year == 2020

    def test_absent_fields_stay_absent_so_partial_updates_work(self):
        assert clean_contact_input({"job_title": "CTO"}) == {"job_title": "CTO"}

    def test_null_or_empty_email_and_phone_clear_them(self):
        assert clean_contact_input({"email": "", "phone": None}) == {"email": None, "phone": None}

    def test_it_reports_every_bad_field_at_once(self):
        with pytest.raises(ContactInputError) as info:
            clean_contact_input(
                {
                    "email": "nope",
                    "phone": "abc",
                    "favourite_colour": "red",
                    "full_name": "x" * (CONTACT_MAX_LENGTHS["full_name"] + 1),
                }
            )
        fields = {(e.field, e.code) for e in info.value.errors}
        assert fields == {
            ("email", "invalid_email"),
            ("phone", "invalid_phone"),
            ("favourite_colour", "unknown_field"),
            ("full_name", "invalid"),
        }

    def test_wrong_types_are_errors_not_crashes(self):
        with pytest.raises(ContactInputError) as info:
            clean_contact_input({"full_name": ["a"], "tags": 3, "custom": [], "lists": "x", "company_id": 5})
        assert {e.field for e in info.value.errors} == {"full_name", "tags", "custom", "lists", "company_id"}
