"""The framework-agnostic recorder: what a training process reports about its run.

Keras (``container/keras.py``), custom loops (:func:`log_metrics`) and the output
scanner all go through one :class:`Recorder`, which turns events into records and hands
them to the background :class:`~sagetrack.container.writer.RecordWriter`. Every public
method is exception-safe and returns in microseconds.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from .._redact import redact_text
from ..store.layout import BATCH_CHUNK_ROWS, FORMAT, RUN_FILES, batch_file, now_iso
from ..store.schema import RUNNING, host_file
from .config import JobConfig
from .safety import safe
from .writer import RecordWriter

__all__ = ["Recorder", "active_recorder", "log_metrics", "set_active_recorder"]

log = logging.getLogger("sagetrack")
METRIC_LINE_PREFIX = "#sagetrack"
_ACTIVE: Recorder | None = None


def active_recorder() -> Recorder | None:
    """The recorder of this process's tracked run, if any."""
    return _ACTIVE


def set_active_recorder(recorder: Recorder | None) -> None:
    """Install (or clear) the process-wide recorder."""
    global _ACTIVE
    _ACTIVE = recorder


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f


def _clean(values: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        f = _number(value)
        if f is not None:
            out[str(key)] = f
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _fmt(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value).lower()


class Recorder:
    """Records one run from one process. Only the chief records metrics and status."""

    def __init__(self, config: JobConfig, writer: RecordWriter, *,
                 print_metrics: bool = True) -> None:
        self.config = config
        self.writer = writer
        self.print_metrics = print_metrics
        self.attempt = 1
        self._batch_rows: dict[int, int] = {}  # epoch -> batch rows recorded
        self.status: dict[str, Any] = {
            "format": FORMAT,
            "run_id": config.run_id,
            "experiment": config.experiment,
            "status": RUNNING,
            "started": now_iso(),
            "updated": None,
            "ended": None,
            "attempt": 1,
            "last_epoch": None,
            "metrics": {},
            "failure": None,
        }
        # steps.jsonl: the next row's seq, the next step of a value recorded without one,
        # and the (output line, step) of the last output line a value was matched on
        self._seq = 0
        self._next_step = 0
        self._line: tuple[int, int] | None = None
        self._steps_lock = threading.Lock()
        self._epoch_seen: set[tuple[int, int]] = set()  # (fit, epoch) in this attempt
        self._finished = False
        self.fits = 0

    # -- lifecycle -----------------------------------------------------------------------
    @safe
    def start(self, environment: Mapping[str, Any] | None = None) -> None:
        """Mark the run running; record this host's (and, on the chief, the run's) env."""
        if environment is not None:
            self.writer.set(host_file(self.config.host), dict(environment), urgent=False)
            if self.config.chief:
                self.writer.set(RUN_FILES["environment"], dict(environment), urgent=False)
        if self.config.chief:
            self._set_status()

    @safe
    def resume_from(self, attempt: int, status: Mapping[str, Any],
                    series: Mapping[str, list[dict[str, Any]]]) -> None:
        """Continue a run recorded by an earlier attempt of the same job (spot restart).

        Earlier rows are kept in front of this attempt's; readers keep the latest row
        of each epoch, so the metrics read back as one continuous series.
        """
        self.attempt = attempt
        self.status.update(attempt=attempt,
                           started=status.get("started") or self.status["started"],
                           metrics=dict(status.get("metrics") or {}),
                           last_epoch=status.get("last_epoch"),
                           restarts=[*status.get("restarts", []), now_iso()])
        for name, rows in series.items():
            if rows:
                self.writer.seed(name, rows)
        steps = [r for r in series.get(RUN_FILES["steps"], []) if isinstance(r, dict)]
        with self._steps_lock:  # number on after the earlier attempts' rows
            self._seq = max([len(steps)] + [_int(r.get("seq")) + 1 for r in steps])
            self._next_step = max([0] + [_int(r.get("step")) + 1 for r in steps])

    @safe
    def begin_fit(self, info: Mapping[str, Any]) -> int:
        """Note the start of one ``fit`` call (epochs, steps, parameter count...)."""
        index = self.fits
        self.fits += 1
        if self.config.chief:
            fits = self.status.setdefault("fits", [])
            fits.append({"index": index, "started": now_iso(), **dict(info)})
            if info.get("params") is not None:
                self.status["model_params"] = info["params"]
            self._set_status()
        return index

    # -- metrics -------------------------------------------------------------------------
    @safe
    def log_epoch(self, epoch: int, values: Mapping[str, Any], *, duration_s: float | None = None,
                  fit: int = 0, learning_rate: float | None = None) -> None:
        """Record one finished epoch (``epoch`` counts from 1)."""
        if not self.config.chief or (fit, epoch) in self._epoch_seen:
            return
        self._epoch_seen.add((fit, epoch))
        metrics = _clean(values)
        if learning_rate is not None and "learning_rate" not in metrics and "lr" not in metrics:
            metrics["learning_rate"] = float(learning_rate)
        row = {"epoch": epoch, "time": now_iso(), "duration_s": duration_s,
               "metrics": metrics, "fit": fit, "attempt": self.attempt}
        if self.print_metrics and metrics:
            # print before waking the writer threads: the flush would otherwise wait for
            # the GIL they just took
            body = " ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
            sys.stdout.write(redact_text(f"{METRIC_LINE_PREFIX} epoch={epoch} {body}\n"))
            sys.stdout.flush()
        self.writer.append(RUN_FILES["metrics"], row, urgent=False)
        self.status["last_epoch"] = epoch
        self.status["metrics"].update(metrics)
        self._set_status()

    @safe
    def log_batch(self, epoch: int, batch: int, step: int, values: Mapping[str, Any]) -> None:
        """Record a training batch (every N batches when asked)."""
        if not self.config.chief:
            return
        row = {"epoch": epoch, "batch": batch, "step": step, "time": time.time(),
               "metrics": _clean(values), "attempt": self.attempt}
        count = self._batch_rows.get(epoch, 0)
        self._batch_rows[epoch] = count + 1
        self.writer.append(batch_file(epoch, self.attempt, count // BATCH_CHUNK_ROWS), row,
                           urgent=False)

    @property
    def batches_recorded(self) -> int:
        """Every-N-batches rows handed to the writer so far (this attempt)."""
        return sum(self._batch_rows.values())

    @safe
    def log_metrics(self, step: int | None, values: Mapping[str, Any],
                    source: str = "api", *, line: int | None = None) -> None:
        """Record values at ``step``. Values without a step take the next number of one
        count shared by every metric (the order they were recorded in); the values
        matched on output line ``line`` share one number."""
        if not self.config.chief:
            return
        metrics = _clean(values)
        if not metrics:
            return
        with self._steps_lock:
            if step is None and line is not None and self._line and self._line[0] == line:
                step = self._line[1]
            elif step is None:
                step = self._next_step
                self._next_step += 1
                self._line = None if line is None else (line, step)
            row = {"step": int(step), "seq": self._seq, "time": now_iso(),
                   "metrics": metrics, "source": source, "attempt": self.attempt}
            self._seq += 1
            self.writer.append(RUN_FILES["steps"], row)  # in seq order
        self.status["metrics"].update(metrics)
        self._set_status(urgent=False)

    # -- end -----------------------------------------------------------------------------
    @safe
    def record_model_dir(self, path: str | None = None) -> None:
        """List the files saved under SM_MODEL_DIR with sizes and sha256."""
        if not self.config.chief:
            return
        root = path or self.config.model_dir
        files = []
        for dirpath, _dirs, names in os.walk(root):
            for name in sorted(names):
                full = os.path.join(dirpath, name)
                digest = hashlib.sha256()
                with open(full, "rb") as fh:
                    for chunk in iter(functools.partial(fh.read, 1 << 20), b""):
                        digest.update(chunk)
                files.append({"path": os.path.relpath(full, root).replace(os.sep, "/"),
                              "bytes": os.path.getsize(full), "sha256": digest.hexdigest()})
        self.writer.set(RUN_FILES["model"], {"format": FORMAT, "model_dir": root,
                                              "files": files,
                                              "total_bytes": sum(f["bytes"] for f in files)})

    @safe
    def finish(self, status: str, exc: BaseException | None = None) -> None:
        """Record the final status: completed, failed (with the exception) or stopped."""
        if self._finished:
            return
        self._finished = True
        if not self.config.chief:
            return
        self.status["status"] = status
        self.status["ended"] = now_iso()
        if exc is not None:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.status["failure"] = {
                "type": type(exc).__name__,
                "message": redact_text(str(exc))[:2000],
                "traceback": redact_text(tb)[-4000:],
            }
        self._set_status()

    def close(self, timeout: float = 10.0) -> bool:
        """Flush everything within ``timeout`` seconds."""
        return self.writer.close(timeout)

    def _set_status(self, urgent: bool = True) -> None:
        self.status["updated"] = now_iso()
        # a shallow copy is enough: the writer serialises in its thread, and nested
        # values are replaced rather than mutated, except metrics (copied here)
        doc = dict(self.status)
        doc["metrics"] = dict(self.status["metrics"])
        if "fits" in doc:
            doc["fits"] = list(doc["fits"])
        self.writer.set(RUN_FILES["status"], doc, urgent=urgent)


@safe
def log_metrics(step: int | None = None, **values: float) -> None:
    """Record metric values from a custom training loop.

    ``sagetrack.log_metrics(step=epoch, loss=0.3, accuracy=0.9)`` inside a tracked job
    stores a row in the run's ``steps.jsonl``. Without ``step``, the values take the next
    number of the run's one count of values recorded without a step (output values
    matched by ``metric_definitions`` included), so they keep their order across metrics.
    Outside a tracked job it does nothing.
    """
    recorder = _ACTIVE
    if recorder is None:
        log.debug("sagetrack.log_metrics called outside a tracked job; ignored")
        return
    recorder.log_metrics(step, values)
