"""Text and JSON views of runs for the ``sagetrack`` command (no I/O of its own)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..compare import code_of, diff_of, metric_order, normalised_params
from ..formatting import (
    diffstat,
    format_bytes,
    format_time,
    format_value,
    humanize_duration,
    table,
)
from ..store.layout import parse_time
from ..store.metrics import DEFAULT_COLUMNS, MetricColumns, metric_columns
from ..store.reader import Run
from ..store.schema import RUNNING

__all__ = [
    "duration_s",
    "key_metrics",
    "key_params",
    "problems_note",
    "run_row",
    "runs_table",
    "show",
]


def duration_s(run: Run) -> float | None:
    """Seconds from start to end (to now while running); None when unknown."""
    start = parse_time(run.status_record.get("started") or run.job.get("training_start"))
    end = parse_time(run.ended)
    if start is None:
        return None
    if end is None:
        if run.status != RUNNING:
            return None
        end = datetime.now(timezone.utc)
    return max((end - start).total_seconds(), 0.0)


def _value(value: Any) -> str:
    return format_value(value, 4, compact=True)


def key_params(runs: Sequence[Run], limit: int = 4) -> list[str]:
    """Hyperparameters whose values differ between ``runs`` (else the first few)."""
    params = [normalised_params(r.params, r.id) for r in runs]
    names = sorted({k for p in params for k in p} - {"model_dir"})
    varying = [n for n in names if len({json.dumps(p.get(n), sort_keys=True, default=str)
                                        for p in params}) > 1]
    return (varying or names)[:limit]


def key_metrics(runs: Sequence[Run], first: str | None = None,
                limit: int = DEFAULT_COLUMNS) -> MetricColumns:
    """The metric columns of a runs table: every run shows at least one of its own final
    or best metrics (:func:`~sagetrack.store.metrics.metric_columns`); ``first`` leads."""
    return metric_columns([set(r.final_metrics) | set(r.best_metrics) for r in runs],
                          first=first, limit=limit)


def run_row(run: Run) -> dict[str, Any]:
    """One run as a JSON-ready dict (``sagetrack runs --json``)."""
    code = code_of(run)
    return {
        "id": run.id, "experiment": run.experiment, "status": run.status,
        "start": run.started, "end": run.ended, "duration_s": duration_s(run),
        "params": run.params, "metrics": run.final_metrics, "best": run.best_metrics,
        "commit": code.get("commit"), "dirty": code.get("dirty"),
        "problems": list(run.problems),
    }


def problems_note(runs: Sequence[Run]) -> str | None:
    """The footer naming runs whose records have problems (None when there are none)."""
    bad = [r for r in runs if r.problems]
    if not bad:
        return None
    if len(bad) == 1:
        return f"1 run has record problems: sagetrack show {bad[0].id}"
    return f"{len(bad)} runs have record problems: sagetrack show ID (e.g. {bad[0].id})"


def runs_table(runs: Sequence[Run], *, params: list[str] | None = None,
               metrics: list[str] | None = None, sort: str | None = None) -> str:
    """The ``sagetrack runs`` table: final (best) metric values, short commit; a ``!``
    after the status marks a run whose records have problems. Without ``metrics``, the
    metric columns give every run one of its own (:func:`key_metrics`) and a footer names
    the metrics left out."""
    params = key_params(runs) if params is None else params
    hidden: list[str] = []
    if metrics is None:
        chosen = key_metrics(runs, sort)
        metrics, hidden = chosen.shown, chosen.hidden
    several = len({r.experiment for r in runs}) > 1
    headers = ["ID"] + (["EXPERIMENT"] if several else []) + ["STATUS", "START", "DURATION"]
    headers += params + metrics + ["COMMIT", "DIRTY"]
    rows = []
    for run in runs:
        code, best = code_of(run), run.best_metrics  # reads the epochs: problems known after
        status = run.status + ("!" if run.problems else "")
        row = [run.id] + ([run.experiment] if several else []) + [
            status, format_time(run.started), humanize_duration(duration_s(run))]
        row += [_value(run.params.get(p)) for p in params]
        for m in metrics:
            final = run.final_metrics.get(m)
            cell = _value(final)
            if best.get(m) is not None and final is not None and _value(best[m]) != cell:
                cell += f" ({_value(best[m])})"
            row.append(cell)
        dirty = code.get("dirty")
        row += [str(code.get("commit") or "-")[:7], "-" if dirty is None else _value(dirty)]
        rows.append(row)
    notes = []
    if metrics:
        notes.append("metrics: final value (best value when different)")
    if any(r.problems for r in runs):
        notes.append("!: records unreadable or partial")
    footers = [note for note in (_hidden_note(hidden), problems_note(runs)) if note]
    return table(headers, rows) + ("\n\n" + "; ".join(notes) if notes else "") + "".join(
        "\n" + note for note in footers)


def _hidden_note(hidden: list[str], most: int = 12) -> str | None:
    """The footer naming the metrics the table leaves out, and how to show them."""
    if not hidden:
        return None
    names = ", ".join(hidden[:most]) + (f" and {len(hidden) - most} more"
                                         if len(hidden) > most else "")
    return f"not shown: {names} (--metrics NAME,... chooses the metric columns)"


def _section(title: str, items: list[tuple[str, Any]]) -> list[str]:
    if not items:
        return []
    width = max(len(k) for k, _v in items)
    return [title] + [f"  {k:<{width}}  {_value(v)}" for k, v in items] + [""]


def _status_section(run: Run) -> list[str]:
    record, status, job = run.record, run.status_record, run.job
    return _section("Status", [
        ("status", run.status + (" (records incomplete)" if run.incomplete else "")),
        ("created", record.get("created")), ("started", status.get("started")),
        ("ended", status.get("ended")), ("duration", humanize_duration(duration_s(run))),
        ("attempt", status.get("attempt")), ("last epoch", status.get("last_epoch")),
        ("launched by", f"{record.get('user') or '-'} on {record.get('client_host') or '-'}"),
        ("versions", f"sagetrack {record.get('sagetrack_version') or '-'}, SageMaker SDK "
                     f"{record.get('sagemaker_sdk_version') or '-'}"),
    ] + ([("job status", job.get("status")),
          ("billable seconds", job.get("billable_seconds"))] if job else []))


def _failure_section(run: Run) -> list[str]:
    failure = run.failure
    if not failure:
        return []
    out = ["Failure", f"  {failure.get('type')}: {failure.get('message')}"]
    tail = failure.get("traceback", "").rstrip().splitlines()[-12:]
    return out + [f"  | {line}" for line in tail] + [""]


def _origin_section(run: Run) -> list[str]:
    origin = run.reproduces
    if not origin.get("run_id"):
        return []
    return _section("Reproduces", [
        ("run", f"{origin.get('run_id')} (experiment {origin.get('experiment')})"),
        ("overrides", ", ".join(origin.get("overrides", [])) or "none"),
        ("data changed", origin.get("data_changed") or "no")])


def _code_section(run: Run) -> list[str]:
    code = code_of(run)
    tarball = code.get("tarball") or {}
    stats = diffstat(diff_of(run))
    items: list[tuple[str, Any]] = [
        ("entry point", code.get("entry_point")), ("source dir", code.get("source_dir")),
        ("commit", code.get("commit")), ("branch", code.get("branch")),
        ("remote", code.get("remote")), ("dirty", code.get("dirty")),
    ]
    if code.get("error"):
        items.append(("git error", code.get("error")))
    items += [("tarball", tarball.get("uri")), ("tarball sha256", tarball.get("sha256")),
              ("content hash", tarball.get("content_sha256")),
              ("files", tarball.get("file_count"))]
    if stats:
        items.append(("uncommitted", f"{len(stats)} files, +{sum(s[1] for s in stats)} "
                                     f"-{sum(s[2] for s in stats)} lines"
                      + (" (truncated)" if code.get("diff_truncated") else "")))
    out = _section("Code", items)[:-1]
    return out + [f"    {name}  +{a} -{r}" for name, a, r in stats[:30]] + [""]


def _inputs_section(run: Run) -> list[str]:
    inputs = run.inputs
    if not inputs:
        return []
    width = max(len(name) for name in inputs)
    out = ["Inputs"]
    for name, info in sorted(inputs.items()):
        detail = info.get("error") or info.get("note") or (
            f"{info.get('objects')} objects, {format_bytes(info.get('bytes'))}, sha256 "
            f"{str(info.get('sha256'))[:16]}")
        out.append(f"  {name:<{width}}  {info.get('uri')}  ({detail})")
    return [*out, ""]


def _job_section(run: Run) -> list[str]:
    job = run.job_config
    return _section("Job", [
        ("image", job.get("image_uri")),
        ("instances", f"{job.get('instance_count')} x {job.get('instance_type')}"),
        ("framework", f"TensorFlow {job.get('framework_version')} {job.get('py_version')}"),
        ("distribution", job.get("distribution")), ("spot", job.get("use_spot_instances")),
        ("max run", job.get("max_run")), ("volume size", job.get("volume_size")),
        ("output path", job.get("output_path")), ("region", job.get("region")),
        ("role", job.get("role")), ("environment", job.get("environment") or None),
    ] if job else [])


def _environment_section(run: Run) -> list[str]:
    env = run.environment
    if not env:
        return []
    return _section("Environment", [
        ("python", env.get("python")), ("tensorflow", env.get("tensorflow")),
        ("keras", f"{env.get('keras')} ({env.get('keras_flavour')})"),
        ("hosts", env.get("host_count")), ("cpus", env.get("cpu_count")),
        ("gpus", env.get("gpu_count")), ("platform", env.get("platform")),
        ("packages", f"{len(env.get('packages', []))} installed"),
    ])


def _metrics_section(run: Run) -> list[str]:
    final, best = run.final_metrics, run.best_metrics
    if not (final or best):
        return []
    names = sorted(set(final) | set(best), key=metric_order)
    width = max(len(n) for n in names)
    return ["Metrics (final, best)"] + [
        f"  {n:<{width}}  {_value(final.get(n)):>10}  "
        f"{('best ' + _value(best[n])) if n in best else ''}".rstrip() for n in names] + [""]


def _model_section(run: Run) -> list[str]:
    model = run.model
    if not model:
        return []
    files = model.get("files") or []
    out = ["Model", f"  {model.get('uri') or '-'}"]
    out += [f"  {f.get('path')}  {format_bytes(f.get('bytes'))}  "
            f"sha256 {str(f.get('sha256'))[:16]}" for f in files[:50]]
    return [*out, ""]


def show(run: Run) -> str:
    """Everything recorded about ``run``, human readable (``sagetrack show``)."""
    out = [f"Run {run.id}  (experiment {run.experiment})", ""]
    out += _status_section(run) + _failure_section(run) + _origin_section(run)
    out += _section("Hyperparameters", sorted(run.params.items()))
    out += _code_section(run) + _inputs_section(run) + _job_section(run)
    out += _environment_section(run) + _metrics_section(run) + _model_section(run)
    if run.problems:
        out += ["Problems (records unreadable or partial)"]
        out += [f"  {p}" for p in run.problems] + [""]
    if not run.record:
        out += ["(no launch record: run.json is missing or unreadable)", ""]
    return "\n".join(out).rstrip() + "\n"
