"""Text and JSON views of runs for the ``sagetrack`` command (no I/O of its own)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..compare import (
    code_of,
    diff_of,
    diffstat,
    format_bytes,
    format_value,
    metric_order,
    normalised_params,
)
from ..store.layout import parse_time
from ..store.reader import Run, metric_goal

__all__ = [
    "duration_s",
    "humanize_duration",
    "key_metrics",
    "key_params",
    "run_row",
    "runs_table",
    "show",
    "table",
]


def _start(run: Run) -> Any:
    return run.status_record.get("started") or run.record.get("created")


def duration_s(run: Run) -> float | None:
    """Seconds from start to end (to now while running); None when unknown."""
    start = parse_time(run.status_record.get("started") or run.job.get("training_start"))
    end = parse_time(run.status_record.get("ended") or run.job.get("training_end"))
    if start is None:
        return None
    if end is None:
        if run.status != "running":
            return None
        end = datetime.now(timezone.utc)
    return max((end - start).total_seconds(), 0.0)


def humanize_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m10s``, ``42s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _when(value: Any) -> str:
    parsed = parse_time(value)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if parsed else "-"


def _value(value: Any) -> str:
    return format_value(value, 4, compact=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 40) -> str:
    """A plain left-aligned table; cells longer than ``max_width`` are cut with '~', except
    in the first column (ids must stay whole to be copied)."""
    cut = [[c if len(c) <= max_width or i == 0 else c[: max_width - 1] + "~"
            for i, c in enumerate(row)] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cut]) for i, h in enumerate(headers)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [list(headers), *cut]]
    return "\n".join(lines)


def key_params(runs: Sequence[Run], limit: int = 4) -> list[str]:
    """Hyperparameters whose values differ between ``runs`` (else the first few)."""
    params = [normalised_params(r.params, r.id) for r in runs]
    names = sorted({k for p in params for k in p} - {"model_dir"})
    varying = [n for n in names if len({json.dumps(p.get(n), sort_keys=True, default=str)
                                        for p in params}) > 1]
    return (varying or names)[:limit]


def key_metrics(runs: Sequence[Run], first: str | None = None, limit: int = 3) -> list[str]:
    """The metrics worth a column: ``first``, then validation, then training metrics."""
    names = {k for r in runs for k in r.final_metrics if metric_goal(k) is not None}
    ordered = sorted(names, key=lambda n: (not n.startswith("val_"),
                                           n.removeprefix("val_") != "loss", n))
    if first:
        ordered = [first] + [n for n in ordered if n != first]
    return ordered[:limit]


def run_row(run: Run) -> dict[str, Any]:
    """One run as a JSON-ready dict (``sagetrack runs --json``)."""
    code = code_of(run)
    return {
        "id": run.id, "experiment": run.experiment, "status": run.status,
        "start": _start(run), "end": run.status_record.get("ended")
        or run.job.get("training_end"), "duration_s": duration_s(run), "params": run.params,
        "metrics": run.final_metrics, "best": run.best_metrics, "commit": code.get("commit"),
        "dirty": code.get("dirty"), "problems": list(run.problems),
    }


def runs_table(runs: Sequence[Run], *, params: list[str] | None = None,
               metrics: list[str] | None = None, sort: str | None = None) -> str:
    """The ``sagetrack runs`` table: final (best) metric values, short commit."""
    params = key_params(runs) if params is None else params
    metrics = key_metrics(runs, sort) if metrics is None else metrics
    several = len({r.experiment for r in runs}) > 1
    headers = ["ID"] + (["EXPERIMENT"] if several else []) + ["STATUS", "START", "DURATION"]
    headers += params + metrics + ["COMMIT", "DIRTY"]
    rows = []
    for run in runs:
        code = code_of(run)
        status = run.status + ("!" if run.problems else "")
        row = [run.id] + ([run.experiment] if several else []) + [
            status, _when(_start(run)), humanize_duration(duration_s(run))]
        row += [_value(run.params.get(p)) for p in params]
        for m in metrics:
            final, best = run.final_metrics.get(m), run.best_metrics.get(m)
            cell = _value(final)
            if best is not None and final is not None and _value(best) != cell:
                cell += f" ({_value(best)})"
            row.append(cell)
        dirty = code.get("dirty")
        row += [str(code.get("commit") or "-")[:7], "-" if dirty is None else _value(dirty)]
        rows.append(row)
    notes = []
    if metrics:
        notes.append("metrics: final value (best value when different)")
    if any(r.problems for r in runs):
        notes.append("!: records unreadable or partial (see `sagetrack show RUN`)")
    return table(headers, rows) + ("\n\n" + "; ".join(notes) if notes else "")


def _section(title: str, items: list[tuple[str, Any]]) -> list[str]:
    if not items:
        return []
    width = max(len(k) for k, _v in items)
    return [title] + [f"  {k:<{width}}  {_value(v)}" for k, v in items] + [""]


def show(run: Run) -> str:
    """Everything recorded about ``run``, human readable (``sagetrack show``)."""
    record, status, job, env = run.record, run.status_record, run.job_config, run.environment
    code = code_of(run)
    out = [f"Run {run.id}  (experiment {run.experiment})", ""]
    out += _section("Status", [
        ("status", run.status + (" (records incomplete)" if run.incomplete else "")),
        ("created", record.get("created")), ("started", status.get("started")),
        ("ended", status.get("ended")), ("duration", humanize_duration(duration_s(run))),
        ("attempt", status.get("attempt")), ("last epoch", status.get("last_epoch")),
        ("launched by", f"{record.get('user') or '-'} on {record.get('client_host') or '-'}"),
        ("versions", f"sagetrack {record.get('sagetrack_version') or '-'}, SageMaker SDK "
                     f"{record.get('sagemaker_sdk_version') or '-'}"),
    ] + ([("job status", run.job.get("status")),
          ("billable seconds", run.job.get("billable_seconds"))] if run.job else []))
    failure = run.failure
    if failure:
        out += ["Failure", f"  {failure.get('type')}: {failure.get('message')}"]
        out += [f"  | {line}" for line in str(failure.get("traceback") or "")
                .rstrip().splitlines()[-12:]] + [""]
    origin = record.get("reproduces")
    if isinstance(origin, dict) and origin.get("run_id"):
        out += _section("Reproduces", [("run", f"{origin['run_id']} (experiment "
                                               f"{origin.get('experiment')})"),
                                       ("overrides", ", ".join(origin.get("overrides") or [])
                                        or "none"),
                                       ("data changed", origin.get("data_changed") or "no")])
    out += _section("Hyperparameters", sorted(run.params.items()))
    tarball = code.get("tarball") or {}
    stats = diffstat(diff_of(run))
    items: list[tuple[str, Any]] = [
        ("entry point", code.get("entry_point")), ("source dir", code.get("source_dir")),
        ("commit", code.get("commit")), ("branch", code.get("branch")),
        ("remote", code.get("remote")), ("dirty", code.get("dirty")),
    ]
    if code.get("error"):
        items.append(("git error", code["error"]))
    items += [("tarball", tarball.get("uri")), ("tarball sha256", tarball.get("sha256")),
              ("content hash", tarball.get("content_sha256")),
              ("files", tarball.get("file_count"))]
    if stats:
        items.append(("uncommitted", f"{len(stats)} files, +{sum(s[1] for s in stats)} "
                                     f"-{sum(s[2] for s in stats)} lines"
                      + (" (truncated)" if code.get("diff_truncated") else "")))
    out += _section("Code", items)[:-1]
    out += [f"    {name}  +{a} -{r}" for name, a, r in stats[:30]] + [""]
    if run.inputs:
        width = max(len(name) for name in run.inputs)
        out.append("Inputs")
        for name, info in sorted(run.inputs.items()):
            info = dict(info or {})
            detail = info.get("error") or info.get("note") or (
                f"{info.get('objects')} objects, {format_bytes(info.get('bytes'))}, sha256 "
                f"{str(info.get('sha256'))[:16]}")
            out.append(f"  {name:<{width}}  {info.get('uri')}  ({detail})")
        out.append("")
    out += _section("Job", [
        ("image", job.get("image_uri")),
        ("instances", f"{job.get('instance_count')} x {job.get('instance_type')}"),
        ("framework", f"TensorFlow {job.get('framework_version')} {job.get('py_version')}"),
        ("distribution", job.get("distribution")), ("spot", job.get("use_spot_instances")),
        ("max run", job.get("max_run")), ("volume size", job.get("volume_size")),
        ("output path", job.get("output_path")), ("region", job.get("region")),
        ("role", job.get("role")), ("environment", job.get("environment") or None),
    ] if job else [])
    if env:
        packages = env.get("packages") or []
        out += _section("Environment", [
            ("python", env.get("python")), ("tensorflow", env.get("tensorflow")),
            ("keras", f"{env.get('keras')} ({env.get('keras_flavour')})"),
            ("hosts", env.get("host_count")), ("cpus", env.get("cpu_count")),
            ("gpus", env.get("gpu_count")), ("platform", env.get("platform")),
            ("packages", f"{len(packages)} installed"),
        ])
    final, best = run.final_metrics, run.best_metrics
    if final or best:
        names = sorted(set(final) | set(best), key=metric_order)
        width = max(len(n) for n in names)
        out += ["Metrics (final, best)"] + [
            f"  {n:<{width}}  {_value(final.get(n)):>10}  "
            f"{('best ' + _value(best[n])) if n in best else ''}".rstrip() for n in names] + [""]
    model = run.model
    if model:
        out += ["Model", f"  {model.get('uri') or '-'}"]
        out += [f"  {f.get('path')}  {format_bytes(f.get('bytes'))}  "
                f"sha256 {str(f.get('sha256'))[:16]}" for f in model.get("files") or []][:50]
        out.append("")
    if run.problems:
        out += ["Problems (records unreadable or partial)"]
        out += [f"  {p}" for p in run.problems] + [""]
    if not record:
        out += ["(no launch record: run.json is missing or unreadable)", ""]
    return "\n".join(out).rstrip() + "\n"
