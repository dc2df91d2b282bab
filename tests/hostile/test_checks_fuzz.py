"""Bounded fuzz of the C-STORE data set checks: any bytes get an answer (None or a Problem), never a crash,
and memory never follows a length the bytes claim."""

from __future__ import annotations

import tracemalloc
import warnings
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicom_node.store.checks import Problem, Refused, dataset_problem, inflate, part10_dataset
from tests.hostile.corpus import DEFLATED, ELE, ILE, JPEG, encode, encapsulated, image, nested_sequences

pytestmark = pytest.mark.filterwarnings("ignore:.*(exceeds the maximum length|Invalid value for VR).*:UserWarning")
SYNTAXES = [ELE, ILE, JPEG, DEFLATED, "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5", "1.2.3.4"]
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    SEEDS = [encode(image()), encode(image(), implicit=True), encapsulated(image(), [b"\xff\xd8 jpeg \xff\xd9"]), nested_sequences(5) + encode(image())[:200]]


def _checked(data: bytes, syntax: str) -> Problem | None:
    """dataset_problem under tracemalloc: whatever the bytes claim, it allocates little beyond a copy of them."""
    tracemalloc.start()
    try:
        problem = dataset_problem(data, syntax)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(data) + (256 << 10), f"{peak} bytes allocated for {len(data)} bytes of input"
    assert problem is None or (problem.status in (0xA900, 0xC210) and problem.comment and "\\" not in problem.comment)  # LO: no backslash
    return problem


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from(SYNTAXES))
def test_arbitrary_bytes_get_an_answer(data: bytes, syntax: str) -> None:
    _checked(data, syntax)


@FUZZ
@given(st.sampled_from(SEEDS), st.integers(0, 2000), st.binary(min_size=1, max_size=8), st.integers(0, 3000), st.sampled_from(SYNTAXES))
def test_mutated_data_sets_get_an_answer(seed: bytes, at: int, patch: bytes, cut: int, syntax: str) -> None:
    at = at % len(seed)
    mutated = (seed[:at] + patch + seed[at + len(patch) :])[: max(cut, 1)]
    _checked(mutated, syntax)


@FUZZ
@given(st.binary(max_size=2048))
def test_part10_offset_stays_within_the_bytes(data: bytes) -> None:
    body = part10_dataset(b"\0" * 128 + b"DICM" + data)
    assert len(body) <= len(data)


@FUZZ
@given(st.binary(max_size=4096), st.integers(1, 1 << 16))
def test_inflate_never_exceeds_its_cap(data: bytes, cap: int) -> None:
    stream = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    candidates = [data, stream.compress(data * 64) + stream.flush()]
    for raw in candidates:
        tracemalloc.start()
        try:
            try:
                out = inflate(raw, cap)
                assert len(out) <= cap
            except Refused as refused:
                assert refused.problem.status in (0xA700, 0xC210)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 3 * cap + 2 * len(raw) + (1 << 20) + (64 << 10)
