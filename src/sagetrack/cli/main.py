"""The ``sagetrack`` command: list, show, compare, plot, reproduce and check out runs.

Exit status: 0 success, 1 error (unknown run, unreadable store, access denied, changed
data, ...), 2 usage error. Results go to stdout (``--json``: one JSON document);
messages and errors go to stderr. ``--uri`` defaults like the estimator's
``tracking_uri``: ``$SAGETRACK_URI``, else ``s3://<SageMaker default bucket>/sagetrack``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..api import Run, Store
from ..errors import AmbiguousRunId, RunNotFound, SagetrackError, StoreAccessDenied
from ..store.layout import validate_run_id
from ..store.metrics import metric_goal
from ..store.schema import RUN_STATUSES, UNKNOWN
from .common import CommandError, _err, _json, _out, _quiet_sagemaker, _store, _uri

__all__ = ["build_parser", "main"]

STATUSES = (*RUN_STATUSES, UNKNOWN)


def _run(store: Store, run_id: str, experiment: str | None = None) -> Run:
    """The run ``run_id``, or the only run whose id starts with it (``Store.run``)."""
    try:
        return store.run(run_id, experiment)
    except AmbiguousRunId:
        raise
    except RunNotFound as exc:
        if not exc.suggestions and not store.run_ids(experiment):
            raise CommandError(f"No run with id {run_id!r}: the store {store.uri} has no runs"
                               f"{' in experiment ' + experiment if experiment else ''}.") \
                from exc
        raise


def _run_id(text: str) -> str:
    try:
        return validate_run_id(text)
    except SagetrackError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _assignment(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _sort_key(metric: str) -> Any:
    goal = metric_goal(metric) or "max"

    def key(run: Run) -> tuple[int, float]:
        value = run.best_metrics.get(metric, run.final_metrics.get(metric))
        if not isinstance(value, (int, float)) or value != value:
            return (1, 0.0)
        return (0, float(value) if goal == "min" else -float(value))

    return key


def _empty_message(store: Store, args: argparse.Namespace, total: int) -> str:
    if total:
        return f"No {args.status} runs (of {total})."
    experiments = store.experiments()
    if args.experiment and experiments:
        return (f"No runs in experiment {args.experiment!r}. Experiments: "
                f"{', '.join(experiments)}.")
    return (f"No runs in {store.uri} yet: runs appear here once a sagetrack.TensorFlow "
            "estimator has called fit().")


# -- commands ------------------------------------------------------------------------------
def cmd_runs(args: argparse.Namespace) -> int:
    from .render import run_row, runs_table

    store = _store(args)
    runs = store.list_runs(args.experiment, update_index=True)
    total = len(runs)
    if args.status:
        runs = [r for r in runs if r.status == args.status]
    if args.sort:
        runs.sort(key=_sort_key(args.sort))
    shown = runs[: args.limit] if args.limit else runs
    if args.json:
        _json([run_row(r) for r in shown])
        return 0
    if not shown:
        _err(_empty_message(store, args, total))
        return 0
    _out(runs_table(shown, sort=args.sort,
                    params=args.params.split(",") if args.params else None,
                    metrics=args.metrics.split(",") if args.metrics else None))
    if len(shown) < len(runs):
        _err(f"showing {len(shown)} of {len(runs)} runs (--limit 0 shows all)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .render import run_row, show

    run = _run(_store(args), args.run, args.experiment)
    if args.json:
        _json({**run_row(run), "record": run.record, "status_record": run.status_record,
               "job": run.job, "environment": run.environment, "model": run.model,
               "failure": run.failure, "code_diff": run.diff})
    else:
        _out(show(run))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ..compare import diff

    store = _store(args)
    result = diff(_run(store, args.run_a, args.experiment), _run(store, args.run_b,
                                                                 args.experiment))
    if args.json:
        _json(result.to_dict())
    else:
        _out(result.render(None if args.full else 200))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ..plotting import plot

    store = _store(args)
    runs = [_run(store, rid, args.experiment) for rid in args.runs]
    for run in runs:
        if not run.epochs and run.steps.empty:
            _err(f"warning: run {run.id} recorded no metrics; it is left out of the plot")
    fig = plot(runs, metric=args.metric, path=args.output)
    panels = [ax.get_title().replace("\\$", "$") for ax in fig.axes
              if ax.get_visible() and ax.get_title()]
    if args.json:
        _json({"path": args.output, "runs": [r.id for r in runs], "metrics": panels})
    else:
        _out(f"Wrote {args.output}: {len(runs)} run(s), {len(panels)} panel(s); metrics: "
             f"{', '.join(panels)}")
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("role", "instance_type", "instance_count"):
        if getattr(args, name) is not None:
            out[name] = getattr(args, name)
    if args.hyperparameter:
        out["hyperparameters"] = dict(args.hyperparameter)
    if args.env:
        out["environment"] = {k: str(v) for k, v in args.env}
    return out


def cmd_reproduce(args: argparse.Namespace) -> int:
    _quiet_sagemaker()
    import boto3

    from ..client.reproduce import check_data, reproduce, reproduction_request

    run = _run(_store(args), args.run, args.experiment)
    overrides = _overrides(args)
    region = args.region or run.job_config.get("region") or None
    try:
        boto_session = boto3.Session(region_name=region)
        s3 = boto_session.client("s3")
    except Exception as exc:  # e.g. a region name botocore refuses
        raise CommandError(f"Cannot use AWS region {region!r}: {type(exc).__name__}: {exc}. "
                           "Pass --region.") from exc
    if args.dry_run:
        request = reproduction_request(run, **overrides)
        checks = check_data(run, s3)
        refused = [c for c in checks if c.status != "same"] and not args.allow_data_change
        if args.json:
            _json({**request.to_dict(), "data": [{"channel": c.channel, "status": c.status,
                                                  "detail": c.detail} for c in checks],
                   "would_launch": not refused})
        else:
            _out(f"Dry run: would launch a new tracked job repeating {run.id}:\n\n{request}\n")
            _out("Data check:\n" + "\n".join(f"  {c.channel}: {c.detail}" for c in checks)
                 if checks else "Data check: no inputs recorded")
        if refused:
            _err("the data changed since the run: a real launch would be refused "
                 "(--allow-data-change launches anyway)")
            return 1
        return 0
    import sagemaker

    if overrides.get("instance_type", run.job_config.get("instance_type")) in ("local",
                                                                               "local_gpu"):
        from ..local import LocalProcessSession  # a local run repeats on this machine

        session = LocalProcessSession(boto_session=boto_session)
    else:
        session = sagemaker.Session(boto_session=boto_session)
    try:
        est = reproduce(run, allow_data_change=args.allow_data_change, wait=args.wait,
                        sagemaker_session=session, s3_client=s3,
                        **overrides)
    except SagetrackError:
        raise
    except Exception as exc:  # the SDK or SageMaker refused the job: say so, no traceback
        raise CommandError(f"Launching the reproduction failed: {type(exc).__name__}: "
                           f"{exc}") from exc
    job = est.latest_training_job.name
    if args.json:
        _json({"run_id": job, "experiment": est.experiment, "reproduces": run.id,
               "tracking_uri": est.tracking_uri})
    else:
        _out(f"Launched {job} (experiment {est.experiment}), reproducing {run.id}.\n"
             f"Follow it with: sagetrack show {job} --uri {est.tracking_uri}")
    return 0


def cmd_checkout(args: argparse.Namespace) -> int:
    from ..client.checkout import checkout

    run = _run(_store(args), args.run, args.experiment)
    path = checkout(run, args.directory, force=args.force)
    files = sorted(str(p.relative_to(path)) for p in (path / "code").rglob("*") if p.is_file())
    if args.json:
        _json({"path": str(path), "run_id": run.id, "code_files": files})
    else:
        _out(f"Wrote the code of {run.id} to {path}/code ({len(files)} files), with "
             "hyperparameters.json, run.json and README.md (how to re-run).")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    stats = _store(args).refresh_index(args.experiment, rebuild=args.rebuild)
    if args.json:
        _json(stats)
    elif not stats:
        _err("No experiments in the store: nothing to index.")
    else:
        for exp, s in stats.items():
            _out(f"{exp}: {s['runs']} runs, {s['indexed']} settled runs indexed, "
                 f"{s['read']} read from their records")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    import boto3

    from ..client.ingest import ingest_job

    store = Store(_uri(args))
    session = boto3.session.Session(region_name=args.region)
    written = ingest_job(args.job, store.backend,
                         sagemaker_client=session.client("sagemaker"),
                         s3_client=session.client("s3"), overwrite_terminal=args.force)
    if args.json:
        _json({"job": args.job, "store": store.uri, "written": written})
    elif written:
        _out(f"Ingested {len(written)} records of {args.job} into {store.uri}.")
    else:
        _out(f"The output of {args.job} holds no sagetrack records that the store lacks.")
    return 0


# -- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sagetrack`` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--uri", default=argparse.SUPPRESS,
                        help="the store: s3://bucket/prefix or a folder (default: "
                             "$SAGETRACK_URI, else s3://<SageMaker default bucket>/sagetrack)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print machine-readable JSON")
    exp = argparse.ArgumentParser(add_help=False)
    exp.add_argument("-e", "--experiment", help="only look in this experiment")

    parser = argparse.ArgumentParser(
        prog="sagetrack", description="Compare, plot and reproduce tracked SageMaker "
        "training runs.", epilog="Run `sagetrack COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"sagetrack {__version__}")
    parser.add_argument("--uri", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", default=False, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str, func: Any, parents: list[argparse.ArgumentParser]
            ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=parents)
        p.set_defaults(func=func)
        return p

    p = add("runs", "list runs as a table (newest first)", cmd_runs, [common, exp])
    p.add_argument("-s", "--status", choices=STATUSES, help="only runs with this status")
    p.add_argument("--sort", metavar="METRIC",
                   help="best first by METRIC (lowest for loss/error-like names)")
    p.add_argument("-n", "--limit", type=int, default=50, help="rows to show (0: all; 50)")
    p.add_argument("--params", help="comma-separated hyperparameters to show "
                                    "(default: those that differ)")
    p.add_argument("--metrics", help="comma-separated metrics to show (default: validation "
                                     "metrics first, enough for every run to show its own; "
                                     "a last line names the others)")

    p = add("show", "everything recorded about one run", cmd_show, [common, exp])
    p.add_argument("run", type=_run_id, metavar="RUN",
                   help="run id (a training job name, or a unique prefix of one)")

    p = add("diff", "compare two runs: params, code, data, environment, metrics", cmd_diff,
            [common, exp])
    p.add_argument("run_a", type=_run_id, metavar="RUN_A", help="first run (A)")
    p.add_argument("run_b", type=_run_id, metavar="RUN_B", help="second run (B)")
    p.add_argument("--full", action="store_true", help="show the whole diff of code diffs")

    p = add("plot", "learning curves of runs on one figure", cmd_plot, [common, exp])
    p.add_argument("runs", type=_run_id, nargs="+", metavar="RUN", help="runs to plot")
    p.add_argument("-m", "--metric", help="one metric (its val_ variant is drawn dashed; "
                                          "default: a panel for every metric)")
    p.add_argument("-o", "--output", default="curves.png",
                   help="image file (.png, .svg, .pdf; default curves.png)")

    p = add("reproduce", "launch a new tracked job repeating a run", cmd_reproduce,
            [common, exp])
    p.add_argument("run", type=_run_id, metavar="RUN", help="the run to repeat")
    p.add_argument("--role", help="IAM role (default: the run's)")
    p.add_argument("--instance-type", help="instance type (default: the run's)")
    p.add_argument("--instance-count", type=int, help="instance count (default: the run's)")
    p.add_argument("-p", "--hyperparameter", type=_assignment, action="append",
                   metavar="NAME=VALUE", help="override one hyperparameter (JSON values)")
    p.add_argument("--env", type=_assignment, action="append", metavar="NAME=VALUE",
                   help="override one environment variable")
    p.add_argument("--region", help="AWS region (default: the run's)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the request and the data check; launch nothing")
    p.add_argument("--allow-data-change", action="store_true",
                   help="launch even if the input data changed since the run")
    p.add_argument("--wait", action="store_true", help="wait for the job and stream its logs")

    p = add("checkout", "write the exact code of a run into a folder", cmd_checkout,
            [common, exp])
    p.add_argument("run", type=_run_id, metavar="RUN", help="the run whose code to write")
    p.add_argument("directory", nargs="?", metavar="DIR", help="target folder (default: RUN)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder; accept a changed tarball")

    p = add("ingest", "copy a finished job's records from its output.tar.gz into the store "
            "(network-isolated jobs, or a store the job could not reach)", cmd_ingest, [common])
    p.add_argument("job", type=_run_id, metavar="JOB", help="the training job name")
    p.add_argument("--region", help="AWS region (default: your configured region)")
    p.add_argument("--force", action="store_true",
                   help="overwrite a final status already in the store")

    p = add("index", "build or refresh the run index that keeps listing fast", cmd_index,
            [common, exp])
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index")

    from . import report
    report.add_arguments(add("report", report.HELP, report.cmd_report, [common]))
    return parser


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sagetrack`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return _exit_code(exc.code)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except StoreAccessDenied as exc:
        _err(f"error: access denied: {exc}\nCheck your AWS credentials and that they may "
             "list and read the store (s3:ListBucket, s3:GetObject).")
    except SagetrackError as exc:
        _err(f"error: {exc}")
    except PermissionError as exc:
        _err(f"error: access denied: {exc}")
    except OSError as exc:
        _err(f"error: {exc}")
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
