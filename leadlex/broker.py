"""The embedded profile's Celery broker: kombu's file-system transport, publishing atomically.

kombu's own ``_put`` creates the message file under its final name and then writes
it (under an ``flock`` that the reader never takes). A worker polling the queue in
between renames the still-empty file away and reads nothing: the message is lost,
and the worker's consumer trips over the empty JSON. Under load a few messages in a
hundred went that way (a webhook delivery's task, an export's run).

Here a message is written under a name no queue matches and renamed into place, so
a reader sees either no file or the whole message (a rename within one directory is
atomic). Named by ``CELERY_BROKER_TRANSPORT`` in settings for ``filesystem://``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu calls _put positionally; its own file-system Channel renames "message" to "payload" too.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # as kombu's own
        # The final name is kombu's own (its order and its queue suffix are what _get reads).
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        # A leading dot: partition(".") gives no "<queue>.msg", so no reader takes it while it is written.
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
