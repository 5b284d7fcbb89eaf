"""Run database work for an export ahead of the caller, on threads of their own.

``RenderThreads`` is a small, fixed pool of threads, each holding its own Django
database connection (connections are per thread). The caller submits calls in
order and takes their results back in the same order, while it compresses and
uploads what it took before; up to ``ahead`` calls are queued or running at once,
so memory stays bounded. On PostgreSQL that puts both cores to work: the database
renders the next batches on two backends while the worker gzips the previous one.

A thread's connection cannot see the caller's uncommitted writes, so callers use
the pool only outside a transaction (``connection.in_atomic_block`` false), and
fall back to rendering in their own connection otherwise (tests inside a test
transaction do).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from django.db import connections

_STOP = object()


class RenderThreads:
    def __init__(self, workers: int, *, ahead: int) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[Future[Any]] = deque()
        self.ahead = max(ahead, workers)
        self._threads = [
            threading.Thread(target=self._work, name=f"export-render-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        try:
            while True:
                item = self._inbox.get()
                if item is _STOP:
                    return
                future, fn, args = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                    future.set_exception(exc)
        finally:
            connections.close_all()  # this thread's connections only

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.ahead

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        future: Future[Any] = Future()
        self._pending.append(future)
        self._inbox.put((future, fn, args))

    def next_result(self) -> Any:
        """The oldest submitted call's result (waits for it; raises what it raised)."""
        return self._pending.popleft().result()

    def discard(self) -> None:
        """Forget every submitted call: those not started never run, the results of
        running ones are dropped."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()

    def close(self) -> None:
        """Discard what is pending, let running calls finish, stop the threads."""
        self.discard()
        for _ in self._threads:
            self._inbox.put(_STOP)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> RenderThreads:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
