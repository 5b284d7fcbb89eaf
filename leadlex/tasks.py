"""Celery tasks of the platform: thin wrappers that call a service with an id."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections


def _webhook_time_limits() -> tuple[float, float]:
    # Both end before the delivery's lease (a task starts before it claims): an
    # attempt stuck outside its POST's own deadline (a DNS lookup) is interrupted,
    # or its process killed (prefork pool), before another worker may send it again.
    from leadlex.webhooks import delivery_timeouts, in_flight_lease

    budget = sum(delivery_timeouts())
    margin = in_flight_lease().total_seconds() - budget
    return budget + margin / 2, budget + margin * 3 / 4


_WEBHOOK_SOFT_LIMIT, _WEBHOOK_HARD_LIMIT = _webhook_time_limits()


@shared_task(  # type: ignore[call-overload]  # the limits are float seconds, as Celery takes them; its stubs say int
    name="leadlex.webhook_deliver",
    acks_late=True,
    soft_time_limit=_WEBHOOK_SOFT_LIMIT,
    time_limit=_WEBHOOK_HARD_LIMIT,
    ignore_result=True,
)
def webhook_deliver(delivery_id: str) -> str:
    """One attempt at one webhook delivery. Retries are not Celery retries: the
    outcome and the next attempt's time are recorded on the row and the sweeper
    re-dispatches it, so a retry survives worker restarts and broker loss."""
    from leadlex.webhooks import webhook_delivery_attempt

    close_old_connections()
    return webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="leadlex.webhook_sweep", acks_late=True, soft_time_limit=60, time_limit=90, ignore_result=True)
def webhook_sweep() -> int:
    """Periodic (celery beat): dispatch deliveries whose next attempt is due."""
    from leadlex.webhooks import webhook_sweep as sweep

    close_old_connections()
    return sweep()
