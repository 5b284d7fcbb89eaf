"""The one JSON body parser of the API, and the checks every JSON value passes.

Every ``application/json`` body of every /v1 endpoint comes through
:class:`JSONBodyParser`, and every NDJSON line through :func:`json_loads_checked`,
so that what cannot be stored or processed is refused once, in one place, with a
400 ``validation_error`` that names the field:

* a body nested deeper than :data:`MAX_DEPTH` (no endpoint needs more; deeper
  input only exists to exhaust the stack);
* a top level that is not an object (every endpoint takes an object);
* a string no database can store: a NUL character (PostgreSQL's text refuses it)
  or a lone UTF-16 surrogate (it is not text at all, and neither SQLite's nor
  PostgreSQL's UTF-8 can encode it);
* integers outside 64-bit signed (no column holds them; orjson reads up to
  unsigned 64 bits, and larger ones as floats, which serializers then refuse).

orjson parses; it already refuses surrogates, over-deep input and huge numbers,
but without saying where. Only when it fails does the standard library parse the
body again, to name the field.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import orjson
from rest_framework.parsers import BaseParser

from leadlex.errors import ValidationFailed

MAX_DEPTH = 64
_INT_RANGE = (-(2**63), 2**63 - 1)  # the widest integer column is a bigint
_BOM = codecs.BOM_UTF8
_JSON_KINDS = {
    list: "an array",
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
}
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


def _may_hold_bad_scalars(raw: bytes | str) -> bool:
    if isinstance(raw, bytes):
        return b"\\u0000" in raw or _LONG_DIGITS_BYTES.search(raw) is not None
    return "\\u0000" in raw or _LONG_DIGITS.search(raw) is not None


def field_path(parent: str, key: str | int) -> str:
    """``rows[3].full_name``: what a user finds in their own document."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if key.isidentifier():
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key)}]"


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def json_value_problem(
    value: Any, *, check_strings: bool = True, skip: frozenset[str] = frozenset()
) -> tuple[str, str] | None:
    """``(path, problem)`` of the first part of ``value`` that the API refuses, else None.

    ``skip`` names top-level keys whose strings are left to a later, finer check
    (an import reports a bad cell on its row instead of refusing the whole body);
    their depth is still bounded."""
    stack: list[tuple[Any, str, int, bool]] = [(value, "", 1, check_strings)]
    while stack:
        item, path, depth, check = stack.pop()
        if not isinstance(item, (dict, list)):
            if check and (problem := _scalar_problem(item)) is not None:
                return path or "$", problem
            continue
        if depth > MAX_DEPTH:
            return path or "$", f"is nested too deeply (at most {MAX_DEPTH} levels)"
        for key, child in item.items() if isinstance(item, dict) else enumerate(item):
            child_path = field_path(path, key)
            child_check = check and not (depth == 1 and key in skip)
            if child_check and isinstance(key, str) and (problem := _string_problem(key)) is not None:
                return child_path, f"has a name that {problem}"
            if isinstance(child, (dict, list)):
                stack.append((child, child_path, depth + 1, child_check))
            elif child_check and (problem := _scalar_problem(child)) is not None:
                return child_path, problem
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, int) and not isinstance(value, bool) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        return "is a number too large to store"
    return None


def _refuse(path: str, problem: str, *, where: str = "") -> ValidationFailed:
    label = f"{where}: {path}" if where else path
    return ValidationFailed(f"{label} {problem}.", details={"field": path, **({"where": where} if where else {})})


def json_loads_checked(
    raw: bytes | str,
    *,
    where: str = "",
    require_object: bool = True,
    check_strings: bool = True,
    skip: frozenset[str] = frozenset(),
    refusal_status: int = 400,
) -> Any:
    """Parse one JSON document and apply the checks above; raises ``ValidationFailed``.

    ``check_strings=False`` (or ``skip``, for some top-level keys) leaves NULs to a
    later check that reports them per row; a lone surrogate is refused regardless.
    ``refusal_status`` is the status of a well-formed document that is refused (a
    endpoint whose contract answers 422 for bad parameters); malformed JSON is a 400."""
    if isinstance(raw, bytes) and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]  # what Windows editors put first; not part of the document
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _locate(raw, exc, where=where) from None
    if require_object and not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "a value")
        raise ValidationFailed(
            f"{where + ': ' if where else ''}The body must be a JSON object, not {kind}.",
            details={"field": "$"},
            status_code=refusal_status,
        )
    # orjson has refused surrogates; a NUL can only come from a \u0000 escape and a too-large integer
    # from 19 digits in a row: without either, no scalar needs a look, only the depth.
    needs_scalars = check_strings and _may_hold_bad_scalars(raw)
    found = json_value_problem(value, check_strings=needs_scalars, skip=skip)
    if found is not None:
        refusal = _refuse(*found, where=where)
        refusal.status_code = refusal_status
        raise refusal
    return value


def _locate(raw: bytes | str, exc: orjson.JSONDecodeError, *, where: str) -> ValidationFailed:
    """orjson said no: parse again with the standard library to say where and why."""
    prefix = f"{where}: " if where else ""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as decode_error:
        return ValidationFailed(
            f"{prefix}The body is not valid UTF-8 (byte {decode_error.start}).", details={"byte": decode_error.start}
        )
    if "depth limit" in str(exc):
        return ValidationFailed(
            f"{prefix}The JSON is nested too deeply (at most {MAX_DEPTH} levels).", details={"field": "$"}
        )
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        position = getattr(error, "pos", None)
        return ValidationFailed(
            f"{prefix}Malformed JSON: {error}", details={"position": position} if position is not None else None
        )
    found = json_value_problem(value)
    if found is not None:
        return _refuse(*found, where=where)
    return ValidationFailed(f"{prefix}Malformed JSON: {exc}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class JSONBodyParser(BaseParser):
    """DRF's parser for ``application/json``, through :func:`json_loads_checked`.

    A view may set ``json_strings_checked_per_row = frozenset({"rows"})`` when its
    own engine reports a bad string on its row (imports: one bad row never aborts
    the good ones), and ``json_refusal_status = 422`` when its contract answers 422
    for bad parameters."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        charset = _charset(media_type)
        if charset not in ("utf-8", "utf8"):
            try:
                raw = raw.decode(charset)
            except LookupError:
                raise ValidationFailed(f"Unknown charset {charset!r}; send JSON as UTF-8.") from None
            except UnicodeDecodeError as error:
                raise ValidationFailed(f"The body is not valid {charset} (byte {error.start}).") from None
        view = (parser_context or {}).get("view")
        skip: frozenset[str] = getattr(view, "json_strings_checked_per_row", frozenset())
        return json_loads_checked(raw, skip=skip, refusal_status=getattr(view, "json_refusal_status", 400))


def _charset(media_type: str | None) -> str:
    for part in (media_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"').lower()
    return "utf-8"
