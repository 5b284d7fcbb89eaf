"""The s_query compiler: every query, field and condition type, executed against
the database, and every invalid node named by its JSON path."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from contacts.models import Activity, Company, Contact, Opportunity
from exports.close.query import (
    MAX_DEPTH,
    MAX_NODES,
    QueryError,
    compile_moment,
    compile_query,
    compile_sort,
    fold_text,
    validate_results_limit,
)

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
UTC = UTC
MODELS = {"lead": Company, "contact": Contact, "opportunity": Opportunity, "activity": Activity}


def field(name: str, object_type: str | None = None) -> dict:
    node = {"type": "regular_field", "field_name": name}
    if object_type:
        node["object_type"] = object_type
    return node


def fc(name: str, condition: dict, object_type: str | None = None) -> dict:
    return {"type": "field_condition", "field": field(name, object_type), "condition": condition}


def text(value: str, mode: str = "full_words") -> dict:
    return {"type": "text", "mode": mode, "value": value}


def names(world, tree, object_type: str = "lead", tz=UTC, now=NOW) -> set[str]:
    q = compile_query(tree, object_type=object_type, now=now, tz=tz)
    rows = MODELS[object_type].objects.filter(workspace=world.workspace).filter(q)
    label = {"lead": "name", "contact": "full_name", "opportunity": "note", "activity": "body"}[object_type]
    if object_type == "opportunity":
        return {key for key, o in world.opps.items() if o in rows}
    return {getattr(row, label) for row in rows}


def error_of(tree, object_type: str = "lead") -> str:
    with pytest.raises(QueryError) as info:
        compile_query(tree, object_type=object_type, now=NOW, tz=UTC)
    return str(info.value)


# --- Shapes ------------------------------------------------------------------------
def test_the_seed_example_query_finds_the_company_by_its_full_words(world):
    tree = {
        "queries": [
            {"object_type": "lead", "type": "object_type"},
            {
                "condition": {"mode": "full_words", "type": "text", "value": "ACME Inc."},
                "field": {"field_name": "name", "object_type": "lead", "type": "regular_field"},
                "type": "field_condition",
            },
        ],
        "type": "and",
    }
    assert names(world, tree) == {"ACME Inc."}


def test_no_query_and_match_all_match_every_company(world):
    assert len(names(world, None)) == 4
    assert len(names(world, {"type": "match_all"})) == 4
    assert len(names(world, {"type": "and", "queries": []})) == 4


def test_an_empty_or_matches_nothing_and_not_of_everything_is_nothing(world):
    assert names(world, {"type": "or", "queries": []}) == set()
    assert names(world, {"type": "not", "query": {"type": "match_all"}}) == set()


def test_object_type_of_another_kind_matches_no_lead(world):
    assert names(world, {"type": "object_type", "object_type": "contact"}) == set()


def test_or_and_not_combine(world):
    acme = fc("name", text("acme"))
    globex = fc("name", text("globex"))
    assert names(world, {"type": "or", "queries": [acme, globex]}) == {"ACME Inc.", "Globex Corporation"}
    assert names(world, {"type": "not", "query": acme}) == {"Café Crème Ltd", "Globex Corporation", "Initech"}
    assert names(
        world, {"type": "and", "queries": [{"type": "or", "queries": [acme, globex]}, {"type": "not", "query": globex}]}
    ) == {"ACME Inc."}


# --- Text ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("full_words", "acme", {"ACME Inc."}),
        ("full_words", "ac", set()),  # a word, not a substring
        ("full_words", "inc acme", {"ACME Inc."}),  # every word, any order
        ("full_words", "acme globex", set()),
        ("phrase", "acme inc", {"ACME Inc."}),
        ("phrase", "inc acme", set()),  # the words in this order, next to each other
        ("phrase", "globex corporation", {"Globex Corporation"}),
        ("beginning_of_words", "glo corp", {"Globex Corporation"}),
        ("beginning_of_words", "lobex", set()),
        ("beginning_of_words", "cre", {"Café Crème Ltd"}),
    ],
)
def test_text_modes(world, mode, value, expected):
    assert names(world, fc("name", text(value, mode))) == expected


def test_text_is_case_and_accent_insensitive_both_ways(world):
    assert names(world, fc("name", text("CAFE CREME"))) == {"Café Crème Ltd"}
    assert names(world, fc("name", text("café", "phrase"))) == {"Café Crème Ltd"}
    assert names(world, fc("name", text("amelie"), "contact"), "contact") == {"Amélie Poulain"}
    assert names(world, fc("name", text("AMÉLIE"), "contact"), "contact") == {"Amélie Poulain"}


def test_text_on_custom_fields_and_multi_valued_fields(world):
    assert names(world, fc("custom.tier", text("GOLD"))) == {"ACME Inc.", "Globex Corporation"}
    assert names(
        world,
        {
            "type": "field_condition",
            "field": {"type": "custom_field", "custom_field_id": "region"},
            "condition": text("emea"),
        },
    ) == {"ACME Inc."}
    # Any of a contact's addresses, also those merged in, and any of its tags.
    assert names(world, fc("emails", text("desert", "beginning_of_words")), "contact") == {"Wile E. Coyote"}
    assert names(world, fc("tags", text("vip")), "contact") == {"Wile E. Coyote"}


def test_text_on_a_contact_title(world):
    assert names(world, fc("title", text("chief executive", "phrase")), "contact") == {"Wile E. Coyote"}


def test_fold_text_matches_what_the_database_does():
    assert fold_text("Ærøskøbing Straße Łódź") == "aeroskobing strasse lodz"
    assert fold_text(None) is None


# --- Term, numbers, booleans, exists -------------------------------------------------------
def test_term_matches_exact_values(world):
    assert names(world, fc("status", {"type": "term", "values": ["Customer"]})) == {"ACME Inc.", "Globex Corporation"}
    assert names(world, fc("status", {"type": "term", "values": ["customer"]})) == set()
    assert names(world, fc("status", {"type": "term", "values": ["won", "lost"]}), "opportunity") == {
        "acme_big",
        "globex_lost",
    }
    assert names(world, fc("confidence", {"type": "term", "values": [0, 20]}), "opportunity") == {
        "acme_small",
        "globex_lost",
    }


def test_term_on_ids_and_custom_values_is_typed(world):
    acme = world.companies["acme"]
    assert names(world, fc("id", {"type": "term", "values": [str(acme.id)]})) == {"ACME Inc."}
    assert names(world, fc("lead_id", {"type": "term", "values": [str(acme.id)]}), "contact") == {
        "Wile E. Coyote",
        "Road Runner",
    }
    assert names(world, fc("custom.seats", {"type": "term", "values": [12, 250]})) == {
        "ACME Inc.",
        "Globex Corporation",
    }
    assert names(world, fc("custom.seats", {"type": "term", "values": ["12"]})) == set()
    assert names(world, fc("custom.seats", {"type": "term", "values": ["many"]})) == {"Café Crème Ltd"}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"gt": 1000}, {"acme_big", "globex_lost"}),
        ({"gte": 1000}, {"acme_big", "acme_small", "globex_lost"}),
        ({"lt": 90_000}, {"acme_small"}),
        ({"lte": 90_000, "gt": 1000}, {"globex_lost"}),
    ],
)
def test_number_range_bounds(world, condition, expected):
    assert names(world, fc("value", {"type": "number_range", **condition}), "opportunity") == expected


def test_number_range_on_custom_fields_ignores_non_numbers(world):
    assert names(world, fc("custom.seats", {"type": "number_range", "gte": 10})) == {"ACME Inc.", "Globex Corporation"}
    assert names(world, fc("custom.seats", {"type": "number_range", "lt": 100})) == {"ACME Inc."}
    # "many" is a string: jsonb and SQLite would sort it above every number.
    assert names(world, fc("custom.seats", {"type": "number_range", "gt": 1_000_000})) == set()


def test_boolean_on_custom_fields(world):
    assert names(world, fc("custom.vip", {"type": "boolean", "value": True})) == {"ACME Inc."}
    assert names(world, fc("custom.vip", {"type": "boolean", "value": False})) == {"Café Crème Ltd"}


def test_exists_on_regular_custom_and_multi_valued_fields(world):
    assert names(world, fc("description", {"type": "exists"})) == {"ACME Inc."}
    # null and "" are "no value"; a missing key too.
    assert names(world, fc("custom.region", {"type": "exists"})) == {"ACME Inc."}
    assert names(world, fc("custom.note", {"type": "exists"})) == set()
    assert names(world, fc("email", {"type": "exists"}), "contact") == {
        "Wile E. Coyote",
        "Road Runner",
        "Amélie Poulain",
    }
    assert names(world, {"type": "not", "query": fc("emails", {"type": "exists"})}, "contact") == {"Hank Scorpio"}
    assert names(world, fc("date_won", {"type": "exists"}), "opportunity") == {"acme_big"}


# --- Moments ----------------------------------------------------------------------------
def fixed_date(value: str, which: str = "start") -> dict:
    return {"type": "fixed_local_date", "value": value, "which": which}


def test_moment_range_with_absolute_dates(world):
    cond = {"type": "moment_range", "on_or_after": fixed_date("2024-01-01"), "before": fixed_date("2024-02-01", "end")}
    assert names(world, fc("date_created", cond)) == {"ACME Inc.", "Café Crème Ltd"}
    cond = {"type": "moment_range", "after": {"type": "fixed_utc", "value": "2024-02-01T08:30:00Z"}}
    assert names(world, fc("date_created", cond)) == {"Globex Corporation"}
    cond = {"type": "moment_range", "on_or_before": {"type": "fixed_utc", "value": "2024-02-01T08:30:00Z"}}
    assert names(world, fc("date_created", cond)) == {"ACME Inc.", "Café Crème Ltd", "Initech"}


def test_local_dates_are_read_in_the_workspace_timezone(world):
    # Globex was created 2024-03-05 23:30 UTC = 2024-03-06 00:30 in Paris.
    cond = {"type": "moment_range", "on_or_after": fixed_date("2024-03-06"), "before": fixed_date("2024-03-06", "end")}
    assert names(world, fc("date_created", cond), tz=ZoneInfo("Europe/Paris")) == {"Globex Corporation"}
    assert names(world, fc("date_created", cond), tz=UTC) == set()


def test_relative_ranges_last_30_days_from_start_of_today(world):
    start_of_today = {"type": "start_of_period", "period": "day"}
    last_30_days = {
        "type": "moment_range",
        "on_or_after": {"type": "offset", "direction": "past", "moment": start_of_today, "offset": {"days": 30}},
    }
    # NOW = 2024-03-15 12:00 → since 2024-02-14 00:00.
    assert names(world, fc("date_created", last_30_days)) == {"Globex Corporation"}
    assert names(world, fc("date", last_30_days), "activity") == {"Discussed anvils", "Follow up", "Proposal"}
    this_year = {
        "type": "moment_range",
        "on_or_after": {"type": "start_of_period", "period": "year"},
        "before": {"type": "now"},
    }
    assert names(world, fc("date_created", this_year)) == {"ACME Inc.", "Café Crème Ltd", "Globex Corporation"}


def test_moment_range_on_a_date_field_uses_whole_local_days(world):
    cond = {"type": "moment_range", "on_or_after": fixed_date("2024-03-01"), "before": fixed_date("2024-03-01", "end")}
    assert names(world, fc("date_won", cond), "opportunity") == {"acme_big"}
    cond = {"type": "moment_range", "after": fixed_date("2024-03-01")}
    assert names(world, fc("date_won", cond), "opportunity") == set()


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ({"type": "now"}, "2024-03-15T12:00:00+00:00"),
        ({"type": "start_of_period", "period": "day"}, "2024-03-15T00:00:00+01:00"),
        ({"type": "start_of_period", "period": "week"}, "2024-03-11T00:00:00+01:00"),
        ({"type": "start_of_period", "period": "month"}, "2024-03-01T00:00:00+01:00"),
        ({"type": "start_of_period", "period": "quarter"}, "2024-01-01T00:00:00+01:00"),
        ({"type": "start_of_period", "period": "year"}, "2024-01-01T00:00:00+01:00"),
        # Across the DST change of 31 March a day offset keeps local midnight.
        (
            {
                "type": "offset",
                "direction": "future",
                "moment": {"type": "start_of_period", "period": "day"},
                "offset": {"days": 20},
            },
            "2024-04-04T00:00:00+02:00",
        ),
        ({"type": "offset", "direction": "past", "offset": {"months": 1, "hours": 2}}, "2024-02-15T11:00:00+01:00"),
        ({"type": "fixed_local_date", "value": "2024-07-01", "which": "end"}, "2024-07-02T00:00:00+02:00"),
        ({"type": "fixed_local_datetime", "value": "2024-07-01T09:30:00"}, "2024-07-01T09:30:00+02:00"),
    ],
)
def test_moments_evaluate_in_the_given_zone(moment, expected):
    got = compile_moment(moment, "m", now=NOW, tz=ZoneInfo("Europe/Paris"))
    assert got == datetime.fromisoformat(expected)


# --- has_related ----------------------------------------------------------------------------
def test_has_related_leads_with_matching_contacts_and_opportunities(world):
    ceo_contact = {
        "type": "has_related",
        "this_object_type": "lead",
        "related_object_type": "contact",
        "related_query": fc("title", text("ceo")),
    }
    assert names(world, ceo_contact) == {"Globex Corporation"}
    won = {
        "type": "has_related",
        "related_object_type": "opportunity",
        "related_query": fc("status", {"type": "term", "values": ["won"]}),
    }
    assert names(world, won) == {"ACME Inc."}
    with_calls = {
        "type": "has_related",
        "related_object_type": "activity",
        "related_query": fc("type", {"type": "term", "values": ["call"]}),
    }
    assert names(world, with_calls) == {"ACME Inc."}
    no_contacts = {
        "type": "not",
        "query": {"type": "has_related", "related_object_type": "contact", "related_query": {"type": "match_all"}},
    }
    assert names(world, no_contacts) == {"Initech"}


def test_has_related_the_reverse_way_contacts_whose_lead_matches(world):
    gold_lead = {
        "type": "has_related",
        "this_object_type": "contact",
        "related_object_type": "lead",
        "related_query": fc("custom.tier", {"type": "term", "values": ["gold"]}),
    }
    assert names(world, gold_lead, "contact") == {"Wile E. Coyote", "Road Runner", "Hank Scorpio"}
    opp_of_ceo = {"type": "has_related", "related_object_type": "contact", "related_query": fc("name", text("coyote"))}
    assert names(world, opp_of_ceo, "opportunity") == {"acme_big"}


def test_has_related_never_crosses_workspaces(world, other_world):
    query = {"type": "has_related", "related_object_type": "contact", "related_query": fc("name", text("coyote"))}
    q = compile_query(query, object_type="lead", now=NOW, tz=UTC)
    assert set(Company.objects.filter(q)) == {world.companies["acme"], other_world.companies["acme"]}
    assert list(Company.objects.filter(workspace=world.workspace).filter(q)) == [world.companies["acme"]]


# --- Sort and limit ---------------------------------------------------------------------------
def test_sort_by_several_keys_with_id_as_tiebreak(world):
    order = compile_sort(
        [{"direction": "desc", "field": field("status")}, {"direction": "asc", "field": field("date_created", "lead")}]
    )
    rows = list(Company.objects.filter(workspace=world.workspace).order_by(*order).values_list("name", flat=True))
    assert rows == ["Café Crème Ltd", "ACME Inc.", "Globex Corporation", "Initech"]
    assert str(order[-1]) == str(compile_sort(None)[0])


def test_sort_puts_missing_values_last_both_ways(world):
    for direction in ("asc", "desc"):
        order = compile_sort([{"direction": direction, "field": field("custom.seats")}])
        rows = list(Company.objects.filter(workspace=world.workspace).order_by(*order).values_list("name", flat=True))
        assert rows[-1] == "Initech"


def test_equal_sort_keys_come_out_in_one_stable_order(world):
    for i in range(5):
        Company.objects.create(workspace=world.workspace, name=f"Same {i}", status="Same")
    order = compile_sort([{"direction": "asc", "field": field("status")}])
    first = list(Company.objects.filter(workspace=world.workspace).order_by(*order).values_list("id", flat=True))
    again = list(Company.objects.filter(workspace=world.workspace).order_by(*order).values_list("id", flat=True))
    assert first == again
    same = [i for i in first if Company.objects.get(id=i).status == "Same"]
    assert same == sorted(same)


def test_results_limit_validation():
    assert validate_results_limit(None) is None
    assert validate_results_limit(5) == 5
    for bad in (-1, "5", 1.5, True):
        with pytest.raises(QueryError, match=r"^results_limit: "):
            validate_results_limit(bad)


# --- Errors, each named by its JSON path -----------------------------------------------------
BAD = [
    (
        {"type": "and", "queries": [{"type": "match_all"}, fc("name", text("x", "fuzzy"))]},
        'queries[1].condition.mode: unknown mode "fuzzy"',
    ),
    ({"type": "xor", "queries": []}, "type: unknown query type 'xor'"),
    ({"queries": []}, "type: is required"),
    ([], "expected an object, got array"),
    ({"type": "and", "queries": {}}, "queries: expected an array, got object"),
    ({"type": "and", "queries": [], "extra": 1}, "extra: unknown key"),
    ({"type": "not"}, "query: is required"),
    (fc("nope", {"type": "exists"}), "field.field_name: unknown lead field 'nope'"),
    (fc("name", {"type": "exists"}, "contact"), 'field.object_type: expected "lead" here, got "contact"'),
    (
        {"type": "field_condition", "field": {"type": "magic"}, "condition": {"type": "exists"}},
        "field.type: unknown field type 'magic'",
    ),
    (fc("name", {"type": "fuzzy"}), "condition.type: unknown condition type 'fuzzy'"),
    (fc("name", {"type": "text", "mode": "phrase", "value": 5}), "condition.value: expected a string, got number"),
    (
        fc("name", {"type": "text", "mode": "phrase", "value": "  ?! "}),
        "condition.value: must contain at least one letter",
    ),
    (
        fc("name", {"type": "number_range", "gt": 1}),
        "condition.type: a number_range condition does not apply to 'name'",
    ),
    (fc("date_created", text("x")), "condition.type: a text condition does not apply to 'date_created'"),
    (fc("name", {"type": "boolean", "value": True}), "condition.type: a boolean condition does not apply"),
    (fc("custom.vip", {"type": "boolean", "value": "yes"}), "condition.value: expected a boolean, got string"),
    (fc("custom.seats", {"type": "number_range", "gt": "1"}), "condition.gt: expected a number, got string"),
    (fc("custom.seats", {"type": "number_range"}), "condition: needs at least one of gt, gte, lt, lte"),
    (fc("custom.seats", {"type": "number_range", "gt": 10**30}), "condition.gt: number out of range"),
    (fc("custom.seats", {"type": "term", "values": [1, -(10**20)]}), "condition.values[1]: number out of range"),
    (fc("custom.seats", {"type": "number_range", "lt": float("inf")}), "condition.lt: number out of range"),
    (fc("id", {"type": "term", "values": ["lead_abc"]}), "condition.values[0]: not a valid id: 'lead_abc'"),
    (fc("status", {"type": "term", "values": "Customer"}), "condition.values: expected an array, got string"),
    (fc("status", {"type": "term", "values": ["a", 1]}), "condition.values[1]: expected a string, got number"),
    (
        fc(
            "date_created", {"type": "moment_range", "on_or_after": {"type": "fixed_local_date", "value": "2024-13-01"}}
        ),
        "condition.on_or_after.value: invalid ISO 8601 date '2024-13-01'",
    ),
    (
        fc(
            "date_created",
            {"type": "moment_range", "before": {"type": "offset", "direction": "sideways", "offset": {}}},
        ),
        "condition.before.direction: unknown direction 'sideways'",
    ),
    (
        fc(
            "date_created",
            {"type": "moment_range", "before": {"type": "offset", "direction": "past", "offset": {"fortnights": 1}}},
        ),
        "condition.before.offset.fortnights: unknown unit",
    ),
    (
        fc("date_created", {"type": "moment_range", "before": {"type": "start_of_period", "period": "decade"}}),
        "condition.before.period: unknown period 'decade'",
    ),
    (fc("date_created", {"type": "moment_range"}), "condition: needs at least one of"),
    (fc("custom.a__b", {"type": "exists"}), "field.field_name: invalid custom field name"),
    (
        {"type": "has_related", "related_object_type": "invoice", "related_query": {"type": "match_all"}},
        "related_object_type: unknown object type 'invoice'",
    ),
    (
        {
            "type": "has_related",
            "this_object_type": "contact",
            "related_object_type": "lead",
            "related_query": {"type": "match_all"},
        },
        'this_object_type: expected "lead" here, got "contact"',
    ),
    (
        {"type": "has_related", "related_object_type": "lead", "related_query": {"type": "match_all"}},
        'related_object_type: a lead has no related "lead" objects',
    ),
    (
        {"type": "has_related", "related_object_type": "contact", "related_query": fc("title", text("x", "fuzzy"))},
        'related_query.condition.mode: unknown mode "fuzzy"',
    ),
]


@pytest.mark.parametrize(("tree", "message"), BAD)
def test_invalid_trees_name_the_bad_node(tree, message):
    assert error_of(tree).startswith(message)


def test_huge_numbers_on_regular_fields_are_refused():
    assert error_of(fc("value", {"type": "term", "values": [10**40]}), "opportunity").startswith(
        "condition.values[0]: number out of range"
    )


def test_custom_fields_do_not_exist_on_opportunities():
    assert error_of(fc("custom.x", {"type": "exists"}), "opportunity").startswith(
        "field.field_name: opportunity objects have no custom fields"
    )


def nested_not(depth: int) -> dict:
    tree: dict = {"type": "match_all"}
    for _ in range(depth - 1):
        tree = {"type": "not", "query": tree}
    return tree


def test_depth_limit_is_exactly_32_levels():
    compile_query(nested_not(MAX_DEPTH), now=NOW, tz=UTC)
    assert "nested too deeply" in error_of(nested_not(MAX_DEPTH + 1))


def test_very_deep_json_is_refused_without_recursion():
    assert "nested too deeply" in error_of(nested_not(100_000))


def test_node_limit_is_1000():
    ok = {"type": "or", "queries": [{"type": "match_all"}] * (MAX_NODES - 1)}
    compile_query(ok, now=NOW, tz=UTC)
    too_many = {"type": "or", "queries": [{"type": "match_all"}] * MAX_NODES}
    assert error_of(too_many) == f"queries[{MAX_NODES - 1}]: too many query nodes (more than {MAX_NODES})"


@pytest.mark.parametrize(
    ("sort", "message"),
    [
        ({"field": field("name")}, "sort: expected an array, got object"),
        ([{"field": field("name"), "direction": "up"}], "sort[0].direction: unknown direction 'up'"),
        ([{"field": field("zzz")}], "sort[0].field.field_name: unknown lead field 'zzz'"),
        ([{"direction": "asc"}], "sort[0].field: is required"),
    ],
)
def test_invalid_sort_names_the_bad_key(sort, message):
    with pytest.raises(QueryError) as info:
        compile_sort(sort)
    assert str(info.value).startswith(message)


def test_sort_by_a_multi_valued_field_is_refused():
    with pytest.raises(QueryError, match=r"^sort\[0\]\.field\.field_name: cannot sort by 'emails'"):
        compile_sort([{"field": field("emails")}], object_type="contact")
