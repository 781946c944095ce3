"""The run index: compacted summaries of settled runs, so listing 1,000s of runs stays fast.

Listing runs directly costs three GETs per run (``run.json``, ``status.json``,
``job.json``) and comparing metrics one more (``metrics.jsonl``). The index turns that into
one LIST (run ids, 1,000 per page) and one GET per experiment::

    <store>/_index/<experiment>/runs.jsonl.gz     header line, then one line per settled run:
                                                  its run/status/job documents, best metrics
    <store>/_index/<experiment>/metrics.jsonl.gz  header line, then one line per settled run:
                                                  its epoch metrics, column by column

A run is *settled* when nothing will change its records any more: the client recorded
the job's end (``job.json``), or its final status is older than :data:`SETTLE_SECONDS`.
Only settled runs are indexed; new, unsettled and unindexed runs are always read
directly, and runs gone from the store are dropped. The index is therefore a cache: when
it is missing, corrupt or unreadable, listing is slower, never wrong. Any client may
refresh it (``Store.refresh_index()``, ``sagetrack index``, ``sagetrack runs``);
concurrent refreshes are harmless (each writes a complete index; the last one wins).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from .._threads import map_io
from ..errors import StoreError
from .layout import dumps_row, now_iso, parse_time, validate_experiment
from .parse import parse_document, parse_rows
from .schema import (
    INDEX_FORMAT,
    INDEX_METRICS_FILE,
    INDEX_PREFIX,
    INDEX_RUNS_FILE,
    JOB_TERMINAL,
    TERMINAL,
    EpochRow,
    IndexHeader,
    MetricsIndexLine,
    RunsIndexLine,
)

if TYPE_CHECKING:
    from .backends import Backend
    from .reader import R, Run, StoreBase

__all__ = [
    "INDEX_FORMAT",
    "INDEX_PREFIX",
    "SETTLE_SECONDS",
    "load_metrics",
    "load_runs",
    "metrics_key",
    "refresh",
    "runs_key",
    "settled",
]

log = logging.getLogger("sagetrack")

T = TypeVar("T")

#: a final status older than this is settled even without the client's ``job.json``
SETTLE_SECONDS = 3600.0
#: below this many runs of one experiment, direct GETs beat fetching the metrics index
METRICS_INDEX_MIN_RUNS = 20


def runs_key(experiment: str) -> str:
    """Key of an experiment's run summaries."""
    return f"{INDEX_PREFIX}/{validate_experiment(experiment)}/{INDEX_RUNS_FILE}"


def metrics_key(experiment: str) -> str:
    """Key of an experiment's per-epoch metrics."""
    return f"{INDEX_PREFIX}/{validate_experiment(experiment)}/{INDEX_METRICS_FILE}"


def settled(run: Run, now: datetime | None = None) -> bool:
    """Whether ``run``'s records are final (safe to serve from the index)."""
    if run.problems:
        return False
    if run.job.get("status") in JOB_TERMINAL:
        return True
    if run.status_record.get("status") in TERMINAL:
        ended = parse_time(run.status_record.get("ended"))
        now = now or datetime.now(timezone.utc)
        return ended is not None and (now - ended).total_seconds() >= SETTLE_SECONDS
    return False


def _read(backend: Backend, key: str, shape: type[T]) -> list[T]:
    """Entries of an index object; [] when it is missing, unreadable or not an index."""
    try:
        data = gzip.decompress(backend.get(key))
    except (StoreError, OSError, EOFError, zlib.error) as exc:
        log.debug("sagetrack: no usable index %s: %s", key, exc)
        return []
    head, _sep, rest = data.partition(b"\n")
    if parse_document(head, key, IndexHeader, []).get("format") != INDEX_FORMAT:
        return []
    entries: list[T] = []
    for line in rest.split(b"\n"):  # an entry that does not check cleanly is not used:
        problems: list[str] = []     # its run is read from its records instead
        rows = parse_rows(line, key, shape, problems)
        if rows and not problems:
            entries.extend(rows)
    return entries


def _write(backend: Backend, key: str, experiment: str,
           entries: list[RunsIndexLine] | list[MetricsIndexLine]) -> None:
    header = IndexHeader(format=INDEX_FORMAT, experiment=experiment, updated=now_iso(),
                         runs=len(entries))
    data = "".join(dumps_row(row) for row in [header, *entries]).encode()
    backend.put(key, gzip.compress(data, compresslevel=6))


def warm(runs: Sequence[R], empty: dict[str, Any]) -> list[R]:
    """``runs`` with their cached properties ``empty`` (name -> its empty kind when unreadable)
    loaded; a store error becomes a problem of its run. From S3 16 runs at a time; from a
    folder in turn, or on 4 threads where reading waits (a network mount)."""
    def load(run: R) -> R:
        for attr, value in empty.items():
            try:
                getattr(run, attr)
            except StoreError as exc:
                run.problems.append(f"{attr}: {exc}")
                run.__dict__[attr] = type(value)()  # a fresh empty one per run
        return run

    s3 = bool(runs) and runs[0].backend.uri.startswith("s3://")
    return map_io(load, runs, workers=16 if s3 else 4, waits=s3)


def _experiment(store: StoreBase[R], experiment: str, *, update: bool, strict: bool,
                rebuild: bool = False) -> tuple[list[R], dict[str, int]]:
    backend = store.backend
    ids = [rid for _exp, rid in store.run_ids(experiment)]
    indexed = {} if rebuild else {
        e["id"]: e for e in _read(backend, runs_key(experiment), RunsIndexLine)}
    present = set(ids)
    runs = [store.new_run(experiment, rid)._prime(indexed[rid]) for rid in ids
            if rid in indexed]
    fresh = store.load([(experiment, rid) for rid in ids if rid not in indexed])
    stats = {"runs": len(ids), "from_index": len(runs), "read": len(fresh)}
    runs.extend(fresh)
    now = datetime.now(timezone.utc)
    newly = [run for run in fresh if settled(run, now)]
    dropped = set(indexed) - present
    stats["indexed"] = len(indexed) - len(dropped) + len(newly)
    if (update or strict) and (newly or dropped or rebuild):
        try:
            _update(backend, experiment, [indexed[rid] for rid in ids if rid in indexed], newly,
                    dropped)
        except StoreError as exc:
            if strict:
                raise
            log.debug("sagetrack: could not update the run index: %s", exc)
    return runs, stats


def _update(backend: Backend, experiment: str, kept: list[RunsIndexLine],
            newly: Sequence[Run], dropped: set[str]) -> None:
    warm(newly, {"epochs": [], "best_metrics": {}})
    newly = [run for run in newly if not run.problems]
    metrics: dict[str, MetricsIndexLine] = {
        e["id"]: e for e in _read(backend, metrics_key(experiment), MetricsIndexLine)
        if e["id"] not in dropped} if kept else {}
    for run in newly:
        metrics[run.id] = _columns(run.id, run.epochs)
    entries = kept + [RunsIndexLine(id=run.id, record=run.record, status=run.status_record,
                                    job=run.job, best=run.best_metrics) for run in newly]
    ids = {e["id"] for e in entries}
    _write(backend, metrics_key(experiment), experiment,
           [m for rid, m in sorted(metrics.items()) if rid in ids])
    _write(backend, runs_key(experiment), experiment, entries)


def _experiments(store: StoreBase[R], experiment: str | None) -> list[str]:
    return [validate_experiment(experiment)] if experiment else store.experiments()


def load_runs(store: StoreBase[R], experiment: str | None = None, *, update: bool = False
              ) -> list[R]:
    """Every run of ``experiment`` (or all), settled ones from the index when present.

    ``update=True`` writes an updated index when runs became settled or disappeared;
    failures to write (read-only credentials) are ignored.
    """
    runs: list[R] = []
    for exp in _experiments(store, experiment):
        runs.extend(_experiment(store, exp, update=update, strict=False)[0])
    return runs


def refresh(store: StoreBase[R], experiment: str | None = None, *, rebuild: bool = False
            ) -> dict[str, dict[str, int]]:
    """Update (or, with ``rebuild``, recreate) the index; per experiment: ``runs``
    (in the store), ``indexed`` (settled, now in the index), ``read`` (read directly)."""
    return {exp: _experiment(store, exp, update=True, strict=True, rebuild=rebuild)[1]
            for exp in _experiments(store, experiment)}


def _columns(run_id: str, rows: list[EpochRow]) -> MetricsIndexLine:
    """Epoch rows as columns: ``epoch``, ``fit``, ``duration_s``, ``metrics: {name: [...]}``."""
    names = sorted({k for r in rows for k in r.get("metrics", {})})
    return MetricsIndexLine(
        id=run_id, epoch=[r["epoch"] for r in rows], fit=[r.get("fit", 0) for r in rows],
        duration_s=[r.get("duration_s") for r in rows],
        metrics={n: [r.get("metrics", {}).get(n) for r in rows] for n in names})


def _valid_columns(entry: MetricsIndexLine) -> bool:
    if not all(k in entry for k in ("epoch", "fit", "duration_s", "metrics")):
        return False
    n = len(entry.get("epoch", []))
    return len(entry.get("fit", [])) == len(entry.get("duration_s", [])) == n and all(
        len(v) == n for v in entry.get("metrics", {}).values())


def load_metrics(store: StoreBase[R], runs: Iterable[Run]) -> Any:
    """Per-epoch metrics of ``runs`` as one long DataFrame: ``run``, ``experiment``,
    ``epoch``, ``fit``, one column per metric, ``duration_s``."""
    import pandas as pd

    runs = list(runs)
    blocks: dict[int, MetricsIndexLine] = {}
    by_experiment: dict[str, list[Run]] = {}
    for run in runs:
        if "epochs" not in run.__dict__ and run.backend is store.backend:
            by_experiment.setdefault(run.experiment, []).append(run)
    for exp, group in by_experiment.items():
        if len(group) < METRICS_INDEX_MIN_RUNS:
            continue
        wanted = {run.id: run for run in group}
        for entry in _read(store.backend, metrics_key(exp), MetricsIndexLine):
            match = wanted.get(entry["id"])
            if match is not None and _valid_columns(entry) and settled(match):
                blocks[id(match)] = entry
    warm([r for r in runs if id(r) not in blocks and "epochs" not in r.__dict__],
         {"epochs": []})
    columns: dict[str, list[Any]] = {"run": [], "experiment": [], "epoch": [], "fit": []}
    metric_columns: dict[str, list[Any]] = {}
    total = 0
    for run in runs:
        block = blocks.get(id(run)) or _columns(run.id, run.epochs)
        n = len(block.get("epoch", []))
        if not n:
            continue
        columns["run"].extend([run.id] * n)
        columns["experiment"].extend([run.experiment] * n)
        columns["epoch"].extend(block.get("epoch", []))
        columns["fit"].extend(block.get("fit", []))
        for name, values in block.get("metrics", {}).items():
            if name not in metric_columns:
                metric_columns[name] = [None] * total
            metric_columns[name].extend(values)
        total += n
        for values in metric_columns.values():
            values.extend([None] * (total - len(values)))
        columns.setdefault("duration_s", []).extend(block.get("duration_s", []))
    if not total:
        return pd.DataFrame(columns=["run", "experiment", "epoch", "fit", "duration_s"])
    duration = columns.pop("duration_s")
    return pd.DataFrame({**columns, **{n: _floats(v) for n, v in metric_columns.items()},
                         "duration_s": _floats(duration)})


def _floats(values: list[Any]) -> Any:
    import numpy as np

    try:
        return np.array(values, dtype=float)  # None -> nan
    except (TypeError, ValueError):
        return np.array([v if isinstance(v, (int, float)) else None for v in values],
                        dtype=float)
