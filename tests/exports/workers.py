"""A real worker bound to its own queue, so that a test decides which worker runs
its job even while the session's shared worker is up."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from tests.support.worker import WorkerProcess


class QueueWorker(WorkerProcess):
    def __init__(self, name: str, queue: str, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(name, extra_env=extra_env, queues=queue, hostname=f"{name}-{uuid.uuid4().hex[:6]}")


@contextlib.contextmanager
def export_runs_routed_to(queue: str) -> Iterator[None]:
    """While active, export run tasks sent from this process go to ``queue``."""
    from config.celery import app

    def use(routes: object) -> None:
        app.conf.task_routes = routes
        app.amqp.flush_routes()
        app.amqp.__dict__.pop("router", None)  # the cached Router keeps the old table

    old = app.conf.task_routes
    use({"exports.export_job_run": {"queue": queue}})
    try:
        yield
    finally:
        use(old)
