"""A STAND-IN server for hostile answers no real SGLang gives on purpose: it is not SGLang and measures nothing.

Modes for ``/v1/embeddings`` (other routes answer correctly, except where a mode says otherwise):

    trickle          a correct answer, sent one byte every ``delay`` seconds after the headers
    trickle-headers  the status line and headers themselves sent one byte every ``delay`` seconds
    json-list        HTTP 200 with a JSON list instead of an object
    usage-null       correct vectors, ``"usage": null``
    tokens-text      correct vectors, ``"prompt_tokens": "many"``
    null-vectors     ``"embedding": null`` for every input
    null-in-vector   a null among the numbers of every vector
    bad-dtype        ``/get_server_info`` reports ``dtype`` ``/../../x`` (its embeddings are correct)

    with HostileServer("trickle", delay=0.3) as server:
        ...server.url...
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("trickle", "trickle-headers", "json-list", "usage-null", "tokens-text", "null-vectors",
         "null-in-vector", "bad-dtype")
DIMENSIONS = 4


def _answer(inputs: list, mode: str) -> bytes:
    vector = [0.5, 0.5, 0.5, 0.5]
    data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(len(inputs))]
    usage = {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}
    if mode == "json-list":
        return json.dumps([1, 2, 3]).encode()
    if mode == "usage-null":
        usage = None
    if mode == "tokens-text":
        usage = {"prompt_tokens": "many", "total_tokens": "many"}
    if mode == "null-vectors":
        for item in data:
            item["embedding"] = None
    if mode == "null-in-vector":
        for item in data:
            item["embedding"] = [0.5, None, 0.5, 0.5]
    return json.dumps({"object": "list", "model": "m", "data": data, "usage": usage}).encode()


class HostileServer:
    def __init__(self, mode: str, *, delay: float = 0.3):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        self.mode, self.delay = mode, delay
        self.released = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "HostileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: HostileServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, body: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/v1/models":
                self._send(json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode())
            elif self.path == "/get_server_info":
                dtype = "/../../x" if server.mode == "bad-dtype" else "float32"
                self._send(json.dumps({"dtype": dtype, "version": "stand-in"}).encode())
            else:
                self._send(b"{}")

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length) or b"{}")
            inputs = request.get("input", [])
            inputs = [inputs] if isinstance(inputs, str) else inputs
            body = _answer(inputs, server.mode)
            if server.mode == "trickle-headers":
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                        "X-Padding: " + "x" * 40 + "\r\n\r\n").encode()
                if self._trickle(head):
                    self.wfile.write(body)
                return
            if server.mode == "trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self._trickle(body)
                return
            self._send(body)

        def _trickle(self, data: bytes) -> bool:
            """Whether all of ``data`` went out before the client gave up (which is the point)."""
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    if server.released.wait(server.delay):
                        return False
            except OSError:
                return False
            return True

    return Handler
