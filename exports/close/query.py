"""The Close advanced-filtering (``s_query``) compiler.

A pure function from the JSON tree a client sends to a Django ``Q`` over one of
the Close object types (``lead`` = Company, ``contact``, ``opportunity``,
``activity``). No I/O: it builds lazy expressions and subqueries, the caller
runs them. ``now`` and ``tz`` are arguments so that relative date ranges
("last 30 days", "start of today") are reproducible and use the workspace's
time zone.

Every problem is one ``QueryError(path, message)`` naming the offending node by
its JSON path inside the tree (``queries[1].condition.mode``), which the API turns
into a 400. Size is bounded before any work is done: at most ``MAX_DEPTH``
nested queries and ``MAX_NODES`` query nodes, so no request can build a
pathological SQL statement.

Text conditions compare a *folded* form of both sides (lower case, accents
removed): ``lx_fold(x)`` = ``lower(unaccent(x))`` on PostgreSQL (an IMMUTABLE SQL
function with trigram indexes, created by exports migration 0004) and a Python
function of the same name registered on each SQLite connection, so both
databases agree.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
import uuid
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from django.db.models import BooleanField, Exists, F, Func, Model, OuterRef, Q, TextField
from django.db.models.expressions import OrderBy
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.lookups import Regex

from contacts.models import Activity, Company, Contact, ContactEmail, ContactTag, Opportunity

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler

_Sql = tuple[str, tuple[Any, ...]]  # what an expression's as_sql answers: SQL text and its parameters

MAX_DEPTH = 32
MAX_NODES = 1000
MAX_TERM_VALUES = 1000
MAX_TEXT_LENGTH = 500
MAX_TEXT_TOKENS = 20
MAX_SORT_KEYS = 10
# Raw JSON nesting allowed before the structure is even looked at: a legal tree of
# MAX_DEPTH queries is at most ~6 containers deep per level.
_MAX_RAW_DEPTH = MAX_DEPTH * 6 + 16
_MAX_RAW_ITEMS = 50_000

OBJECT_TYPES = ("lead", "contact", "opportunity", "activity")


class QueryError(Exception):
    """An invalid ``s_query``/``sort``: ``path`` names the node, ``message`` says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


# --- Folding (case- and accent-insensitive text) ----------------------------------
# Letters that NFKD does not decompose but PostgreSQL's unaccent rules map, so
# that both databases fold the same common names alike.
_EXTRA_FOLDS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "ø": "o",
        "Ø": "o",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
    }
)


def fold_text(value: Any) -> str | None:
    """Lower case without accents; the Python twin of ``lower(unaccent(x))``."""
    if value is None:
        return None
    if isinstance(value, bool):  # a JSON true read through SQLite's ->> arrives as 1
        value = "true" if value else "false"
    text = unicodedata.normalize("NFKD", str(value).translate(_EXTRA_FOLDS))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


def _register_sqlite_functions(connection: Any) -> None:
    raw = connection.connection
    if raw is None:
        connection.ensure_connection()
        raw = connection.connection
    if not getattr(raw, "_lx_fold_registered", False):
        raw.create_function("lx_fold", 1, fold_text, deterministic=True)
        # sqlite3.Connection has no __dict__: then the function is registered again next time (cheap).
        with contextlib.suppress(AttributeError):
            raw._lx_fold_registered = True


class Fold(Func):
    """``lower(unaccent(x))``: the folded form that text conditions match against."""

    arity = 1
    output_field = TextField()

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> _Sql:
        # lx_fold = lower(unaccent(x)) declared IMMUTABLE (exports migration 0004), so
        # that the trigram indexes on lx_fold(column) serve these conditions.
        return self.as_sql(compiler, connection, template="lx_fold((%(expressions)s)::text)", **extra)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> _Sql:
        # Registered lazily at SQL-compile time so that it exists on whichever
        # connection runs the query (web, worker, test), created before or after import.
        _register_sqlite_functions(connection)
        return self.as_sql(compiler, connection, function="lx_fold", **extra)

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra: Any,
    ) -> _Sql:
        if function is None and template is None:
            function = "LOWER"
        return super().as_sql(
            compiler, connection, function=function, template=template, arg_joiner=arg_joiner, **extra
        )


class JsonKeyIsNumber(Func):
    """True when ``custom[key]`` holds a JSON number, so numeric comparisons never
    meet strings (jsonb and SQLite order mixed types, they do not fail)."""

    output_field = BooleanField()

    def __init__(self, column: str, key: str) -> None:
        super().__init__(F(column))
        self.key = key

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> _Sql:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(jsonb_typeof({sql} -> %s) = 'number')", (*params, self.key)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> _Sql:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(json_type({sql}, %s) IN ('integer', 'real'))", (*params, _sqlite_json_path(self.key))

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, *args: Any, **extra: Any) -> _Sql:
        raise NotImplementedError("custom number ranges need PostgreSQL or SQLite")  # pragma: no cover


def _sqlite_json_path(key: str) -> str:
    return "$." + '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Fields -----------------------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    kind: str  # text | choice | number | datetime | date | id
    column: str  # ORM path on the object's model, or on ``via``'s model
    # Multi-valued fields live in another table: (model, its FK to the object).
    via: tuple[type[Model], str] | None = None
    choices: tuple[str, ...] | None = None

    @property
    def sortable(self) -> bool:
        return self.via is None


_OPP_STATUSES = tuple(Opportunity.Status.values)
_ACTIVITY_TYPES = tuple(Activity.Type.values)

FIELDS: dict[str, dict[str, FieldSpec]] = {
    "lead": {
        "id": FieldSpec("id", "id"),
        "name": FieldSpec("text", "name"),
        "display_name": FieldSpec("text", "name"),
        "description": FieldSpec("text", "description"),
        "url": FieldSpec("text", "url"),
        "status": FieldSpec("text", "status"),
        "status_label": FieldSpec("text", "status"),
        "date_created": FieldSpec("datetime", "created_at"),
        "date_updated": FieldSpec("datetime", "updated_at"),
    },
    "contact": {
        "id": FieldSpec("id", "id"),
        "lead_id": FieldSpec("id", "company_id"),
        "name": FieldSpec("text", "full_name"),
        "display_name": FieldSpec("text", "full_name"),
        "title": FieldSpec("text", "job_title"),
        "email": FieldSpec("text", "email"),
        "emails": FieldSpec("text", "email", via=(ContactEmail, "contact")),
        "phone": FieldSpec("text", "phone"),
        "phones": FieldSpec("text", "phone"),
        "company_name": FieldSpec("text", "company_name"),
        "url": FieldSpec("text", "linkedin_url"),
        "linkedin_url": FieldSpec("text", "linkedin_url"),
        "tags": FieldSpec("text", "tag__name", via=(ContactTag, "contact")),
        "date_created": FieldSpec("datetime", "created_at"),
        "date_updated": FieldSpec("datetime", "updated_at"),
    },
    "opportunity": {
        "id": FieldSpec("id", "id"),
        "lead_id": FieldSpec("id", "company_id"),
        "contact_id": FieldSpec("id", "contact_id"),
        "status": FieldSpec("choice", "status", choices=_OPP_STATUSES),
        "status_type": FieldSpec("choice", "status", choices=_OPP_STATUSES),
        "status_label": FieldSpec("choice", "status", choices=_OPP_STATUSES),
        "value": FieldSpec("number", "value"),
        "confidence": FieldSpec("number", "confidence"),
        "currency": FieldSpec("text", "currency"),
        "value_currency": FieldSpec("text", "currency"),
        "note": FieldSpec("text", "note"),
        "date_won": FieldSpec("date", "date_won"),
        "date_created": FieldSpec("datetime", "created_at"),
        "date_updated": FieldSpec("datetime", "updated_at"),
    },
    "activity": {
        "id": FieldSpec("id", "id"),
        "lead_id": FieldSpec("id", "company_id"),
        "contact_id": FieldSpec("id", "contact_id"),
        "type": FieldSpec("choice", "type", choices=_ACTIVITY_TYPES),
        "_type": FieldSpec("choice", "type", choices=_ACTIVITY_TYPES),
        "body": FieldSpec("text", "body"),
        "note": FieldSpec("text", "body"),
        "date": FieldSpec("datetime", "occurred_at"),
        "activity_at": FieldSpec("datetime", "occurred_at"),
        "date_created": FieldSpec("datetime", "created_at"),
    },
}

MODELS: dict[str, type] = {"lead": Company, "contact": Contact, "opportunity": Opportunity, "activity": Activity}
HAS_CUSTOM = {"lead", "contact"}

# (this, related) -> (related model, filter linking a related row to the outer row)
RELATIONS: dict[tuple[str, str], tuple[type[Model], Callable[[], Q]]] = {
    ("lead", "contact"): (Contact, lambda: Q(company=OuterRef("pk"))),
    ("lead", "opportunity"): (Opportunity, lambda: Q(company=OuterRef("pk"))),
    ("lead", "activity"): (Activity, lambda: Q(company=OuterRef("pk"))),
    ("contact", "lead"): (Company, lambda: Q(pk=OuterRef("company_id"))),
    ("contact", "opportunity"): (Opportunity, lambda: Q(contact=OuterRef("pk"))),
    ("contact", "activity"): (Activity, lambda: Q(contact=OuterRef("pk"))),
    ("opportunity", "lead"): (Company, lambda: Q(pk=OuterRef("company_id"))),
    ("opportunity", "contact"): (Contact, lambda: Q(pk=OuterRef("contact_id"))),
    ("activity", "lead"): (Company, lambda: Q(pk=OuterRef("company_id"))),
    ("activity", "contact"): (Contact, lambda: Q(pk=OuterRef("contact_id"))),
}

# Custom keys become ORM key paths (``custom__<key>__<lookup>``), so a key may not
# contain "__", start or end with "_", or be a bare number (an array index).
_CUSTOM_NAME = re.compile(r"^(?!_)(?!.*__)(?!.*_$)(?![0-9]+$)[^\x00-\x1f]{1,100}$")


@dataclass(frozen=True)
class ResolvedField:
    object_type: str
    name: str
    spec: FieldSpec | None = None  # regular field
    custom_key: str | None = None  # custom field


# --- Helpers ----------------------------------------------------------------------
def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _expect_object(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise QueryError(path, f"expected an object, got {_type_name(value)}")
    return value


def _keys(node: dict, path: str, required: set[str], optional: AbstractSet[str] = frozenset()) -> None:
    for key in sorted(required):
        if key not in node:
            raise QueryError(_join(path, key), "is required")
    for key in node:
        if key not in required and key not in optional:
            raise QueryError(_join(path, str(key)), "unknown key")


def _string(node: dict, key: str, path: str) -> str:
    value = node.get(key)
    if not isinstance(value, str):
        raise QueryError(_join(path, key), f"expected a string, got {_type_name(value)}")
    return value


# Numbers beyond what JSON can carry exactly (and SQLite can bind) are refused
# rather than silently rounded or overflowing in the driver.
MAX_ABS_NUMBER = 2**53


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) <= MAX_ABS_NUMBER
    )


def _number_problem(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"number out of range (at most {MAX_ABS_NUMBER} in absolute value)"
    return f"expected a number, got {_type_name(value)}"


def check_size(tree: Any, path: str = "") -> None:
    """Bound raw nesting and size iteratively, before any recursive walk."""
    stack: list[tuple[Any, int, str]] = [(tree, 1, path)]
    seen = 0
    while stack:
        value, depth, where = stack.pop()
        seen += 1
        if seen > _MAX_RAW_ITEMS:
            raise QueryError(path, f"too large (more than {_MAX_RAW_ITEMS} JSON values)")
        if depth > _MAX_RAW_DEPTH:
            raise QueryError(where, f"nested too deeply (more than {MAX_DEPTH} levels of queries)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1, _join(where, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, _join(where, i)) for i, v in enumerate(value))


# --- Moments (points in time) -------------------------------------------------------
_PERIODS = ("day", "week", "month", "quarter", "year")
_OFFSET_UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


def _local_midnight(d: date, tz: tzinfo) -> datetime:
    # A wall-clock midnight in the zone; zoneinfo resolves DST gaps by fold rules.
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _add_months(d: date, months: int) -> date:
    total = d.year * 12 + (d.month - 1) + months
    year, month = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise OverflowError
    month += 1
    # Clamp the day: 31 January + 1 month = 28/29 February.
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, min(d.day, day))
        except ValueError:
            continue
    raise OverflowError  # pragma: no cover


def _parse_datetime(value: str, tz: tzinfo, path: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(path, f"invalid ISO 8601 date-time {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _parse_date(value: str, path: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise QueryError(path, f"invalid ISO 8601 date {value!r} (expected YYYY-MM-DD)") from None


def compile_moment(node: Any, path: str, *, now: datetime, tz: tzinfo, depth: int = 0) -> datetime:
    """A moment node → an aware datetime."""
    node = _expect_object(node, path)
    if depth > 8:
        raise QueryError(path, "moments nested too deeply")
    kind = node.get("type")
    if kind == "now":
        _keys(node, path, {"type"})
        return now
    if kind == "fixed_utc":
        _keys(node, path, {"type", "value"})
        return _parse_datetime(_string(node, "value", path), UTC, _join(path, "value"))
    if kind == "fixed_local_datetime":
        _keys(node, path, {"type", "value"})
        return _parse_datetime(_string(node, "value", path), tz, _join(path, "value"))
    if kind == "fixed_local_date":
        _keys(node, path, {"type", "value"}, {"which"})
        day = _parse_date(_string(node, "value", path), _join(path, "value"))
        which = node.get("which", "start")
        if which not in ("start", "end"):
            raise QueryError(_join(path, "which"), f'unknown value {which!r} (expected "start" or "end")')
        if which == "end":
            if day == date.max:
                raise QueryError(_join(path, "value"), "date out of range")
            day += timedelta(days=1)
        return _local_midnight(day, tz)
    if kind == "start_of_period":
        _keys(node, path, {"type", "period"}, {"moment"})
        period = node["period"]
        if period not in _PERIODS:
            raise QueryError(
                _join(path, "period"), f"unknown period {period!r} (expected one of {', '.join(_PERIODS)})"
            )
        base = (
            compile_moment(node["moment"], _join(path, "moment"), now=now, tz=tz, depth=depth + 1)
            if "moment" in node
            else now
        )
        local = base.astimezone(tz).date()
        if period == "week":  # ISO weeks start on Monday
            local -= timedelta(days=local.weekday())
        elif period == "month":
            local = local.replace(day=1)
        elif period == "quarter":
            local = local.replace(month=(local.month - 1) // 3 * 3 + 1, day=1)
        elif period == "year":
            local = local.replace(month=1, day=1)
        return _local_midnight(local, tz)
    if kind == "offset":
        _keys(node, path, {"type", "direction", "offset"}, {"moment"})
        direction = node["direction"]
        if direction not in ("past", "future"):
            raise QueryError(_join(path, "direction"), f'unknown direction {direction!r} (expected "past" or "future")')
        offset = _expect_object(node["offset"], _join(path, "offset"))
        amounts: dict[str, int] = {}
        for unit, amount in offset.items():
            unit_path = _join(_join(path, "offset"), str(unit))
            if unit not in _OFFSET_UNITS:
                raise QueryError(unit_path, f"unknown unit (expected one of {', '.join(_OFFSET_UNITS)})")
            if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= 100_000:
                raise QueryError(unit_path, "expected a whole number between 0 and 100000")
            amounts[unit] = amount
        base = (
            compile_moment(node["moment"], _join(path, "moment"), now=now, tz=tz, depth=depth + 1)
            if "moment" in node
            else now
        )
        sign = -1 if direction == "past" else 1
        try:
            # Calendar units move the wall clock in the workspace's zone (so "30 days
            # ago at midnight" stays midnight across DST); clock units move real time.
            local = base.astimezone(tz)
            day = _add_months(local.date(), sign * (amounts.get("years", 0) * 12 + amounts.get("months", 0)))
            day += timedelta(days=sign * (amounts.get("weeks", 0) * 7 + amounts.get("days", 0)))
            moved = datetime.combine(day, local.time().replace(tzinfo=None)).replace(tzinfo=tz)
            seconds = amounts.get("hours", 0) * 3600 + amounts.get("minutes", 0) * 60 + amounts.get("seconds", 0)
            return (moved.astimezone(UTC) + timedelta(seconds=sign * seconds)).astimezone(tz)
        except (OverflowError, ValueError):
            raise QueryError(_join(path, "offset"), "moves the date out of range") from None
    raise QueryError(_join(path, "type"), f"unknown moment type {kind!r}")


# --- The compiler -----------------------------------------------------------------
_TEXT_MODES = ("full_words", "phrase", "beginning_of_words")
_QUERY_TYPES = ("and", "or", "not", "match_all", "object_type", "field_condition", "has_related")
_CONDITION_TYPES = ("text", "term", "number_range", "moment_range", "exists", "boolean")


class _Compiler:
    def __init__(self, *, now: datetime, tz: tzinfo) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = now
        self.tz = tz
        self.nodes = 0

    # Queries ------------------------------------------------------------------
    def query(self, node: Any, path: str, object_type: str, depth: int) -> Q:
        if depth > MAX_DEPTH:
            raise QueryError(path, f"nested too deeply (more than {MAX_DEPTH} levels)")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise QueryError(path, f"too many query nodes (more than {MAX_NODES})")
        node = _expect_object(node, path)
        kind = node.get("type")
        if kind in ("and", "or"):
            _keys(node, path, {"type", "queries"})
            children = node["queries"]
            if not isinstance(children, list):
                raise QueryError(_join(path, "queries"), f"expected an array, got {_type_name(children)}")
            compiled = [
                self.query(child, _join(_join(path, "queries"), i), object_type, depth + 1)
                for i, child in enumerate(children)
            ]
            if kind == "and":
                result = Q()
                for item in compiled:
                    result &= item
                return result
            if not compiled:
                return _NOTHING
            result = compiled[0]
            for item in compiled[1:]:
                result |= item
            return result
        if kind == "not":
            _keys(node, path, {"type", "query"})
            inner = self.query(node["query"], _join(path, "query"), object_type, depth + 1)
            return ~inner if inner else _NOTHING  # "not everything" is nothing; ~Q() would be everything
        if kind == "match_all":
            _keys(node, path, {"type"})
            return Q()
        if kind == "object_type":
            _keys(node, path, {"type", "object_type"})
            wanted = self._object_type(node, "object_type", path)
            return Q() if wanted == object_type else _NOTHING
        if kind == "field_condition":
            _keys(node, path, {"type", "field", "condition"})
            field = self.field(node["field"], _join(path, "field"), object_type)
            return self.condition(field, node["condition"], _join(path, "condition"))
        if kind == "has_related":
            _keys(node, path, {"type", "related_object_type", "related_query"}, {"this_object_type"})
            if "this_object_type" in node:
                this = self._object_type(node, "this_object_type", path)
                if this != object_type:
                    raise QueryError(_join(path, "this_object_type"), f'expected "{object_type}" here, got "{this}"')
            related = self._object_type(node, "related_object_type", path)
            relation = RELATIONS.get((object_type, related))
            if relation is None:
                raise QueryError(
                    _join(path, "related_object_type"), f'a {object_type} has no related "{related}" objects'
                )
            model, link = relation
            inner = self.query(node["related_query"], _join(path, "related_query"), related, depth + 1)
            return Q(Exists(model._default_manager.filter(link()).filter(inner)))
        if kind is None:
            raise QueryError(_join(path, "type"), "is required")
        raise QueryError(
            _join(path, "type"), f"unknown query type {kind!r} (expected one of {', '.join(_QUERY_TYPES)})"
        )

    def _object_type(self, node: dict, key: str, path: str) -> str:
        value = node.get(key)
        if value not in OBJECT_TYPES:
            raise QueryError(
                _join(path, key), f"unknown object type {value!r} (expected one of {', '.join(OBJECT_TYPES)})"
            )
        return value

    # Fields -------------------------------------------------------------------
    def field(self, node: Any, path: str, object_type: str) -> ResolvedField:
        node = _expect_object(node, path)
        kind = node.get("type")
        if kind == "regular_field":
            _keys(node, path, {"type", "field_name"}, {"object_type"})
            self._same_object_type(node, path, object_type)
            name = _string(node, "field_name", path)
            if name.startswith("custom."):
                return self._custom(name[len("custom.") :], _join(path, "field_name"), object_type)
            spec = FIELDS[object_type].get(name)
            if spec is None:
                raise QueryError(_join(path, "field_name"), f"unknown {object_type} field {name!r}")
            return ResolvedField(object_type, name, spec=spec)
        if kind == "custom_field":
            names = {"custom_field_id", "custom_field_name"} & set(node)
            if len(names) != 1:
                raise QueryError(_join(path, "custom_field_id"), "is required")
            _keys(node, path, {"type", *names}, {"object_type"})
            self._same_object_type(node, path, object_type)
            key = names.pop()
            name = _string(node, key, path)
            if name.startswith("custom."):
                name = name[len("custom.") :]
            return self._custom(name, _join(path, key), object_type)
        if kind is None:
            raise QueryError(_join(path, "type"), "is required")
        raise QueryError(
            _join(path, "type"), f'unknown field type {kind!r} (expected "regular_field" or "custom_field")'
        )

    def _same_object_type(self, node: dict, path: str, object_type: str) -> None:
        if "object_type" in node:
            given = self._object_type(node, "object_type", path)
            if given != object_type:
                raise QueryError(
                    _join(path, "object_type"),
                    f'expected "{object_type}" here, got "{given}" (use has_related to reach related objects)',
                )

    def _custom(self, name: str, path: str, object_type: str) -> ResolvedField:
        if object_type not in HAS_CUSTOM:
            raise QueryError(path, f"{object_type} objects have no custom fields")
        if not _CUSTOM_NAME.match(name):
            raise QueryError(path, "invalid custom field name")
        return ResolvedField(object_type, f"custom.{name}", custom_key=name)

    # Conditions ---------------------------------------------------------------
    def condition(self, field: ResolvedField, node: Any, path: str) -> Q:
        node = _expect_object(node, path)
        kind = node.get("type")
        if kind is None:
            raise QueryError(_join(path, "type"), "is required")
        if kind not in _CONDITION_TYPES:
            raise QueryError(
                _join(path, "type"), f"unknown condition type {kind!r} (expected one of {', '.join(_CONDITION_TYPES)})"
            )
        handler = getattr(self, f"_cond_{kind}")
        return handler(field, node, path)

    def _not_for(self, field: ResolvedField, kind: str, path: str) -> QueryError:
        field_kind = field.spec.kind if field.spec is not None else "custom"
        return QueryError(
            _join(path, "type"), f"a {kind} condition does not apply to {field.name!r} ({field_kind} field)"
        )

    def _wrap(self, field: ResolvedField, inner: Q) -> Q:
        """Multi-valued fields match when any of their rows does."""
        spec = field.spec
        if spec is None or spec.via is None:
            return inner
        model, fk = spec.via
        return Q(Exists(model._default_manager.filter(**{fk: OuterRef("pk")}).filter(inner)))

    def _cond_text(self, field: ResolvedField, node: dict, path: str) -> Q:
        _keys(node, path, {"type", "mode", "value"})
        mode = node["mode"]
        if mode not in _TEXT_MODES:
            raise QueryError(
                _join(path, "mode"),
                f'unknown mode "{mode}"' if isinstance(mode, str) else f"expected a string, got {_type_name(mode)}",
            )
        value = _string(node, "value", path)
        if len(value) > MAX_TEXT_LENGTH:
            raise QueryError(_join(path, "value"), f"longer than {MAX_TEXT_LENGTH} characters")
        tokens = re.findall(r"\w+", fold_text(value) or "")
        if not tokens:
            raise QueryError(_join(path, "value"), "must contain at least one letter or digit")
        if len(tokens) > MAX_TEXT_TOKENS:
            raise QueryError(_join(path, "value"), f"more than {MAX_TEXT_TOKENS} words")
        if field.custom_key is not None:
            target = Fold(KeyTextTransform(field.custom_key, "custom"))
        elif field.spec is not None and field.spec.kind in ("text", "choice"):
            target = Fold(F(field.spec.column))
        else:
            raise self._not_for(field, "text", path)
        # Tokens are \w+ only, so they need no regex escaping; the same pattern is
        # valid for PostgreSQL's ARE and Python's re (SQLite's REGEXP).
        if mode == "phrase":
            patterns = [r"(^|\W)" + r"\W+".join(tokens) + r"(\W|$)"]
        elif mode == "full_words":
            patterns = [rf"(^|\W){token}(\W|$)" for token in tokens]
        else:
            patterns = [rf"(^|\W){token}" for token in tokens]
        result = Q()
        for pattern in patterns:
            result &= Q(Regex(target, pattern))
        return self._wrap(field, result)

    def _cond_term(self, field: ResolvedField, node: dict, path: str) -> Q:
        _keys(node, path, {"type", "values"})
        values = node["values"]
        vpath = _join(path, "values")
        if not isinstance(values, list):
            raise QueryError(vpath, f"expected an array, got {_type_name(values)}")
        if len(values) > MAX_TERM_VALUES:
            raise QueryError(vpath, f"more than {MAX_TERM_VALUES} values")
        if field.custom_key is not None:
            for i, v in enumerate(values):
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not _is_number(v):
                    raise QueryError(_join(vpath, i), _number_problem(v))
                if not (isinstance(v, (str, bool)) or _is_number(v)):
                    raise QueryError(_join(vpath, i), f"expected a string, number or boolean, got {_type_name(v)}")
            # Typed JSON equality: 5 matches 5 and not "5".
            return Q(**{f"custom__{field.custom_key}__in": values})
        spec = field.spec
        assert spec is not None
        if spec.kind in ("text", "choice"):
            for i, v in enumerate(values):
                if not isinstance(v, str):
                    raise QueryError(_join(vpath, i), f"expected a string, got {_type_name(v)}")
                if spec.choices is not None and v not in spec.choices:
                    raise QueryError(
                        _join(vpath, i), f"unknown value {v!r} (expected one of {', '.join(spec.choices)})"
                    )
            return self._wrap(field, Q(**{f"{spec.column}__in": values}))
        if spec.kind == "number":
            for i, v in enumerate(values):
                if not _is_number(v):
                    raise QueryError(_join(vpath, i), _number_problem(v))
            return Q(**{f"{spec.column}__in": values})
        if spec.kind == "id":
            ids = []
            for i, v in enumerate(values):
                try:
                    ids.append(uuid.UUID(v) if isinstance(v, str) else None)
                except ValueError:
                    ids.append(None)
                if ids[-1] is None:
                    raise QueryError(_join(vpath, i), f"not a valid id: {v!r}")
            return Q(**{f"{spec.column}__in": ids})
        raise self._not_for(field, "term", path)

    def _cond_number_range(self, field: ResolvedField, node: dict, path: str) -> Q:
        bounds = {"gt", "gte", "lt", "lte"}
        _keys(node, path, {"type"}, bounds)
        given = {k: node[k] for k in bounds if k in node and node[k] is not None}
        if not given:
            raise QueryError(path, "needs at least one of gt, gte, lt, lte")
        for key, value in given.items():
            if not _is_number(value):
                raise QueryError(_join(path, key), _number_problem(value))
        if field.custom_key is not None:
            result = Q(JsonKeyIsNumber("custom", field.custom_key))
            return result & Q(**{f"custom__{field.custom_key}__{key}": value for key, value in given.items()})
        spec = field.spec
        if spec is None or spec.kind != "number":
            raise self._not_for(field, "number_range", path)
        return Q(**{f"{spec.column}__{key}": value for key, value in given.items()})

    def _cond_moment_range(self, field: ResolvedField, node: dict, path: str) -> Q:
        bounds = ("on_or_after", "after", "before", "on_or_before")
        _keys(node, path, {"type"}, set(bounds))
        given = {k: node[k] for k in bounds if k in node and node[k] is not None}
        if not given:
            raise QueryError(path, "needs at least one of on_or_after, after, before, on_or_before")
        spec = field.spec
        if field.custom_key is not None or spec is None or spec.kind not in ("datetime", "date"):
            raise self._not_for(field, "moment_range", path)
        lookups = {"on_or_after": "gte", "after": "gt", "before": "lt", "on_or_before": "lte"}
        result = Q()
        for key, moment_node in given.items():
            moment = compile_moment(moment_node, _join(path, key), now=self.now, tz=self.tz)
            if spec.kind == "date":
                # A date is the whole local day: it is "on or after" a moment when the
                # day starts at or after it, and "before" it when it starts before it.
                local = moment.astimezone(self.tz)
                first_full_day = (
                    local.date()
                    if local == _local_midnight(local.date(), self.tz)
                    else local.date() + timedelta(days=1)
                )
                day_lookup = {
                    "on_or_after": ("gte", first_full_day),
                    "before": ("lt", first_full_day),
                    "after": ("gte", local.date() + timedelta(days=1)),
                    "on_or_before": ("lte", local.date()),
                }[key]
                result &= Q(**{f"{spec.column}__{day_lookup[0]}": day_lookup[1]})
            else:
                result &= Q(**{f"{spec.column}__{lookups[key]}": moment})
        return result

    def _cond_exists(self, field: ResolvedField, node: dict, path: str) -> Q:
        _keys(node, path, {"type"})
        if field.custom_key is not None:
            key = field.custom_key
            # JSON null and "" count as "no value", as for regular fields.
            return (
                Q(**{f"custom__{key}__isnull": False})
                & ~Q(**{f"custom__{key}__exact": ""})
                & ~Q(**{f"custom__{key}__exact": None})
            )
        spec = field.spec
        assert spec is not None
        inner = Q(**{f"{spec.column}__isnull": False})
        if spec.kind in ("text", "choice"):
            inner &= ~Q(**{spec.column: ""})
        return self._wrap(field, inner)

    def _cond_boolean(self, field: ResolvedField, node: dict, path: str) -> Q:
        _keys(node, path, {"type", "value"})
        value = node["value"]
        if not isinstance(value, bool):
            raise QueryError(_join(path, "value"), f"expected a boolean, got {_type_name(value)}")
        if field.custom_key is None:
            raise self._not_for(field, "boolean", path)
        return Q(**{f"custom__{field.custom_key}__exact": value})


# Matches no row; unlike ~Q() it composes with & | ~ as expected.
_NOTHING = Q(pk__in=[])


def compile_query(s_query: Any, *, object_type: str = "lead", now: datetime, tz: tzinfo) -> Q:
    """The filter of ``s_query`` over ``object_type`` rows. ``None`` means all rows.

    Raises ``QueryError`` for anything invalid; never touches the database."""
    if object_type not in OBJECT_TYPES:
        raise ValueError(object_type)
    if s_query is None:
        return Q()
    check_size(s_query)
    return _Compiler(now=now, tz=tz).query(s_query, "", object_type, 1)


def compile_sort(sort: Any, *, object_type: str = "lead", path: str = "sort") -> list[OrderBy]:
    """``[{"direction": "asc"|"desc", "field": <field>}, ...]`` → order_by() terms,
    ending with ``id`` so that equal keys still come in one stable order."""
    if sort is None:
        sort = []
    if not isinstance(sort, list):
        raise QueryError(path, f"expected an array, got {_type_name(sort)}")
    if len(sort) > MAX_SORT_KEYS:
        raise QueryError(path, f"more than {MAX_SORT_KEYS} sort keys")
    compiler = _Compiler(now=datetime.now(UTC), tz=UTC)
    terms: list[OrderBy] = []
    for i, item in enumerate(sort):
        item_path = _join(path, i)
        item = _expect_object(item, item_path)
        _keys(item, item_path, {"field"}, {"direction"})
        direction = item.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise QueryError(
                _join(item_path, "direction"), f'unknown direction {direction!r} (expected "asc" or "desc")'
            )
        field = compiler.field(item["field"], _join(item_path, "field"), object_type)
        if field.custom_key is not None:
            expression: Any = KeyTransform(field.custom_key, "custom")
        else:
            assert field.spec is not None
            if not field.spec.sortable:
                raise QueryError(_join(_join(item_path, "field"), "field_name"), f"cannot sort by {field.name!r}")
            expression = F(field.spec.column)
        # Empty values sort last whichever the direction, as Close does.
        terms.append(expression.asc(nulls_last=True) if direction == "asc" else expression.desc(nulls_last=True))
    terms.append(F("id").asc())
    return terms


def validate_results_limit(value: Any, path: str = "results_limit") -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise QueryError(path, f"expected a whole number >= 0 or null, got {value!r}")
    return value
