"""Background writer: training threads hand over records, one thread stores them.

The writer keeps each record of a run in memory as a *document* (a JSON object, or a
JSONL series of rows) and rewrites whole documents: a series object in the store always
holds every row so far, so a retried upload can neither lose nor duplicate a row.

* ``set``/``append`` only take a lock and flag the document dirty (microseconds).
* The writer thread writes dirty documents to the local mirror first (nothing is lost
  if the store is down), then to the store, coalescing bursts (``min_interval``).
* Transient store errors back off exponentially (capped); permanent ones (access
  denied, no such bucket) stop uploads with one warning; the mirror keeps everything.
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

from ..errors import StoreAccessDenied
from ..store.backends import Backend
from ..store.layout import dumps, dumps_row

__all__ = ["RecordWriter", "TrackingWarning"]

log = logging.getLogger("sagetrack")


class TrackingWarning(UserWarning):
    """Tracking degraded (store unavailable, internal error); training is unaffected."""


@dataclass
class _Doc:
    obj: Any = None                      # JSON document, or None for a series
    rows: list[Any] | None = None        # series rows (dicts), append-only
    lines: list[str] = field(default_factory=list)  # serialised rows, cached
    version: int = 0                     # bumped on every change
    mirrored: int = 0                    # version last written to the mirror
    stored: int = 0                      # version last written to the store


class RecordWriter:
    """Asynchronously persist one run's documents to a store and a local mirror."""

    def __init__(self, store: Backend | None, prefix: str, *, mirror: Backend | None = None,
                 min_interval: float = 0.5, max_backoff: float = 30.0,
                 start: bool = True) -> None:
        self.store = store
        self.prefix = prefix
        self.mirror = mirror
        self.min_interval = min_interval
        self.max_backoff = max_backoff
        self._docs: dict[str, _Doc] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._store_disabled = store is None
        self._failures = 0
        self._next_try = 0.0
        self._warned: set[str] = set()
        self.store_errors = 0
        self.uploads = 0
        self._thread = threading.Thread(target=self._run, name="sagetrack-writer", daemon=True)
        if start:
            self._thread.start()

    # -- called from training threads -------------------------------------------------
    def set(self, name: str, obj: Any, *, urgent: bool = True) -> None:
        """Replace the document ``name`` (a JSON-ready object, or bytes written as-is)."""
        with self._lock:
            doc = self._docs.setdefault(name, _Doc())
            doc.obj = obj
            doc.version += 1
        if urgent:
            self._wake.set()

    def append(self, name: str, row: Any, *, urgent: bool = True) -> None:
        """Append a row to the JSONL series ``name``."""
        with self._lock:
            doc = self._docs.setdefault(name, _Doc(rows=[]))
            assert doc.rows is not None
            doc.rows.append(row)
            doc.version += 1
        if urgent:
            self._wake.set()

    def rows(self, name: str) -> list[Any]:
        """A copy of the rows of series ``name`` (for resume and tests)."""
        with self._lock:
            doc = self._docs.get(name)
            return list(doc.rows or []) if doc else []

    def seed(self, name: str, rows: list[Any]) -> None:
        """Load rows already stored (a restarted job) without marking them dirty."""
        with self._lock:
            doc = self._docs.setdefault(name, _Doc(rows=[]))
            doc.rows = list(rows) + (doc.rows or [])
            doc.lines = []

    @property
    def pending(self) -> int:
        """Documents not yet in the store (in the mirror when there is no store)."""
        attr = "mirrored" if self.store is None else "stored"
        with self._lock:
            return sum(1 for d in self._docs.values() if getattr(d, attr) != d.version)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush within ``timeout`` seconds; True when everything reached the store."""
        self._closing = True
        self._next_try = 0.0
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive() or not self._thread.ident:
            # never started (tests) or still blocked on a hanging store: one direct mirror pass
            self._flush(store=False)
        return self.pending == 0

    # -- writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            closing = self._closing
            try:
                self._flush(store=True)
            except Exception as exc:  # never let the thread die
                self._warn_once("internal", f"sagetrack writer error: {exc!r}")
            if closing:
                return
            if not self._closing:
                time.sleep(self.min_interval)

    def _snapshot(self, attr: str) -> list[tuple[str, int, bytes]]:
        out = []
        with self._lock:
            items = [(n, d, d.version, d.obj, list(d.rows) if d.rows is not None else None)
                     for n, d in self._docs.items() if getattr(d, attr) != d.version]
        for name, doc, version, obj, rows in items:
            if rows is None:
                data = obj if isinstance(obj, bytes) else dumps(obj)
            else:
                # serialise only rows not yet serialised
                for row in rows[len(doc.lines):]:
                    doc.lines.append(dumps_row(row))
                data = "".join(doc.lines[: len(rows)]).encode()
            out.append((name, version, data))
        return out

    def _flush(self, *, store: bool) -> None:
        if self.mirror is not None:
            for name, version, data in self._snapshot("mirrored"):
                try:
                    self.mirror.put(f"{self.prefix}/{name}", data)
                    with self._lock:
                        self._docs[name].mirrored = max(self._docs[name].mirrored, version)
                except Exception as exc:
                    self._warn_once("mirror", f"sagetrack could not write its local copy: {exc}")
        if not store or self._store_disabled or self.store is None:
            return
        if time.monotonic() < self._next_try:
            return
        for name, version, data in self._snapshot("stored"):
            try:
                self.store.put(f"{self.prefix}/{name}", data)
            except StoreAccessDenied as exc:
                self._store_disabled = True
                self.store_errors += 1
                where = f" A local copy is kept under {self.mirror.uri}." if self.mirror else ""
                self._warn_once("denied", f"sagetrack stopped uploading to {self.store.uri}: "
                                f"{exc}.{where} Training continues.")
                return
            except Exception as exc:
                self.store_errors += 1
                self._failures += 1
                delay = min(self.max_backoff, 0.5 * 2 ** min(self._failures, 16))
                self._next_try = time.monotonic() + delay * (0.5 + random.random() / 2)
                self._warn_once("transient", f"sagetrack store unavailable ({exc}); retrying "
                                "with backoff. Training continues.")
                # come back when the backoff expires even if nothing new is logged
                timer = threading.Timer(delay, self._wake.set)
                timer.daemon = True
                timer.start()
                return
            self.uploads += 1
            self._failures = 0
            with self._lock:
                self._docs[name].stored = max(self._docs[name].stored, version)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind in self._warned:
            log.debug(message)
            return
        self._warned.add(kind)
        log.warning(message)
        warnings.warn(message, TrackingWarning, stacklevel=2)
