"""What the report shows, read from a store: the runs table and one document per run.

:func:`runs_table` turns runs (as :meth:`Store.list_runs` returns them: launch record,
status and job outcome, best metrics) into the columns and rows of the runs page.
:func:`run_document` reads everything else one run recorded (curves, environment, hosts,
model files, the uncommitted diff) into the document of its run page. Both return plain
JSON-ready values taken from the records; nothing is added that the records do not hold.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..compare import RunDiff, code_of, diff, diff_of, metric_order
from ..formatting import diffstat, format_time, humanize_duration
from ..store.layout import parse_time
from ..store.metrics import metric_columns, metric_goal, step_table
from ..store.params import flat_params, normalised_params
from ..store.parse import parse_document
from ..store.reader import Run
from ..store.schema import (
    BATCHES_DIR,
    DIFF_FILE,
    ENVIRONMENT_FILE,
    HOSTS_DIR,
    LAUNCHED,
    METRICS_FILE,
    MODEL_FILE,
    RUNNING,
    STEPS_FILE,
    EnvironmentDoc,
)

__all__ = ["ACTIVE", "duration_s", "run_document", "run_files", "runs_table"]

#: statuses of a run that has not ended yet (the pages show them as live)
ACTIVE = (RUNNING, LAUNCHED)
#: hyperparameters shown by default in the runs table (its metrics: those of `sagetrack runs`)
DEFAULT_PARAMS = 5
#: integers a curve can hold (beyond, a float would overflow)
_BIG = 2 ** 1000


def run_files(run: Run) -> set[str]:
    """Names of the files a run holds (``run.json``, ``batches/...``), from one listing."""
    start = len(run.prefix) + 1
    return {key[start:] for key in run.backend.list(run.prefix)}


def duration_s(run: Run) -> float | None:
    """Seconds from start to end of a run that ended; None while running or unknown."""
    start = parse_time(run.status_record.get("started") or run.job.get("training_start"))
    end = parse_time(run.ended)
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def _time(value: Any) -> str | None:
    parsed = parse_time(value)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else None


def _cell(value: Any) -> Any:
    """A table cell: numbers, text, booleans and null as they are; lists and dicts as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _data(run: Run) -> str | None:
    """Each input channel with the first 8 characters of its data fingerprint."""
    parts = [f"{name} {str(info.get('sha256') or '?')[:8]}"
             for name, info in sorted(run.inputs.items()) if isinstance(info, dict)]
    return " ".join(parts) or None


def _key_params(flat: Sequence[dict[str, Any]], limit: int) -> list[str]:
    names = sorted({k for p in flat for k in p} - {"model_dir"})
    varying = [n for n in names
               if len({json.dumps(p.get(n), sort_keys=True, default=str) for p in flat}) > 1]
    return (varying or names)[:limit]


_RUN_COLUMNS: list[tuple[str, str, str]] = [
    # key, label, kind (how the page shows and sorts it)
    ("id", "run", "id"), ("experiment", "experiment", "text"), ("status", "status", "status"),
    ("start", "start", "time"), ("end", "end", "time"), ("duration", "duration", "seconds"),
    ("user", "user", "text"), ("commit", "commit", "hash"), ("dirty", "dirty", "bool"),
    ("data", "data", "text"), ("epochs", "epochs", "number"),
    ("instance", "instance", "text"), ("problems", "problems", "number"),
]


def runs_table(runs: Sequence[Run]) -> dict[str, Any]:
    """The runs page: ``columns`` (key, label, group, kind, goal), ``visible`` (the keys
    shown by default: varying hyperparameters, key metrics), ``rows`` (one list per run,
    in column order)."""
    flat = [flat_params(normalised_params(r.params, r.id), leaf=_cell) for r in runs]
    raw = [flat_params(r.params, leaf=_cell) for r in runs]
    finals = [r.final_metrics for r in runs]
    bests = [r.best_metrics for r in runs]
    param_names = sorted({k for p in raw for k in p})
    metric_names = sorted({k for m in finals for k in m} | {k for m in bests for k in m},
                          key=metric_order)
    best_names = [n for n in metric_names if metric_goal(n) is not None]
    columns: list[dict[str, Any]] = [{"key": k, "label": label, "group": "run", "kind": kind}
                                     for k, label, kind in _RUN_COLUMNS]
    columns += [{"key": f"params.{n}", "label": n, "group": "params", "kind": "value"}
                for n in param_names]
    columns += [{"key": f"final.{n}", "label": n, "group": "final", "kind": "metric",
                 "goal": metric_goal(n)} for n in metric_names]
    columns += [{"key": f"best.{n}", "label": n, "group": "best", "kind": "metric",
                 "goal": metric_goal(n)} for n in best_names]
    rows = []
    for run, params, final, best in zip(runs, raw, finals, bests, strict=True):
        code, job = code_of(run), run.job_config
        count, kind = job.get("instance_count"), job.get("instance_type")
        row: list[Any] = [
            run.id, run.experiment, run.status, _time(run.started), _time(run.ended),
            duration_s(run), _cell(run.record.get("user")), _cell(code.get("commit")),
            _cell(code.get("dirty")), _data(run), _cell(run.status_record.get("last_epoch")),
            f"{count} x {kind}" if kind else None, len(run.problems) or None]
        row += [params.get(n) for n in param_names]
        row += [_cell(final.get(n)) for n in metric_names]
        row += [_cell(best.get(n)) for n in best_names]
        rows.append(row)
    # the metric columns of `sagetrack runs`: every run shows its own metrics
    metrics = metric_columns([set(f) | set(b) for f, b in zip(finals, bests, strict=True)]
                             ).shown
    visible = ["id"] + (["experiment"] if len({r.experiment for r in runs}) > 1 else [])
    visible += ["status", "start", "duration", "user", "commit", "dirty", "data"]
    visible += [f"params.{n}" for n in _key_params(flat, DEFAULT_PARAMS)]
    visible += [f"final.{n}" for n in metrics]
    visible += [f"best.{n}" for n in metrics[:2]]
    return {"columns": columns, "visible": visible, "rows": rows}


# -- one run -------------------------------------------------------------------------------
def _numbers(values: list[Any]) -> list[float | None]:
    """Curve values: finite numbers as floats, anything else null (a gap in the curve)."""
    # the hot loop of a report (every value of every curve): no function calls
    return [float(v) if isinstance(v, float) and -math.inf < v < math.inf else
            float(v) if type(v) is int and -_BIG < v < _BIG else None for v in values]


def _series(xs: list[float], rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    names = sorted({k for r in rows for k in r}, key=metric_order)
    return {"x": xs, "label": label,
            "series": {n: _numbers([r.get(n) for r in rows]) for n in names}}


def _curves(run: Run, files: set[str]) -> dict[str, Any]:
    """Per-epoch, per-step (custom loops, output) and per-batch curves, where recorded."""
    out: dict[str, Any] = {}
    latest: dict[tuple[int, int], dict[str, Any]] = {}
    if METRICS_FILE in files:
        for row in run.epochs:  # a restarted attempt may record an epoch again: last wins
            latest[(row.get("fit", 0), row["epoch"])] = dict(row.get("metrics", {}))
    if latest:
        keys = sorted(latest)
        several = len({fit for fit, _e in keys}) > 1
        xs = [float(i + 1) if several else float(e) for i, (_f, e) in enumerate(keys)]
        out["epoch"] = _series(xs, [latest[k] for k in keys],
                               "epoch (all fit calls)" if several else "epoch")
    if STEPS_FILE in files:
        steps = step_table(run.step_rows)  # the steps of Run.steps
        if steps:
            order = sorted(steps)
            out["step"] = _series([float(s) for s in order], [steps[s] for s in order], "step")
    if any(f.startswith(BATCHES_DIR + "/") for f in files):
        frame = run.batches
        if len(frame):
            names = sorted((str(c) for c in frame.columns if c not in ("epoch", "batch")),
                           key=metric_order)
            out["batch"] = {"x": [float(s) for s in frame.index], "label": "step (batches)",
                            "series": {n: _numbers(frame[n].tolist()) for n in names}}
    return out


def _hosts(run: Run, files: set[str]) -> dict[str, EnvironmentDoc]:
    hosts: dict[str, EnvironmentDoc] = {}
    for name in sorted(f for f in files if f.startswith(HOSTS_DIR + "/") and
                       f.endswith(".json")):
        data = run.read(name)
        hosts[name[len(HOSTS_DIR) + 1:-5]] = parse_document(data, name, EnvironmentDoc,
                                                            run.problems)
    return hosts


def _facets(run: Run, compared: RunDiff) -> dict[str, dict[str, Any]]:
    """The values ``sagetrack diff`` compares, by section, for the compare page's table;
    ``compared``: a diff whose run B is ``run`` (its fields' ``b`` are this run's values)."""
    packages = {}
    for item in run.environment.get("packages", []):
        name, _sep, version = item.partition("==")
        packages[name.lower()] = version
    metrics = [m for m in compared.metrics if m.final_b is not None or m.best_b is not None]
    return {
        "Status": {"status": run.status, "start": format_time(run.started),
                   "duration": humanize_duration(duration_s(run)),
                   "user": run.record.get("user")},
        "Hyperparameters": dict(sorted(flat_params(normalised_params(run.params, run.id),
                                                   leaf=_cell).items())),
        "Code": {f.name: _cell(f.b) for f in compared.code.fields},
        "Data": {f"{ch.name} {f.name}": _cell(f.b) for ch in compared.data
                 for f in (ch.uri, ch.objects, ch.bytes, ch.sha256) if ch.status != "removed"},
        "Environment": {f.name: _cell(f.b) for f in compared.environment.fields},
        "Packages": packages,
        "Final metrics": {m.name: m.final_b for m in metrics},
        "Best metrics": {m.name: m.best_b for m in metrics if m.goal},
    }


def run_document(run: Run, files: set[str], previous: Run | None, uri: str) -> dict[str, Any]:
    """Everything one run recorded, for its page (``files``: from :func:`run_files`).

    ``previous`` is the run before it in its experiment: the document carries the text
    of ``sagetrack diff`` between the two."""
    code = code_of(run)
    uncommitted = diff_of(run) if DIFF_FILE in files or run.reproduces else ""
    model = run.model if MODEL_FILE in files else {}
    uri_arg = f" --uri {shlex.quote(uri)}" if uri else ""
    doc: dict[str, Any] = {
        "id": run.id, "experiment": run.experiment, "status": run.status,
        "incomplete": run.incomplete, "started": _time(run.started),
        "ended": _time(run.ended), "duration_s": duration_s(run),
        "record": {k: v for k, v in run.record.items() if k not in (
            "params", "code", "inputs", "job", "artifacts", "reproduces")},
        "status_record": {k: v for k, v in run.status_record.items()
                          if k not in ("metrics", "failure")},
        "job": dict(run.job), "failure": run.failure, "reproduces": dict(run.reproduces),
        "params": run.params, "code": code, "diff": uncommitted,
        "diffstat": diffstat(uncommitted), "inputs": run.inputs,
        "job_config": run.job_config, "artifacts": run.artifacts,
        "environment": run.environment if ENVIRONMENT_FILE in files else {},
        "hosts": _hosts(run, files),
        "model": model or ({"uri": run.job.get("model_artifacts") or
                            run.artifacts.get("model")} if run.artifacts else {}),
        "final": run.final_metrics, "curves": _curves(run, files),
        "commands": {
            "reproduce": f"sagetrack reproduce {run.id} -e {run.experiment}{uri_arg} --dry-run",
            "checkout": f"sagetrack checkout {run.id} -e {run.experiment}{uri_arg}",
            "show": f"sagetrack show {run.id} -e {run.experiment}{uri_arg}"},
    }
    doc["best"] = run.best_metrics
    compared = diff(previous or run, run)
    doc["facets"] = _facets(run, compared)
    if previous is not None:
        doc["previous"] = {"id": previous.id, "experiment": previous.experiment,
                           "text": compared.render()}
    doc["problems"] = list(run.problems)
    return doc


def now_iso() -> str:
    """The time of a generation, UTC, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
