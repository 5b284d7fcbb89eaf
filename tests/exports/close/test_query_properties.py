"""Property tests: any valid tree compiles and runs; anything else is a QueryError."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts.models import Activity, Company, Contact, Opportunity
from exports.close.query import QueryError, compile_query, compile_sort

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
MODELS = {"lead": Company, "contact": Contact, "opportunity": Opportunity, "activity": Activity}
RELATED = {
    "lead": ["contact", "opportunity", "activity"],
    "contact": ["lead", "opportunity", "activity"],
    "opportunity": ["lead", "contact"],
    "activity": ["lead", "contact"],
}
TEXT_FIELDS = {
    "lead": ["name", "description", "url", "status", "custom.tier", "custom.Région ✓"],
    "contact": ["name", "title", "email", "emails", "tags", "phone", "custom.score"],
    "opportunity": ["note", "currency", "status"],
    "activity": ["body", "type"],
}
NUMBER_FIELDS = {
    "lead": ["custom.seats"],
    "contact": ["custom.score"],
    "opportunity": ["value", "confidence"],
    "activity": [],
}
DATE_FIELDS = {
    "lead": ["date_created", "date_updated"],
    "contact": ["date_created", "date_updated"],
    "opportunity": ["date_created", "date_won"],
    "activity": ["date", "date_created"],
}

words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=0, max_size=30)
nonblank_words = st.from_regex(r"[A-Za-zÀ-ÿ0-9]{1,8}( [A-Za-zÀ-ÿ0-9'.-]{1,8}){0,3}", fullmatch=True)
numbers = st.one_of(st.integers(-(10**12), 10**12), st.floats(-1e9, 1e9, allow_nan=False))


def moments(depth: int = 0) -> st.SearchStrategy:
    simple = st.one_of(
        st.just({"type": "now"}),
        # Valid trees stay in datetime's range even after the offsets below (at most
        # 2 x 500 years); dates near year 1 or 9999 belong to the invalid-tree tests.
        st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)).map(
            lambda d: {"type": "fixed_local_date", "value": d.isoformat(), "which": "start"}
        ),
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
            lambda d: {"type": "fixed_utc", "value": d.isoformat() + "Z"}
        ),
        st.sampled_from(["day", "week", "month", "quarter", "year"]).map(
            lambda p: {"type": "start_of_period", "period": p}
        ),
    )
    if depth >= 2:
        return simple
    offset = st.builds(
        lambda direction, moment, amounts: {
            "type": "offset",
            "direction": direction,
            "moment": moment,
            "offset": amounts,
        },
        st.sampled_from(["past", "future"]),
        moments(depth + 1),
        st.dictionaries(
            st.sampled_from(["years", "months", "weeks", "days", "hours", "minutes", "seconds"]),
            st.integers(0, 500),
            max_size=3,
        ),
    )
    return st.one_of(simple, offset)


def field_conditions(object_type: str) -> st.SearchStrategy:
    def fc(name: str, condition: dict) -> dict:
        return {
            "type": "field_condition",
            "field": {"type": "regular_field", "object_type": object_type, "field_name": name},
            "condition": condition,
        }

    options = [
        st.builds(
            lambda f, mode, v: fc(f, {"type": "text", "mode": mode, "value": v}),
            st.sampled_from(TEXT_FIELDS[object_type]),
            st.sampled_from(["full_words", "phrase", "beginning_of_words"]),
            nonblank_words,
        ),
        st.builds(
            lambda f: fc(f, {"type": "exists"}), st.sampled_from(TEXT_FIELDS[object_type] + DATE_FIELDS[object_type])
        ),
        st.builds(
            lambda f, bounds: fc(f, {"type": "moment_range", **bounds}),
            st.sampled_from(DATE_FIELDS[object_type]),
            st.dictionaries(
                st.sampled_from(["on_or_after", "after", "before", "on_or_before"]), moments(), min_size=1, max_size=2
            ),
        ),
    ]
    if NUMBER_FIELDS[object_type]:
        options.append(
            st.builds(
                lambda f, bounds: fc(f, {"type": "number_range", **bounds}),
                st.sampled_from(NUMBER_FIELDS[object_type]),
                st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), numbers, min_size=1),
            )
        )
    if object_type in ("lead", "contact"):
        options.append(st.builds(lambda v: fc("custom.vip", {"type": "boolean", "value": v}), st.booleans()))
        options.append(
            st.builds(
                lambda vs: fc("custom.tier", {"type": "term", "values": vs}),
                st.lists(st.one_of(words, numbers, st.booleans()), max_size=4),
            )
        )
    if object_type == "opportunity":
        options.append(
            st.builds(
                lambda vs: fc("status", {"type": "term", "values": vs}),
                st.lists(st.sampled_from(["active", "won", "lost"]), max_size=3),
            )
        )
    return st.one_of(options)


def queries(object_type: str, depth: int = 0) -> st.SearchStrategy:
    leaf = st.one_of(
        field_conditions(object_type),
        st.just({"type": "match_all"}),
        st.sampled_from(list(MODELS)).map(lambda t: {"type": "object_type", "object_type": t}),
    )
    if depth >= 3:
        return leaf
    return st.one_of(
        leaf,
        st.builds(
            lambda kind, qs: {"type": kind, "queries": qs},
            st.sampled_from(["and", "or"]),
            st.lists(st.deferred(lambda: queries(object_type, depth + 1)), max_size=3),
        ),
        st.deferred(lambda: queries(object_type, depth + 1)).map(lambda q: {"type": "not", "query": q}),
        st.sampled_from(RELATED[object_type]).flatmap(
            lambda related: st.deferred(lambda: queries(related, depth + 1)).map(
                lambda q: {
                    "type": "has_related",
                    "this_object_type": object_type,
                    "related_object_type": related,
                    "related_query": q,
                }
            )
        ),
    )


def sorts(object_type: str) -> st.SearchStrategy:
    fields = [
        f
        for f in TEXT_FIELDS[object_type] + DATE_FIELDS[object_type] + NUMBER_FIELDS[object_type]
        if f not in ("emails", "tags")
    ]
    return st.lists(
        st.builds(
            lambda f, d: {"direction": d, "field": {"type": "regular_field", "field_name": f}},
            st.sampled_from(fields),
            st.sampled_from(["asc", "desc"]),
        ),
        max_size=3,
    )


@pytest.mark.parametrize("object_type", list(MODELS))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_random_valid_trees_compile_and_execute(world, object_type, data):
    tree = data.draw(queries(object_type))
    sort = data.draw(sorts(object_type))
    tz = data.draw(st.sampled_from([UTC, ZoneInfo("Europe/Paris"), ZoneInfo("Pacific/Auckland")]))
    q = compile_query(json.loads(json.dumps(tree)), object_type=object_type, now=NOW, tz=tz)
    rows = (
        MODELS[object_type]
        .objects.filter(workspace=world.workspace)
        .filter(q)
        .order_by(*compile_sort(sort, object_type=object_type))
    )
    assert len(list(rows[:50])) <= 50


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        numbers,
        words,
        st.sampled_from(
            [
                "and",
                "or",
                "not",
                "text",
                "term",
                "field_condition",
                "regular_field",
                "lead",
                "contact",
                "has_related",
                "exists",
                "moment_range",
                "offset",
                "now",
                "name",
            ]
        ),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "queries",
                    "query",
                    "field",
                    "condition",
                    "field_name",
                    "mode",
                    "value",
                    "values",
                    "object_type",
                    "related_object_type",
                    "related_query",
                    "on_or_after",
                    "before",
                    "gt",
                    "lt",
                    "moment",
                    "offset",
                    "direction",
                    "period",
                    "custom_field_id",
                ]
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(tree=json_values)
def test_arbitrary_json_is_either_a_valid_query_or_a_query_error(tree):
    try:
        compile_query(tree, object_type="lead", now=NOW, tz=UTC)
    except QueryError as error:
        assert error.message


def corrupt(tree: dict, kind: int) -> dict:
    """Break one node of a valid tree in a way that is always invalid."""
    tree = json.loads(json.dumps(tree))
    node = tree
    while node.get("type") in ("and", "or", "not", "has_related"):
        if node["type"] in ("and", "or"):
            if not node["queries"]:
                break
            node = node["queries"][0]
        else:
            node = node["query" if node["type"] == "not" else "related_query"]
    if kind == 0:
        node["type"] = "fuzzy"
    elif kind == 1:
        node["unexpected"] = True
    elif kind == 2 and node.get("type") == "field_condition":
        node["field"]["field_name"] = "no_such_field"
    elif kind == 3 and node.get("type") == "field_condition":
        node["condition"]["type"] = "regex"
    else:
        node["type"] = 42
    return tree


@settings(max_examples=150, deadline=None)
@given(tree=queries("lead"), kind=st.integers(0, 4))
def test_corrupted_valid_trees_always_give_a_query_error_with_a_path(tree, kind):
    with pytest.raises(QueryError) as info:
        compile_query(corrupt(tree, kind), object_type="lead", now=NOW, tz=UTC)
    assert info.value.path
