"""A key sent over plain http to another machine warns, naming the fix and not the key; https and loopback do not."""

import warnings

import pytest

from pytest_embedeval.serve.remote import InsecureKeyWarning, RemoteServer, warn_if_key_in_clear
from pytest_embedeval.facts.registry import Registry

SECRET = "sk-hostile-7f3a9c"


@pytest.mark.parametrize(
    ("url", "key", "warns"),
    [
        ("http://10.0.0.7:30000", SECRET, True),
        ("http://gpu-box.internal:30000/v1", SECRET, True),
        ("https://10.0.0.7:30000", SECRET, False),
        ("http://127.0.0.1:30000", SECRET, False),
        ("http://localhost:30000", SECRET, False),
        ("http://[::1]:30000", SECRET, False),
        ("http://10.0.0.7:30000", None, False),
    ],
)
def test_a_key_sent_over_plain_http_to_another_machine_warns(url, key, warns):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RemoteServer(url, Registry().resolve("minilm"), api_key=key)
    shown = [w for w in caught if issubclass(w.category, InsecureKeyWarning)]
    assert bool(shown) == warns
    if warns:
        message = str(shown[0].message)
        assert "unencrypted" in message and "https://" in message and SECRET not in message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert warn_if_key_in_clear(url, key) is warns
