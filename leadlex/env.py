"""The one place that reads the process environment.

Every setting has its default in code; parsing is strict so that a typo such as
``LEADLEX_WEBHOOKS_ALLOW_PRIVATE=yess`` stops the process at start-up instead of
silently meaning "off".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

_TRUE = {"1", "true", "on"}
_FALSE = {"0", "false", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_optional(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected one of 1/0, true/false, on/off")


def _parse(name: str, default: T, parse: Callable[[str], T], kind: str) -> T:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected {kind}") from None


def env_int(name: str, default: int) -> int:
    return _parse(name, default, int, "an integer")


def env_list(name: str, default: list[str]) -> list[str]:
    return _parse(name, default, lambda raw: [p.strip() for p in raw.split(",") if p.strip()], "a list")
