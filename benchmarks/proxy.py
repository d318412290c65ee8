"""A reverse proxy for the benchmarks: it plants a slowdown or a drift on one server, and nothing else.

127.0.0.1:<port> -> upstream, in its own process (so it never competes with the load generator for the
benchmark's GIL), one pooled aiohttp client to the server, hop-by-hop headers dropped, status, body and
content type passed back. Four knobs, changeable while it runs:

  delay     seconds to wait before forwarding each request (a slower server, by a fixed time)
  stretch   a fraction: each answer is held back that fraction of the time the request has taken so far
            (a server that is that much slower, however busy the machine makes it)
  turn      a cosine < 1 turns every vector of /v1/embeddings answers away from the served one by exactly that
            cosine, in a direction fixed by the vector itself (a changed kernel: the same drift every time)
  truncate  a number of words > 0 cuts every input of /v1/embeddings requests to its first words (a server
            whose context shrank: the same inputs lose the same words every time)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import multiprocessing
from dataclasses import dataclass

import aiohttp
import numpy as np
from aiohttp import web

from pytest_embedeval.serve.sglang import free_port
from pytest_embedeval.facts.registry import ModelSpec

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


@dataclass
class ProxiedServer:
    """What `markers.Target` needs of a server: its URL and its model spec."""

    url: str
    spec: ModelSpec
    dtype: str = "float32"


def turned(vector: np.ndarray, cosine: float) -> np.ndarray:
    """``vector`` turned to exactly ``cosine`` from itself, its length kept."""
    norm = np.linalg.norm(vector)
    unit = vector / norm
    seed = int.from_bytes(hashlib.sha256(unit.astype(np.float32).tobytes()).digest()[:8], "little")
    other = np.random.default_rng(seed).standard_normal(vector.size)
    away = other - (other @ unit) * unit
    away /= np.linalg.norm(away)
    return ((cosine * unit + np.sqrt(1 - cosine**2) * away) * norm).astype(np.float32)


def _turn_body(data: bytes, cosine: float) -> bytes:
    payload = json.loads(data)
    for item in payload.get("data", []):
        embedding = item["embedding"]
        if isinstance(embedding, str):
            vector = np.frombuffer(base64.b64decode(embedding), dtype="<f4")
            item["embedding"] = base64.b64encode(turned(vector, cosine).astype("<f4").tobytes()).decode()
        else:
            item["embedding"] = turned(np.asarray(embedding, dtype=np.float64), cosine).tolist()
    return json.dumps(payload).encode()


def _truncate_body(body: bytes, words: int) -> bytes:
    payload = json.loads(body)
    texts = payload.get("input")
    cut = lambda text: " ".join(text.split(" ")[:words]) if isinstance(text, str) else text  # noqa: E731
    payload["input"] = [cut(t) for t in texts] if isinstance(texts, list) else cut(texts)
    return json.dumps(payload).encode()


async def _proxy(upstream: str, port: int, delay, stretch, turn, truncate, ready) -> None:
    loop = asyncio.get_running_loop()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300), connector=aiohttp.TCPConnector(limit=64))

    async def handle(request: web.Request) -> web.Response:
        started = loop.time()
        body = await request.read()
        embeddings = request.path.endswith("/v1/embeddings")
        if truncate.value and embeddings and body:
            body = _truncate_body(body, truncate.value)
        if delay.value:
            await asyncio.sleep(delay.value)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with session.request(request.method, upstream + str(request.rel_url), data=body,
                                   headers=headers) as response:
            data = await response.read()
            passed = {k: v for k, v in response.headers.items()
                      if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"}
            if turn.value < 1 and response.status == 200 and embeddings:
                data = _turn_body(data, turn.value)
            if stretch.value:
                await asyncio.sleep(stretch.value * (loop.time() - started))
            return web.Response(status=response.status, body=data, headers=passed)

    app = web.Application(client_max_size=64 * 1024 ** 2)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ready.set()
    await asyncio.Event().wait()  # until terminated


def _serve_proxy(upstream: str, port: int, delay, stretch, turn, truncate, ready) -> None:
    asyncio.run(_proxy(upstream, port, delay, stretch, turn, truncate, ready))


class _Knob:
    """A number shared with the proxy's process: reading or setting it reads or sets the shared value."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, proxy, owner=None):
        return self if proxy is None else proxy._knobs[self.name].value

    def __set__(self, proxy, value) -> None:
        proxy._knobs[self.name].value = value


class DelayingProxy:
    """The proxy's process, and its knobs (``delay`` seconds, ``stretch`` fraction, ``turn`` cosine,
    ``truncate`` words)."""

    delay, stretch, turn, truncate = _Knob(), _Knob(), _Knob(), _Knob()

    def __init__(self, upstream: str):
        context = multiprocessing.get_context("spawn")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # In _proxy's order: delay, stretch, turn, truncate.
        self._knobs = {"delay": context.Value("d", 0.0), "stretch": context.Value("d", 0.0),
                       "turn": context.Value("d", 1.0), "truncate": context.Value("i", 0)}
        self._ready = context.Event()
        self._process = context.Process(target=_serve_proxy, name="benchmark-proxy", daemon=True,
                                        args=(upstream.rstrip("/"), self.port, *self._knobs.values(), self._ready))

    def __enter__(self) -> "DelayingProxy":
        self._process.start()
        if not self._ready.wait(60):
            raise SystemExit("the benchmark proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.join(30)
