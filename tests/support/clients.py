"""A double of the embedding client for the accuracy tests of both lanes: what mteb's encoder sends, recorded."""

import threading
import time
import zlib

import numpy as np


class RecordingClient:
    """An EmbeddingClient double: records what it is sent; a text's vector depends on the text only."""

    model = "recording"

    def __init__(self, dimensions=16, delay=0.0):
        self.sent, self.dimensions_asked = [], []
        self.delay, self.in_flight, self.max_in_flight = delay, 0, 0
        self.lock = threading.Lock()

    def embed(self, texts, dimensions=None):
        with self.lock:
            self.sent.extend(texts)
            self.dimensions_asked.append(dimensions)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay * (zlib.crc32(texts[0].encode()) % 5))  # batches finish out of order
        with self.lock:
            self.in_flight -= 1
        vectors = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=16) for t in texts])
        return vectors.astype(np.float32)
