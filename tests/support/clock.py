"""Time helpers for tests that count requests against the fixed rate-limit windows."""

from __future__ import annotations

import time


def wait_for_a_fresh_window(period: int = 60, needed: float = 10.0) -> None:
    """Rate-limit windows start at whole multiples of ``period`` (epoch seconds), so requests
    counted across a boundary land in two windows. A test that needs its requests in one
    window waits for the next one when fewer than ``needed`` seconds of this one remain."""
    left = period - (time.time() % period)
    if left < needed:
        time.sleep(left + 0.05)
