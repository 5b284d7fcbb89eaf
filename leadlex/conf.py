"""Reading a tunable setting: on each use, from Django settings, else the environment
(parsed strictly by ``leadlex.env``), else the default in code.

Read per use, never at import: a test's ``settings`` override or
``override_settings`` takes effect at once, and a worker process started with an
environment variable sees it too.
"""

from __future__ import annotations

from django.conf import settings

from leadlex.env import env_bool, env_int, env_str


def setting_int(name: str, default: int) -> int:
    value = getattr(settings, name, None)
    return int(value) if value is not None else env_int(name, default)


def setting_bool(name: str, default: bool) -> bool:
    value = getattr(settings, name, None)
    return bool(value) if value is not None else env_bool(name, default)


def setting_str(name: str, default: str) -> str:
    value = getattr(settings, name, None)
    return str(value) if value is not None else env_str(name, default)
