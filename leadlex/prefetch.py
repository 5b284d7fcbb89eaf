"""Work done ahead of a job's main loop, on threads or in a forked child: the one
place where jobs start threads and processes.

* ``RenderThreads``: a small, fixed pool of threads, each with its own Django
  database connection, running submitted calls whose results come back in order
  (an export renders its next batches on the database while it compresses and
  uploads the previous one).
* ``thread_prefetch(items)``: an iterator run in one background thread, a few
  items ahead of its consumer (no database access in the producer).
* ``fork_prefetch(produce)``: an iterator run in a forked child process (the
  other core, no GIL shared with the consumer), its items sent back through a pipe.

Threads run in a copy of the caller's ``contextvars`` context, so what they log
carries the job's request id (``leadlex.middleware``). A forked child inherits it
with the rest of the process.
"""

from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")

_STOP = object()


def start_thread(target: Callable[[], None], *, name: str) -> threading.Thread:
    """A daemon thread running ``target`` in a copy of the caller's context (a context
    can be entered by one thread at a time, hence one copy per thread)."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


class RenderThreads:
    """A thread's connection cannot see the caller's uncommitted writes, so callers use
    the pool only outside a transaction (``connection.in_atomic_block`` false), and
    fall back to running in their own connection otherwise (tests inside a test
    transaction do). Up to ``ahead`` calls are queued or running at once, so memory
    stays bounded."""

    def __init__(self, workers: int, *, ahead: int, name: str = "render") -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[Future[Any]] = deque()
        self.ahead = max(ahead, workers)
        self._threads = [start_thread(self._work, name=f"{name}-{i}") for i in range(workers)]

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

    def __exit__(self, *exc: object) -> None:
        self.close()


def thread_prefetch(items: Iterator[T], *, depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """``items`` produced in a background thread, ``depth`` ahead of the consumer. The
    producer must not touch the database (Django connections are per thread). An
    error in the producer is raised in the consumer; a consumer that stops early
    stops the producer."""
    buffer: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            buffer.put((None, exc))

    thread = start_thread(produce, name=name)
    try:
        while True:
            item, exc = buffer.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.2)


def fork_prefetch(produce: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """Run ``produce()`` in a forked child that sends each item (picklable; plain
    tuples are cheapest to unpickle) back through a pipe, whose small buffer keeps the
    child about one item ahead. ``produce`` must not touch the database, and the child
    owns whatever stream ``produce`` reads from the fork on (this process must not
    read it). The child ends on its own when this process dies (its next send fails)
    and is killed when the consumer stops early.

    A bare ``os.fork``, not ``multiprocessing.Process``: Celery's prefork pool runs
    tasks in daemonic processes, which multiprocessing forbids to have children."""
    from leadlex.jobs import is_transient

    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's cleanup or atexit hooks
        code = 0
        try:
            receiver.close()
            try:
                for item in produce():
                    sender.send((item,))
                sender.send(None)
            except (BrokenPipeError, ConnectionResetError):
                code = 1  # the parent is gone
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
                try:
                    sender.send(exc)
                except Exception:  # noqa: BLE001 - unpicklable: keep its kind (transient or not) and text
                    kind = ConnectionError if is_transient(exc) else RuntimeError
                    sender.send(kind(f"{type(exc).__name__}: {exc}"))
        except BaseException:  # noqa: BLE001 - whatever happens, the child must not return
            code = 1
        finally:
            os._exit(code)
    sender.close()
    finished = False
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                raise RuntimeError("a job's prefetch process ended unexpectedly") from None
            if message is None:
                finished = True
                return
            if isinstance(message, BaseException):
                finished = True
                raise message
            yield message[0]
    finally:
        receiver.close()
        if not finished:
            with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
