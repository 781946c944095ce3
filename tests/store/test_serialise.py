"""Records serialise any value in bounded time and memory, calling no unknown method."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from sagetrack.store.layout import MAX_DEPTH, dumps, dumps_row


def test_mocks_are_written_as_text_without_calling_them():
    session = mock.MagicMock()
    started = time.monotonic()
    tracemalloc.start()
    data = dumps({"session": session, "client": mock.Mock(), "nested": [mock.Mock()] * 3})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.monotonic() - started < 1.0  # a bound, not a benchmark: it used to take 7 s
    assert peak < 10 * 1024 * 1024
    doc = json.loads(data)
    assert doc["session"].startswith("<MagicMock") and doc["client"].startswith("<Mock")
    # nothing but str() was called on it (no .item(), .tolist(), ...)
    assert [c for c in session.mock_calls if c[0] != "__str__"] == []


@pytest.mark.parametrize(("value", "expected"), [
    (np.int64(3), 3), (np.float32(0.5), 0.5), (np.bool_(True), True),
    (np.arange(3), [0, 1, 2]), ({3, 1, 2}, [1, 2, 3]), ((1, "a"), [1, "a"]),
    (Path("/tmp/x"), "/tmp/x"), (float("nan"), None), ({1: "a"}, {"1": "a"}),
])
def test_natural_json_forms(value, expected):
    got = json.loads(dumps_row({"v": value}))["v"]
    if expected is None:
        assert got != got  # NaN survives as NaN
    else:
        assert got == expected


def test_nesting_and_size_are_bounded():
    deep: list = []
    node = deep
    for _ in range(MAX_DEPTH * 3):
        node.append([])
        node = node[0]
    text = json.dumps(json.loads(dumps(deep)))
    assert "nested too deep" in text and text.count("[") <= MAX_DEPTH + 2

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert json.loads(dumps({"x": Hostile()}))["x"] == "<Hostile>"
