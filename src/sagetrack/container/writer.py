"""Background writer: training threads hand over records, worker threads store them.

The writer keeps each record of a run in memory as a *document* (a JSON object, raw
bytes, or a JSONL series of rows) and rewrites whole documents: a series object in the
store always holds every row so far, so a retried upload can neither lose nor duplicate
a row, and each write replaces the object atomically.

* ``set``/``append`` only take a lock and flag the document dirty (microseconds).
* Each destination (the local mirror under ``SM_OUTPUT_DATA_DIR``, the store) has its
  own thread and progress, so a hanging store never delays the local copy.
* Transient store errors back off exponentially (capped, jittered); permanent ones
  (access denied, no such bucket) stop uploads with one warning; the mirror keeps all.
* ``close(timeout)`` makes a final attempt and returns within ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from .._threads import signals_blocked
from ..errors import StoreAccessDenied, TrackingWarning
from ..store.backends import Backend
from ..store.layout import dumps, dumps_row
from ..store.schema import BATCHES_DIR, HOSTS_DIR

__all__ = ["RecordWriter"]

log = logging.getLogger("sagetrack")


@dataclass
class _Doc:
    obj: Any = None                      # JSON-ready object or bytes; None for a series
    rows: list[Any] | None = None        # series rows, append-only
    lines: list[str] = field(default_factory=list)  # serialised rows, cached
    version: int = 0                     # bumped on every change
    lines_lock: threading.Lock = field(default_factory=threading.Lock)


class _Sink:
    """One destination with its own thread, progress and backoff."""

    def __init__(self, owner: RecordWriter, name: str, backend: Backend, *,
                 min_interval: float, max_backoff: float, skip: tuple[str, ...] = ()) -> None:
        self.owner = owner
        self.skip = skip
        self.name = name
        self.backend = backend
        self.min_interval = min_interval
        self.max_backoff = max_backoff
        self.done: dict[str, int] = {}   # doc name -> version written
        self.wake = threading.Event()
        self.disabled = False
        self.failures = 0
        self.errors = 0
        self.writes = 0
        self.next_try = 0.0
        self.thread = threading.Thread(target=self._run, name=f"sagetrack-{name}", daemon=True)

    def pending(self) -> int:
        with self.owner._lock:
            return sum(1 for n, d in self.owner._docs.items()
                       if self.done.get(n, 0) != d.version and not self._skipped(n))

    def _skipped(self, name: str) -> bool:
        return bool(self.skip) and name.startswith(self.skip)

    def _run(self) -> None:
        # create clients now: at interpreter exit, boto3 can no longer start its pools
        prepare = getattr(self.backend, "prepare", None)
        if prepare is not None:
            try:
                prepare()
            except Exception as exc:
                self.owner._warn_once(f"{self.name}-prepare",
                                      f"sagetrack {self.name} unavailable ({exc}).")
        while True:
            self.wake.wait(timeout=5.0)
            self.wake.clear()
            closing = self.owner._closing
            try:
                self.flush()
            except Exception as exc:  # never let the thread die
                self.owner._warn_once(f"{self.name}-internal",
                                      f"sagetrack writer error ({self.name}): {exc!r}")
            if closing:
                return
            if not self.owner._closing and self.min_interval:
                time.sleep(self.min_interval)

    def flush(self) -> None:
        if self.disabled or time.monotonic() < self.next_try:
            return
        for name, version, data in self.owner._snapshot(self.done, self.skip):
            try:
                self.backend.put(f"{self.owner.prefix}/{name}", data)
            except StoreAccessDenied as exc:
                self.disabled = True
                self.errors += 1
                self.owner._on_denied(self, exc)
                return
            except Exception as exc:
                self.errors += 1
                self.failures += 1
                delay = min(self.max_backoff, 0.25 * 2 ** min(self.failures, 16))
                delay *= 0.5 + random.random() / 2
                self.next_try = time.monotonic() + delay
                self.owner._warn_once(f"{self.name}-transient",
                                      f"sagetrack {self.name} unavailable ({exc}); retrying with "
                                      "backoff. Training continues.")
                timer = threading.Timer(delay, self.wake.set)
                timer.daemon = True
                timer.start()
                return
            self.writes += 1
            self.failures = 0
            with self.owner._lock:
                self.done[name] = max(self.done.get(name, 0), version)


class RecordWriter:
    """Asynchronously persist one run's documents to a store and a local mirror."""

    def __init__(self, store: Backend | None, prefix: str, *, mirror: Backend | None = None,
                 checkpoint: Backend | None = None, min_interval: float = 0.5,
                 max_backoff: float = 30.0, start: bool = True) -> None:
        self.prefix = prefix
        self.store = store
        self.mirror = mirror
        self._docs: dict[str, _Doc] = {}
        # reentrant: a SIGTERM handler records the final status on the main thread, which
        # may be interrupted inside set()/append() while holding this lock
        self._lock = threading.RLock()
        self._closing = False
        self._warned: set[str] = set()
        # the checkpoint copy only needs what a restarted attempt continues from
        self._sinks = [
            _Sink(self, label, backend, min_interval=interval, max_backoff=max_backoff,
                  skip=skip)
            for label, backend, interval, skip in (
                ("local copy", mirror, 0.0, ()),
                ("checkpoint copy", checkpoint, 0.0, (f"{BATCHES_DIR}/", f"{HOSTS_DIR}/")),
                ("store", store, min_interval, ()))
            if backend is not None]
        if start:
            with signals_blocked():
                for sink in self._sinks:
                    sink.thread.start()

    # -- called from training threads -------------------------------------------------
    def set(self, name: str, obj: Any, *, urgent: bool = True) -> None:
        """Replace the document ``name`` (a JSON-ready object, or bytes written as-is)."""
        with self._lock:
            doc = self._docs.setdefault(name, _Doc())
            doc.obj = obj
            doc.version += 1
        if urgent:
            self._wake()

    def append(self, name: str, row: Any, *, urgent: bool = True) -> None:
        """Append a row to the JSONL series ``name``."""
        with self._lock:
            doc = self._docs.setdefault(name, _Doc(rows=[]))
            if doc.rows is None:
                doc.rows = []
            doc.rows.append(row)
            doc.version += 1
        if urgent:
            self._wake()

    def seed(self, name: str, rows: list[Any]) -> None:
        """Put rows recorded by an earlier attempt in front of series ``name``."""
        with self._lock:
            doc = self._docs.setdefault(name, _Doc(rows=[]))
            with doc.lines_lock:
                doc.rows = list(rows) + (doc.rows or [])
                doc.lines = []
            doc.version += 1

    def rows(self, name: str) -> list[Any]:
        """A copy of the rows of series ``name``."""
        with self._lock:
            doc = self._docs.get(name)
            return list(doc.rows or []) if doc else []

    def flush_soon(self) -> None:
        """Ask the worker threads to write what is pending now."""
        self._wake()

    @property
    def pending(self) -> int:
        """Documents not yet written to the store (to the mirror when there is no store)."""
        sink = self._sinks[-1] if self._sinks else None
        return sink.pending() if sink is not None else 0

    @property
    def store_errors(self) -> int:
        return sum(s.errors for s in self._sinks if s.backend is self.store)

    @property
    def uploads(self) -> int:
        return sum(s.writes for s in self._sinks if s.backend is self.store)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush within ``timeout`` seconds; True when everything reached the store."""
        self._closing = True
        deadline = time.monotonic() + timeout
        for sink in self._sinks:
            sink.next_try = 0.0
            sink.wake.set()
        for sink in self._sinks:
            if sink.thread.is_alive():
                sink.thread.join(max(0.0, deadline - time.monotonic()))
            elif not sink.thread.ident and sink.backend is not self.store:
                sink.flush()  # never started (tests): write the local copy directly
        return self.pending == 0

    # -- internals ---------------------------------------------------------------------
    def _wake(self) -> None:
        for sink in self._sinks:
            sink.wake.set()

    def _snapshot(self, done: dict[str, int], skip: tuple[str, ...] = ()
                  ) -> list[tuple[str, int, bytes]]:
        with self._lock:
            items = [(n, d, d.version, d.obj, len(d.rows) if d.rows is not None else None)
                     for n, d in self._docs.items()
                     if done.get(n, 0) != d.version and not (skip and n.startswith(skip))]
        out = []
        for name, doc, version, obj, count in items:
            if count is None:
                data = obj if isinstance(obj, bytes) else dumps(obj)
            else:
                with doc.lines_lock:
                    assert doc.rows is not None
                    for row in doc.rows[len(doc.lines):count]:
                        doc.lines.append(dumps_row(row))
                    data = "".join(doc.lines[:count]).encode()
            out.append((name, version, data))
        return out

    def _on_denied(self, sink: _Sink, exc: Exception) -> None:
        where = (f" A local copy is kept under {self.mirror.uri}/{self.prefix}."
                 if self.mirror is not None and sink.backend is not self.mirror else "")
        self._warn_once(f"{sink.name}-denied", f"sagetrack stopped writing to its {sink.name} "
                        f"({sink.backend.uri}): {exc}.{where} Training continues.")

    def _warn_once(self, kind: str, message: str) -> None:
        if kind in self._warned:
            log.debug(message)
            return
        self._warned.add(kind)
        log.warning(message)
        warnings.warn(message, TrackingWarning, stacklevel=2)
