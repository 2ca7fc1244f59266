"""Misbehaving agents for polling tests: real HTTP servers on loopback, in threads."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    """What a fake agent sends for one request. `trickle` seconds between pieces of `piece`
    bytes, from the status line on (headers included): an answer that never times out a read
    but never ends either."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0
    piece: int = 1

    @classmethod
    def json(cls, data, **kwargs) -> Answer:
        return cls(body=json.dumps(data).encode(), **kwargs)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a poller that hung up on a hostile answer is what the tests are about


class FakeAgent:
    """Serves `handler(path)` over real HTTP: an Answer, or (status, body bytes, delay seconds).
    Every requested path is kept in `paths`."""

    def __init__(self, handler):
        outer = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn does

            def do_GET(self):
                outer.paths.append(self.path)
                answer = handler(self.path)
                if not isinstance(answer, Answer):
                    status, body, delay = answer
                    answer = Answer(status, body, delay=delay)
                if answer.delay and outer.stop_event.wait(answer.delay):
                    return
                headers = {"Content-Type": "application/json", "Content-Length": str(len(answer.body))}
                headers.update(answer.headers)
                head = f"HTTP/1.1 {answer.status} X\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in headers.items()
                )
                data = head.encode() + b"\r\n" + answer.body
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if not answer.trickle:
                        self.wfile.write(data)
                        return
                    for i in range(0, len(data), answer.piece):
                        if outer.stop_event.wait(answer.trickle):
                            return
                        self.wfile.write(data[i : i + answer.piece])
                        self.wfile.flush()

            def log_message(self, *args):
                pass

        self.stop_event = threading.Event()
        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


class SlowAgent:
    """An agent whose health check takes `delay` seconds. It counts polls (a health request
    starts one, the day list ends it) and the most that were ever under way at once."""

    HEALTH = json.dumps({"agent_version": "1", "following": True, "sources": []}).encode()

    def __init__(self, testcase, delay: float):
        self.delay = delay
        self.lock = threading.Lock()
        self.polls = self.under_way = self.most_under_way = 0
        self.fake = FakeAgent(self.answer)
        testcase.addCleanup(self.fake.close)
        self.url = self.fake.url

    def answer(self, path: str):
        if path.startswith("/api/v1/health/"):
            with self.lock:
                self.polls += 1
                self.under_way += 1
                self.most_under_way = max(self.most_under_way, self.under_way)
            time.sleep(self.delay)
            return 200, self.HEALTH, 0
        with self.lock:
            self.under_way -= 1
        return 200, b'{"days": []}', 0


class SilentAgent:
    """Accepts connections and never answers (a hung agent)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(100)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
