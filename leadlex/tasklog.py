"""The request id of a task's message, for Celery's own log lines about the task.

A job's task body wraps itself in ``request_id_scope`` (read from the job row), but
the worker writes lines outside that body: "Task … received" in its main process
when the message arrives, "Task … succeeded / raised / retry" in the pool process
around the body. Those name the task, so the request id travels with the message:

- at publish time (``before_task_publish``), the id of the request (or job) being
  served goes into a message header;
- in the pool process, the header is an attribute of the current task's request
  while the task runs, and the log filter reads it there;
- in the main process, the "received" line is written as soon as the message is
  decoded, before any signal: the worker's Request class notes the header by task
  id when it is built, and the filter looks the line's task id up.

Wired in ``config/celery.py`` (the signal and the app's task class).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from celery import Task
from celery._state import get_current_task
from celery.worker.request import Request

HEADER = "leadlex_request_id"

# Task id → request id of the messages the main process has received lately. Bounded:
# an entry is only needed for the few lines written while that task is in this worker.
_RECEIVED_LIMIT = 2048
_received: OrderedDict[str, str] = OrderedDict()


def add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish`` receiver. A header the sender set itself wins."""
    from leadlex.middleware import current_request_id

    request_id = current_request_id()
    if headers is not None and request_id and HEADER not in headers:
        headers[HEADER] = request_id


class RequestWithRequestId(Request):
    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        request_id = self.request_dict.get(HEADER)
        if isinstance(request_id, str) and request_id:
            _received[self.id] = request_id
            _received.move_to_end(self.id)
            while len(_received) > _RECEIVED_LIMIT:
                _received.popitem(last=False)


class LeadlexTask(Task):
    """The app's base task class: only its worker-side Request differs."""

    Request = "leadlex.tasklog:RequestWithRequestId"


def task_request_id(record: logging.LogRecord) -> str | None:
    """The request id of the task a log line is about, if its message carried one."""
    task = get_current_task()
    if task is not None and not task.request.called_directly:
        request_id = getattr(task.request, HEADER, None)
        if isinstance(request_id, str) and request_id:
            return request_id
    # Celery passes the line's context (with the task id) as ``data``.
    data = getattr(record, "data", None)
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return _received.get(data["id"])
    return None
