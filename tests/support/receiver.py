"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every request and
answers with programmed status codes."""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)  # answered in order; then 200
    requests: list[Received] = field(default_factory=list)
    redirect_to: str | None = None
    # When set, each request is recorded and then held until the event is set (a
    # delivery "on the wire").
    hold: threading.Event | None = None

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.hold is not None:
                    receiver.hold.wait(timeout=30)
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                if 300 <= code < 400 and receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/leadlex"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
