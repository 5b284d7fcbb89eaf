"""Entry point of a spawned process that hammers the rate limiter. Imports nothing
from Django at module level: the child must call django.setup() first."""

from __future__ import annotations


def hammer(path: str, workspace_id: str, rate: str, hits: int, barrier, results) -> None:
    import django

    django.setup()
    from django.conf import settings

    from leadlex.ratelimit import rate_limit_hit

    settings.LEADLEX_RATELIMIT_SQLITE_PATH = path
    settings.LEADLEX_RATE_LIMITS = {"default": rate}
    barrier.wait(timeout=60)
    results.put(sum(rate_limit_hit(workspace_id=workspace_id, group="default").allowed for _ in range(hits)))
