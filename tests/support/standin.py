"""A STAND-IN embedding server, for fault injection only: it is not SGLang and measures nothing.

A real server cannot be made to answer NaN, the wrong number of vectors, a body that is not JSON, an answer
trickled a byte at a time or nothing at all on purpose, so these faults come from this small OpenAI-compatible
server instead: ``/v1/embeddings``, ``/v1/models``, ``/health`` and (when told what to report) ``/get_server_info``
on 127.0.0.1, in a background thread of the test process. Unless a fault says otherwise it answers like SGLang:
one unit vector of ``dimensions`` numbers (384 unless told) per input, derived from a hash of the text so that the
same text always gets the same vector, in input order, as floats or as base64 float32 (``encoding_format``, the
openai SDK's default). Every fault it can play is in FAULTS, with what it does.

    with StandinServer(fault="nan") as server:
        pytest --embed-url={server.url} --embed-model=minilm ...

    with StandinServer("trickle", delay=0.3, dimensions=4) as server:
        ...server.url...
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

DIMENSIONS = 384

# What each fault does. Unless it says otherwise, it changes the answers of POST /v1/embeddings only, and the
# other routes answer correctly.
FAULTS = {
    # Wrong answers a client must refuse.
    "server-errors": "`failures` requests in a row answer HTTP 500 (after the first `after`), the others are right",
    "some-errors": "every `every`-th request answers HTTP 500 (a server failing 1/every of its requests)",
    "nan": "NaN in the vector of every input listed in `bad_inputs`",
    "inf": "inf in the vector of every input listed in `bad_inputs`",
    "wrong-dimension": "vectors of `dimensions` - 1 numbers",
    "fewer-vectors": "the last input's vector is missing",
    "more-vectors": "one vector more than there are inputs",
    "shuffled": "the vectors in reverse order, each with its right index (legal: clients must reorder)",
    "duplicate-index": "the first vector twice, with index 0, instead of the last one",
    "non-json": "HTTP 200 with an HTML page (a proxy's error page)",
    "empty-body": "HTTP 200, Content-Type application/json, and no body",
    "json-list": "HTTP 200 with a JSON list instead of an object",
    "usage-null": 'correct vectors, `"usage": null`',
    "tokens-text": 'correct vectors, `"prompt_tokens": "many"`',
    "null-vectors": '`"embedding": null` for every input',
    "null-in-vector": "a null among the numbers of every vector",
    # Answers that never come, or come too slowly.
    "hang": "reads the request and never answers",
    "trickle": "a correct answer, its body sent one byte every `delay` seconds after the headers",
    "trickle-headers": "a correct answer, the status line and headers themselves sent one byte every `delay` seconds",
    "trickle-models": "GET /v1/models answered one byte every `delay` seconds (its embeddings are correct)",
    # Answers too big to read.
    "huge": "HTTP 200 with a body of 1 GB (its Content-Length says so), sent as fast as the client reads it",
    # Vectors that are numbers, and wrong.
    "zeros": "vectors of zeros for every input (a broken kernel; NaN-free, so only the direction is missing)",
    "truncated": "vectors of the first `dimensions` numbers only (fewer than the model's), without the dimension "
                 "check's help",
    "drifted": "every vector turned away from the healthy one until their cosine is `cosine` (a changed kernel)",
    "batch-dependent": "a text's vector depends on its batch: turned to cosine `cosine` inside a batch of several",
    # What the server says about itself.
    "bad-dtype": "/get_server_info reports dtype `/../../x` (its embeddings are correct)",
}

TRICKLED = ("trickle", "trickle-headers")


def unit_vector(text: str, dimensions: int = DIMENSIONS) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return vector / np.linalg.norm(vector)


class StandinServer:
    """One STAND-IN server (not SGLang); ``fault`` (a key of FAULTS, or None) says how it misbehaves.

    ``start()``/``stop()`` or ``with``: the same life cycle, whatever the fault.
    """

    def __init__(self, fault: str | None = None, *, failures: int = 0, after: int = 0,
                 bad_inputs: tuple[int, ...] = (1,), api_key: str | None = None, model: str = "minilm",
                 every: int = 5, dimensions: int = DIMENSIONS, cosine: float = 0.99, delay: float = 0.3,
                 server_info: dict | None = None):
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.fault = fault
        self.failures = failures
        self.after = after
        self.bad_inputs = bad_inputs
        self.every = every
        self.cosine = cosine
        self.dimensions = dimensions
        self.delay = delay  # seconds between two bytes of a trickled answer
        self.api_key = api_key
        self.model = model
        # What it reports at /get_server_info, as SGLang does (a deployment no CPU can run: fp8, tp 8); none if None.
        self.server_info = server_info
        self.embedding_requests = 0  # every POST /v1/embeddings, failed or not
        self.unauthorized_requests = 0
        self.huge_bytes_sent = 0  # how much of a "huge" answer went out before the client stopped reading
        self.seen_authorization: list[str] = []  # the headers that arrived, for the secrecy tests
        self._lock = threading.Lock()
        self._released = threading.Event()  # lets hanging and trickling handlers go when the server stops
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="standin-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "StandinServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answers ------------------------------------------------------------------------------

    def reported_info(self) -> dict | None:
        """What /get_server_info answers; None: it is not found (HTTP 404), as on a server that is not SGLang."""
        if self.fault == "bad-dtype":
            return {**(self.server_info or {"version": "stand-in"}), "dtype": "/../../x"}
        return self.server_info

    def embeddings(self, request: dict) -> tuple[int, dict[str, str], bytes] | None:
        """(status, headers, body) for one request; None means: never answer."""
        with self._lock:
            self.embedding_requests += 1
            number = self.embedding_requests
        if self.fault == "server-errors" and self.after < number <= self.after + self.failures:
            return _json(500, {"object": "error", "message": f"stand-in: injected internal error (request {number})",
                               "type": "InternalServerError", "code": 500})
        if self.fault == "some-errors" and number % self.every == 0:
            return _json(500, {"object": "error", "message": f"stand-in: injected internal error (request {number})",
                               "type": "InternalServerError", "code": 500})
        if self.fault == "hang":
            self._released.wait()
            return None
        if self.fault == "non-json":
            return 200, {"Content-Type": "text/html"}, b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        if self.fault == "empty-body":
            return 200, {"Content-Type": "application/json"}, b""
        if self.fault == "json-list":
            return 200, {"Content-Type": "application/json"}, json.dumps([1, 2, 3]).encode()

        texts = request.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        dimensions = self.dimensions - 1 if self.fault == "wrong-dimension" else self.dimensions
        vectors = [unit_vector(str(text), dimensions) for text in texts]
        if self.fault == "zeros":
            vectors = [np.zeros(dimensions, dtype=np.float32) for _ in texts]
        if self.fault == "drifted" or (self.fault == "batch-dependent" and len(texts) > 1):
            vectors = [_turned(vector, unit_vector("away " + str(text), dimensions), self.cosine)
                       for vector, text in zip(vectors, texts)]
        if self.fault in ("nan", "inf"):
            for i in (i for i in self.bad_inputs if i < len(vectors)):
                vectors[i][3] = np.nan if self.fault == "nan" else np.inf
        items = list(enumerate(vectors))
        if self.fault == "fewer-vectors":
            items = items[:-1]
        elif self.fault == "more-vectors":
            items.append((len(items), unit_vector("one too many", dimensions)))
        elif self.fault == "shuffled":
            items.reverse()
        elif self.fault == "duplicate-index":
            items = [items[0], *items[:-1]]
        as_base64 = request.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": index, "embedding": _encode(vector, as_base64)}
                for index, vector in items]
        if self.fault == "null-vectors":
            for item in data:
                item["embedding"] = None
        elif self.fault == "null-in-vector":  # a JSON list, whatever the encoding asked for: base64 has no null
            for item in data:
                item["embedding"] = [None if i == 1 else float(x) for i, x in enumerate(vectors[item["index"]])]
        tokens = sum(len(str(text).split()) + 2 for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        if self.fault == "usage-null":
            usage = None
        elif self.fault == "tokens-text":
            usage = {"prompt_tokens": "many", "total_tokens": "many"}
        return _json(200, {"object": "list", "model": self.model, "data": data, "usage": usage})


def _turned(vector: np.ndarray, other: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at exactly ``cosine`` from ``vector``, in the plane it spans with ``other``."""
    away = other - (other @ vector) * vector
    away /= np.linalg.norm(away)
    return (cosine * vector + np.sqrt(1 - cosine**2) * away).astype(np.float32)


def _encode(vector: np.ndarray, as_base64: bool):
    if as_base64:  # as SGLang does: little-endian float32, NaN and inf kept
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]  # json writes NaN and Infinity for non-finite floats


def _json(status: int, payload) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _handler_for(server: StandinServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai SDK's pooled client expects

        def log_message(self, *args):
            pass

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization")
            if header:
                server.seen_authorization.append(header)
            if server.api_key is None or header == f"Bearer {server.api_key}":
                return True
            server.unauthorized_requests += 1
            self._send(*_json(401, {"object": "error", "message": "stand-in: invalid API key", "code": 401}))
            return False

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_trickled(self, status: int, headers: dict[str, str], body: bytes) -> None:
            if server.fault == "trickle-headers":
                head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                head = (f"HTTP/1.1 {status} OK\r\n{head}Content-Length: {len(body)}\r\n"
                        "X-Padding: " + "x" * 40 + "\r\n\r\n").encode()
                if self._trickle(head):
                    self.wfile.write(body)
                return
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._trickle(body)

        def _trickle(self, data: bytes) -> bool:
            """Whether all of ``data`` went out before the client gave up (which is the point)."""
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    if server._released.wait(server.delay):
                        return False
            except OSError:
                return False
            return True

        def do_GET(self):
            if not self._authorized():
                return
            if self.path == "/health":
                self._send(200, {}, b"")
            elif self.path == "/get_server_info" and server.reported_info() is not None:
                self._send(*_json(200, server.reported_info()))
            elif self.path == "/v1/models" and server.fault == "trickle-models":
                self._send_trickled(*_json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]}))
            elif self.path == "/v1/models":
                self._send(*_json(200, {"object": "list", "data": [
                    {"id": server.model, "object": "model", "owned_by": "stand-in"}]}))
            else:
                self._send(*_json(404, {"detail": "Not Found"}))

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self._authorized():
                return
            if self.path != "/v1/embeddings":
                self._send(*_json(404, {"detail": "Not Found"}))
                return
            answer = server.embeddings(json.loads(body or b"{}"))
            if answer is None:
                self.close_connection = True
                return
            if server.fault in TRICKLED:
                self._send_trickled(*answer)
                return
            if server.fault == "huge":
                self._send_huge()
                return
            self._send(*answer)

        def _send_huge(self, size: int = 1 << 30) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"[" + b"0.1," * (1 << 18)  # 1 MiB
            try:
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
                    server.huge_bytes_sent += len(chunk)
            except OSError:  # the client stopped reading: the point
                pass

    return Handler
