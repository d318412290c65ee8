"""Where the reference model runs: a 4B model on the CPU beside its server, with shorter probes; a small one on a GPU
with room; and one that fits nowhere says so."""

import pytest

from pytest_embedeval.measure.reference import LONGEST_PROBE_TOKENS, place_reference


def test_a_4b_model_is_referenced_on_the_cpu_beside_its_server_with_shorter_probes():
    gib = 2**30
    beside_4b_server = place_reference(4_021_774_336, {0: 9 * gib}, 200 * gib)  # SGLang keeps ~88% of an 80 GB GPU
    assert beside_4b_server.device == "cpu" and beside_4b_server.longest_probe_tokens < LONGEST_PROBE_TOKENS
    beside_bge_server = place_reference(326_000_000, {0: 9 * gib, 1: 70 * gib}, 200 * gib)
    assert (beside_bge_server.device, beside_bge_server.longest_probe_tokens) == ("cuda:1", LONGEST_PROBE_TOKENS)
    assert place_reference(326_000_000, {}, 200 * gib).longest_probe_tokens == LONGEST_PROBE_TOKENS


def test_a_reference_that_fits_nowhere_says_so():
    from pytest_embedeval.measure.reference import ReferenceUnavailable

    with pytest.raises(ReferenceUnavailable, match=r"GPUs have at most 9.0 GiB free, and the host has 8.0 GiB"):
        place_reference(4_021_774_336, {0: 9 * 2**30}, 8 * 2**30)
