"""The background writer: whole-document rewrites, mirror first, backoff, bounded close."""

from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path

import pytest

from sagetrack.container.writer import RecordWriter
from sagetrack.errors import StoreAccessDenied, StoreError, TrackingWarning
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


class CountingBackend(LocalBackend):
    """A real local store that counts the bytes written per key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written: dict[str, int] = {}

    def put(self, key: str, data: bytes) -> None:
        self.written[key] = self.written.get(key, 0) + len(data)
        super().put(key, data)


def test_long_epochs_of_batch_rows_are_chunked_so_a_flush_rewrites_one_chunk(tmp_path):
    from sagetrack.store.layout import BATCH_CHUNK_ROWS
    from sagetrack.store.reader import Store

    from .helpers import make_recorder

    store = CountingBackend(tmp_path)
    rec = make_recorder(tmp_path, track_batches=1, store=store)
    rec.start()
    total = 2 * BATCH_CHUNK_ROWS + 500
    for step in range(1, total + 1):
        rec.log_batch(1, step - 1, step, {"loss": 1.0 / step})
    rec.writer.flush_soon()
    deadline = time.monotonic() + 30
    while rec.writer.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.writer.pending == 0
    chunk_keys = sorted(k for k in store.written if "/batches/" in k)
    assert [k.rsplit("/", 1)[1] for k in chunk_keys] == [
        "000001-001-00000.jsonl", "000001-001-00001.jsonl", "000001-001-00002.jsonl"]
    # one more row: only the last chunk is written again, not the whole epoch
    before = dict(store.written)
    rec.log_batch(1, total, total + 1, {"loss": 0.0})
    assert rec.writer.close(10)
    grown = [k.rsplit("/", 1)[1] for k in store.written
             if "/batches/" in k and store.written[k] != before.get(k, 0)]
    assert grown == ["000001-001-00002.jsonl"]
    batches = Store(str(tmp_path)).run("job-1").batches
    assert list(batches.index) == list(range(1, total + 2))
    assert batches["loss"].iloc[-2] == pytest.approx(1.0 / total)


def test_a_restarted_attempt_never_overwrites_batch_rows_and_its_rows_win(tmp_path):
    from sagetrack.store.reader import Store

    from .helpers import make_recorder

    first = make_recorder(tmp_path, track_batches=1)
    first.start()
    for batch in range(1500):  # epoch 1, two chunks, then the job is stopped
        first.log_batch(1, batch, batch + 1, {"loss": 1.0})
    assert first.writer.close(10)
    again = make_recorder(tmp_path, track_batches=1)
    again.attempt = 2
    for batch in range(500):  # the restart redoes the start of epoch 1, then dies too
        again.log_batch(1, batch, batch + 1, {"loss": 2.0})
    assert again.writer.close(10)
    batches = Store(str(tmp_path)).run("job-1").batches
    assert list(batches.index) == list(range(1, 1501))  # each step once, in order
    assert (batches["loss"].iloc[:500] == 2.0).all() and (batches["loss"].iloc[500:] == 1.0).all()
