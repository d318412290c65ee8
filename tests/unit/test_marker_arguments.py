"""Marker arguments: checked by name, the judge's split from the measuring ones, every marker registered with its
signature."""

import pytest

from pytest_embedeval.measure import markers


def test_marker_arguments_are_checked_by_name():
    with pytest.raises(TypeError, match=r"@pytest.mark.embed_latency: .*'batchsize'.*accepted arguments: batch_size, tokens"):
        markers.bind("embed_latency", (), {"batchsize": 2})
    assert markers.bind("embed_throughput", (), {"sweep": True}).arguments["sweep"] is True


def test_the_judges_arguments_are_split_from_the_measuring_ones():
    measuring, judging = markers.arguments("embed_latency", (), {"batch_size": 2, "tolerance": "10%", "paired_tolerance": "3%"})
    assert measuring == {"batch_size": 2} and judging == {"tolerance": "10%", "paired_tolerance": "3%"}
    with pytest.raises(TypeError, match="accepted arguments: task, dimensions, batch_size, concurrency, tolerance$"):
        markers.bind("embed_accuracy", (), {"paired_tolerance": 1})  # its paired scores have a built-in tolerance


def test_every_marker_is_registered_with_its_signature(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines([
        "@pytest.mark.embed_latency(batch_size=1, tokens=128, requests=200, warmup=20, tolerance=None, "
        "paired_tolerance=None): Request latency*",
        "@pytest.mark.embed_throughput(*sweep=False*",
        "@pytest.mark.embed_memory(*",
    ])
