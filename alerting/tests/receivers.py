"""Alert receivers for delivery tests: real HTTP servers on loopback, in threads."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from collector.tests.helpers import free_port

SECRET = "receiver-secret-0123456789"


class Receiver:
    """Accepts POSTs on 127.0.0.1:`port` (a free one by default), answering `status`. Each body
    is kept with whether its X-Alpha-Signature is the HMAC-SHA256 of the raw body with `secret`,
    verified as a receiver should (constant-time compare)."""

    def __init__(self, port: int | None = None, secret: str = SECRET, status: int = 200):
        outer = self
        self.secret = secret
        self.status = status
        self.received: list[dict] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = "sha256=" + hmac.new(outer.secret.encode(), body, hashlib.sha256).hexdigest()
                given = self.headers.get("X-Alpha-Signature", "")
                with outer.lock:
                    outer.received.append(
                        {
                            "body": body,
                            "json": json.loads(body),
                            "signed": hmac.compare_digest(expected, given),
                            "content_type": self.headers.get("Content-Type"),
                        }
                    )
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.port = port or free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentReceiver:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def close(self) -> None:
        self.sock.close()
