"""The background writer: whole-document rewrites, mirror first, backoff, bounded close."""

from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path

import pytest

from sagetrack.container.writer import RecordWriter, TrackingWarning
from sagetrack.errors import StoreAccessDenied, StoreError
from sagetrack.store.backends import LocalBackend


class FlakyBackend(LocalBackend):
    """A real local store that fails the first ``fail`` writes, or hangs while ``hang``."""

    def __init__(self, root: Path, *, fail: int = 0, error: type[Exception] = StoreError,
                 hang: threading.Event | None = None) -> None:
        super().__init__(root)
        self.fail = fail
        self.error = error
        self.hang = hang
        self.calls = 0

    def put(self, key: str, data: bytes) -> None:
        self.calls += 1
        if self.hang is not None:
            self.hang.wait(30)
        if self.fail > 0:
            self.fail -= 1
            raise self.error("injected failure")
        super().put(key, data)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_series_rewritten_whole_and_json_replaced(tmp_path):
    w = RecordWriter(LocalBackend(tmp_path / "s"), "e/r", mirror=LocalBackend(tmp_path / "m"),
                     min_interval=0)
    for i in range(5):
        w.append("metrics.jsonl", {"epoch": i})
    w.set("status.json", {"status": "running"})
    w.set("status.json", {"status": "completed"})
    assert w.close(5)
    for root in ("s", "m"):
        assert [r["epoch"] for r in rows(tmp_path / root / "e/r/metrics.jsonl")] == list(range(5))
        assert json.loads((tmp_path / root / "e/r/status.json").read_text()) == {
            "status": "completed"}


def test_transient_failures_retry_and_every_row_lands_once(tmp_path):
    store = FlakyBackend(tmp_path / "s", fail=3)
    w = RecordWriter(store, "e/r", mirror=LocalBackend(tmp_path / "m"), min_interval=0,
                     max_backoff=0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(20):
            w.append("metrics.jsonl", {"epoch": i})
            time.sleep(0.01)
        assert w.close(10)
    assert [r["epoch"] for r in rows(tmp_path / "s/e/r/metrics.jsonl")] == list(range(20))
    assert w.store_errors == 3
    assert sum(issubclass(c.category, TrackingWarning) for c in caught) == 1


def test_access_denied_stops_uploads_and_keeps_the_mirror(tmp_path):
    store = FlakyBackend(tmp_path / "s", fail=10**6, error=StoreAccessDenied)
    w = RecordWriter(store, "e/r", mirror=LocalBackend(tmp_path / "m"), min_interval=0)
    with pytest.warns(TrackingWarning, match="stopped writing to its store"):
        for i in range(10):
            w.append("metrics.jsonl", {"epoch": i})
            time.sleep(0.005)
        assert not w.close(5)
    assert store.calls == 1
    assert [r["epoch"] for r in rows(tmp_path / "m/e/r/metrics.jsonl")] == list(range(10))


def test_hanging_store_never_blocks_append_or_exit(tmp_path):
    hang = threading.Event()
    w = RecordWriter(FlakyBackend(tmp_path / "s", hang=hang), "e/r",
                     mirror=LocalBackend(tmp_path / "m"), min_interval=0)
    try:
        w.append("metrics.jsonl", {"epoch": 0})
        time.sleep(0.1)  # the writer thread is now stuck in put()
        start = time.perf_counter()
        for i in range(1, 1000):
            w.append("metrics.jsonl", {"epoch": i})
        assert time.perf_counter() - start < 5.0  # the store hangs for 30 s
        start = time.perf_counter()
        assert not w.close(0.5)
        assert time.perf_counter() - start < 5.0
        # the local copy has everything even though the store hangs
        assert len(rows(tmp_path / "m/e/r/metrics.jsonl")) == 1000
    finally:
        hang.set()


def test_retries_back_off_exponentially(tmp_path):
    class Timed(FlakyBackend):
        times: list[float] = []

        def put(self, key: str, data: bytes) -> None:
            self.times.append(time.monotonic())
            super().put(key, data)

    store = Timed(tmp_path / "s", fail=3)
    w = RecordWriter(store, "e/r", min_interval=0, max_backoff=30)
    with pytest.warns(TrackingWarning):
        w.append("metrics.jsonl", {"epoch": 1})
        deadline = time.monotonic() + 10
        while w.pending and time.monotonic() < deadline:
            time.sleep(0.05)
    assert w.close(1)
    gaps = [b - a for a, b in zip(store.times, store.times[1:], strict=False)]
    assert len(gaps) == 3
    # delays 0.25 s * 2^n, jittered by 0.5-1.0: [0.25, 0.5], [0.5, 1], [1, 2]
    assert gaps[0] >= 0.12 and gaps[2] > gaps[0] and gaps[2] >= 0.9
