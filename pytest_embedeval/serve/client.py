"""The client tests get: the real ``openai`` client, plus an ``embed`` that checks what came back."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from types import SimpleNamespace

import httpcore
import httpx
import numpy as np
import openai

from ..facts.server_access import AnswerTooLarge, answer_limit, redact_url
from ..facts.vector_math import degenerate_rows


class EmbeddingRequestError(RuntimeError):
    """The request got no usable answer: none in time, no connection, or an HTTP error after the retries."""


class BadEmbeddingResponse(EmbeddingRequestError):
    """The server answered, but not with one finite vector per input, in order."""


# The statuses the openai SDK retries (besides timeouts and connection errors): see its _should_retry.
_RETRIED_STATUSES = frozenset({408, 409, 429})


# -- a total deadline per attempt ---------------------------------------------------------------------
# httpx's timeouts bound each network operation: a read that gets one byte every 0.9 s never times out
# under a 1 s timeout (seen: 6 s for one request). The deadline is enforced where every read and write
# happens, in the network backend httpcore calls, each one limited to the time the attempt has left.

_deadline = threading.local()  # per thread: each thread's current attempt; the SDK is synchronous


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired(f"the request's total deadline of {_deadline.total:g} s has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _time_left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_tcp(
            host, port, _time_left(timeout, httpcore.ConnectTimeout), local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_unix_socket(
            path, _time_left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport, with each request (headers and body) bounded by ``total`` seconds in all.

    Expiry raises httpx's own ReadTimeout (or Write/ConnectTimeout), which the openai SDK treats as a
    timeout, retries and reports as it always has. A client with this transport ignores HTTP(S)_PROXY
    (httpx reads the environment's proxies only for its own default transport): the plugin's requests to
    the servers it measures never go through a proxy.
    """

    def __init__(self, total: float, on_answer=None, limit: int | None = None, **kwargs):
        # The openai SDK's own connection limits (DefaultHttpxClient's), which a given transport replaces.
        kwargs.setdefault("limits", httpx.Limits(max_connections=1000, max_keepalive_connections=100))
        super().__init__(**kwargs)
        self.total = total
        self.on_answer = on_answer  # called with the status once an answer's body has been read to its end
        self.limit = limit  # bytes an answer may take, unless the call sets its own (embed: from its batch)
        pool = self._pool  # httpcore.ConnectionPool: connections get their sockets from its backend
        pool._network_backend = _DeadlineBackend(pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # Left set after return: the body is read after this returns, by the caller, in this thread;
        # the next request in this thread sets its own.
        _deadline.at, _deadline.total = time.monotonic() + self.total, self.total
        response = super().handle_request(request)
        limit = getattr(_deadline, "limit", None) or self.limit
        if limit is not None:
            response.stream = _Capped(response.stream, limit)
        if self.on_answer is not None:
            response.stream = _ReadToTheEnd(response.stream, lambda: self.on_answer(response.status_code))
        return response


class _TooLarge(httpx.ReadError):
    """Raised while reading an answer that passed its byte limit (a read error: nothing more is read)."""


class _Capped(httpx.SyncByteStream):
    """An answer's body that stops at ``limit`` bytes: a server sending a gigabyte costs a few hundred KB."""

    def __init__(self, stream, limit: int):
        self._stream, self._limit = stream, limit

    def __iter__(self):
        size = 0
        for chunk in self._stream:
            size += len(chunk)
            if size > self._limit:
                raise _TooLarge(str(AnswerTooLarge(self._limit)))
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _ReadToTheEnd(httpx.SyncByteStream):
    """An answer's body that says when it was read to its end: one cut off by the deadline or a broken
    connection is no answer, though its status line said 200."""

    def __init__(self, stream, done):
        self._stream, self._done = stream, done

    def __iter__(self):
        yield from self._stream
        self._done()

    def close(self) -> None:
        self._stream.close()


class EmbeddingClient(openai.OpenAI):
    """An ``openai.OpenAI`` bound to one server and model.

    ``client.embeddings.create(...)`` works as usual; ``client.embed(texts)`` returns a checked
    ``(len(texts), dimensions)`` float32 array. ``dimensions``: the model's native size, which every
    ``embed`` without ``dimensions=`` must get back.

    ``timeout`` bounds each attempt as a whole (connect, send and every read together: a server that
    trickles its answer a byte at a time is cut off too); the SDK makes up to ``1 + max_retries``
    attempts with a back-off of about 0.5 s, 1 s, ... between them. ``failed_attempts`` counts the
    attempts that got a server error or no answer at all, retried or not, so that a result built on
    retries can be reported as such.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 2, dimensions: int | None = None):
        self.attempts = 0
        self.failed_attempts = 0
        self._count_lock = threading.Lock()
        http_client = openai.DefaultHttpxClient(
            timeout=timeout,
            transport=DeadlineTransport(timeout, on_answer=self._on_answer),
            event_hooks={"request": [self._on_request]},
        )
        super().__init__(base_url=f"{base_url.rstrip('/')}/v1", api_key=api_key or "no-key",
                         timeout=timeout, max_retries=max_retries, http_client=http_client)
        self.model = model
        self.shown_url = redact_url(str(self.base_url))  # as errors print it: no password
        self.dimensions = dimensions
        self.attempt_timeout = timeout

    # -- counting, from httpx's hooks: every attempt the SDK makes passes through them ---------------

    def _on_request(self, request: httpx.Request) -> None:
        with self._count_lock:
            self.attempts += 1
            self.failed_attempts += 1  # until its answer says otherwise: a timeout never gets one

    def _on_answer(self, status: int) -> None:
        """An attempt whose whole body arrived: it failed only if its status says so."""
        if status < 500 and status not in _RETRIED_STATUSES:
            with self._count_lock:
                self.failed_attempts -= 1

    # -- the checked call ---------------------------------------------------------------------------

    def embed(self, texts: Sequence[str] | str, *, dimensions: int | None = None) -> np.ndarray:
        batch = [texts] if isinstance(texts, str) else list(texts)
        extra = {"dimensions": dimensions} if dimensions else {}
        attempts_before = self.attempts
        _deadline.limit = answer_limit(len(batch), dimensions or self.dimensions)
        try:
            # base64 keeps each float32 exactly, NaN and inf included (a JSON float list has no NaN:
            # SGLang's orjson writes null). The raw response lets us read the body ourselves, so that
            # an empty or non-JSON body is named instead of failing somewhere inside the SDK.
            raw = self.embeddings.with_raw_response.create(
                model=self.model, input=batch, encoding_format="base64", **extra)
        except openai.APIStatusError as exc:
            raise EmbeddingRequestError(
                f"{self.shown_url}embeddings answered HTTP {exc.status_code} "
                f"{self._attempts_text(attempts_before)}: {_snippet(exc.response.text)}"
            ) from None
        except openai.APITimeoutError:
            raise EmbeddingRequestError(
                f"no answer from {self.shown_url}embeddings within the {self.attempt_timeout:g} s timeout "
                f"{self._attempts_text(attempts_before)}"
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            if isinstance(cause, _TooLarge):
                raise BadEmbeddingResponse(f"{self.shown_url}embeddings: {cause}") from None
            raise EmbeddingRequestError(
                f"could not reach {self.shown_url}embeddings {self._attempts_text(attempts_before)}: "
                f"{type(cause).__name__ if cause else 'connection error'}: {cause or exc}"
            ) from None
        finally:
            _deadline.limit = None
        try:
            items = items_from_body(raw.http_response)
        except _TooLarge as exc:
            raise BadEmbeddingResponse(f"{self.shown_url}embeddings: {exc}") from None
        vectors = vectors_from(items, len(batch), dimensions or self.dimensions)
        degenerate = degenerate_rows(vectors)
        if degenerate:
            # A zero or constant vector has no direction: every cosine with it is NaN or meaningless,
            # and a score built on it would be a number that says nothing.
            shown = "; ".join(repr(batch[i][:60]) for i in degenerate[:3])
            raise BadEmbeddingResponse(
                f"{len(degenerate)} of {len(batch)} vectors are all zeros or one repeated value, which no model "
                f"returns for real text (inputs {degenerate[:10]}: {shown}): the server is not computing embeddings")
        return vectors

    def _attempts_text(self, attempts_before: int) -> str:
        attempts = self.attempts - attempts_before
        return f"on {'every one of ' if attempts > 1 else ''}{attempts} attempt{'s' if attempts > 1 else ''}" \
               f" ({self.max_retries} retries allowed)"


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def items_from_body(response: httpx.Response) -> list[SimpleNamespace]:
    """The ``data`` items of an embeddings response body, each with ``index`` and ``embedding``."""
    status = response.status_code
    content_type = response.headers.get("content-type", "no Content-Type")
    body = response.content
    if not body.strip():
        raise BadEmbeddingResponse(
            f"the server answered HTTP {status} ({content_type}) with an empty body, "
            "not a JSON list of embeddings")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadEmbeddingResponse(
            f"the server answered HTTP {status} with a body that is not JSON ({content_type}, {len(body)} bytes): "
            f"{_snippet(body.decode(errors='replace'))}") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise BadEmbeddingResponse(
            f"the server answered HTTP {status} with JSON that has no 'data' list of embeddings: "
            f"{_snippet(json.dumps(payload))}")
    items = []
    for position, item in enumerate(data):
        index = item.get("index") if isinstance(item, dict) else None
        embedding = item.get("embedding") if isinstance(item, dict) else None
        if type(index) is not int or not isinstance(embedding, (list, str)):
            raise BadEmbeddingResponse(
                f"item {position} of the response's data is not an embedding with an integer index: "
                f"{_snippet(json.dumps(item))}")
        if isinstance(embedding, str):
            try:
                embedding = np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4").tolist()
            except ValueError:
                raise BadEmbeddingResponse(
                    f"the embedding with index {index} is neither a list of numbers nor base64 float32: "
                    f"{_snippet(embedding)}") from None
        items.append(SimpleNamespace(index=index, embedding=embedding))
    return items


def vectors_from(data: Sequence, expected_count: int, expected_dim: int | None = None) -> np.ndarray:
    """Order the response's vectors by index, refusing anything a correct server would not send."""
    indexes = sorted(item.index for item in data)
    if indexes != list(range(expected_count)):
        problems = []
        if len(indexes) != expected_count:
            problems.append(f"{len(indexes)} vectors for {expected_count} inputs")
        duplicates = sorted(index for index, count in Counter(indexes).items() if count > 1)
        if duplicates:
            problems.append(f"duplicate indexes {duplicates[:10]}")
        outside = sorted({index for index in indexes if not 0 <= index < expected_count})
        if outside:
            problems.append(f"indexes out of range {outside[:10]}")
        raise BadEmbeddingResponse(
            "; ".join(problems or ["wrong indexes"])
            + f": expected one vector per input with indexes 0..{expected_count - 1}, got indexes {indexes[:10]}"
            + ("..." if len(indexes) > 10 else "")
        )
    ordered = sorted(data, key=lambda item: item.index)
    lengths = {len(item.embedding) for item in ordered}
    if len(lengths) != 1:
        raise BadEmbeddingResponse(f"vectors of different lengths in one response: {sorted(lengths)}")
    try:
        vectors = np.asarray([item.embedding for item in ordered], dtype=np.float32)
    except (TypeError, ValueError):
        not_numbers = [i for i, item in enumerate(ordered)
                       if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in item.embedding)]
        raise BadEmbeddingResponse(
            f"something other than numbers (null, text) in the vectors of inputs {not_numbers[:10]}") from None
    if expected_dim and vectors.shape[1] != expected_dim:
        raise BadEmbeddingResponse(f"expected vectors of {expected_dim} dimensions, got {vectors.shape[1]}")
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise BadEmbeddingResponse(f"NaN or inf in the vectors of inputs {bad[:10].tolist()}")
    return vectors
