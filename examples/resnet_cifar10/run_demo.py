"""The ResNet/CIFAR-10 example end to end, offline: ``make demo``.

1. starts an embedded S3 (moto) and writes a small CIFAR-format data set to it;
2. launches two tracked training jobs of ``train.py`` with different hyperparameters,
   each run as a local process under the real SageMaker container contract;
3. prints the runs table and the diff of the two runs, saves their learning curves as a PNG,
   and says where the records live.

Runs in a few minutes on 2 CPU cores. Records go to ``./sagetrack-runs`` (a local store that
outlives the embedded S3); plots to ``./demo-output``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import offline  # noqa: E402  (the example folder is not a package)

BUCKET = "sagetrack-demo"
RUNS = [
    {"epochs": 4, "batch-size": 128, "learning-rate": 0.1, "depth": 20},
    {"epochs": 4, "batch-size": 128, "learning-rate": 0.02, "depth": 14},
]


def step(n: int, total: int, text: str) -> None:
    print(f"\n[{n}/{total}] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=str(ROOT / "sagetrack-runs"),
                        help="tracking URI for the runs (default: %(default)s)")
    parser.add_argument("--output", default=str(ROOT / "demo-output"),
                        help="folder for the curves PNG and job work dirs")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs per run")
    parser.add_argument("--quick", action="store_true",
                        help="tiny data and model, one epoch (a smoke test)")
    parser.add_argument("--quiet", action="store_true", help="do not stream the job logs")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    total = 5

    step(1, total, "Starting an embedded S3 (moto) on 127.0.0.1 and fake credentials")
    server = offline.start(BUCKET)
    offline.quiet_logs()
    try:
        step(2, total, f"Writing a synthetic CIFAR-format data set to s3://{BUCKET}/cifar10")
        import prepare_data

        sizes = ("256", "128") if args.quick else ("2048", "512")
        prepare_data.main(["--out", f"s3://{BUCKET}/cifar10", "--train-size", sizes[0],
                           "--val-size", sizes[1]])

        import boto3

        from sagetrack import Store, TensorFlow
        from sagetrack.local import LocalProcessSession

        run_ids = []
        for i, hps in enumerate(RUNS, start=1):
            if args.quick:
                hps = {**hps, "epochs": 1, "depth": 8}
            if args.epochs:
                hps = {**hps, "epochs": args.epochs}
            step(2 + i, total, f"Training run {i} of {len(RUNS)} as a local SageMaker job: "
                 + ", ".join(f"{k}={v}" for k, v in hps.items()))
            session = LocalProcessSession(boto_session=boto3.Session(region_name=offline.REGION),
                                          default_bucket=BUCKET, work_dir=str(output / "jobs"))
            estimator = TensorFlow(
                entry_point="train.py", source_dir=str(HERE), role=offline.ROLE,
                instance_type="local", instance_count=1,
                framework_version="2.16", py_version="py310",
                hyperparameters=hps, sagemaker_session=session,
                tracking_uri=args.store, experiment="resnet-cifar10",
            )
            t0 = time.monotonic()
            estimator.fit({"training": f"s3://{BUCKET}/cifar10/train",
                           "validation": f"s3://{BUCKET}/cifar10/val"},
                          logs="None" if args.quiet else "All")
            run = estimator.latest_run
            run_ids.append(run.id)
            last = run.metrics.iloc[-1]
            print(f"run {run.id}: {run.status} in {time.monotonic() - t0:.0f} s, "
                  f"val_accuracy {last['val_accuracy']:.3f}", flush=True)

        step(total, total, "Comparing the runs")
        store = Store(args.store)
        runs = [store.run(rid) for rid in run_ids]
        show_table(store, run_ids)
        show_diff(runs)
        png = plot_curves(runs, output / "curves.png")
    finally:
        server.stop()
    print(f"\nLearning curves: {png}")
    print(f"Records: {Path(args.store).resolve()}/resnet-cifar10/<run id>/ "
          "(plain JSON/JSONL, see docs/record-format.md)")
    print(f"Try: .venv/bin/sagetrack runs --uri {args.store}")
    print(f"Done in {time.monotonic() - started:.0f} s.")
    return 0


def show_table(store: object, run_ids: list[str]) -> None:
    import pandas as pd

    table = store.runs(experiment="resnet-cifar10")  # type: ignore[attr-defined]
    table = table[table["id"].isin(run_ids)]
    columns = ["id", "status", "epochs", "params.learning-rate", "params.depth",
               "metrics.loss", "metrics.val_accuracy", "commit", "dirty"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[[c for c in columns if c in table.columns]].to_string(index=False))


def show_diff(runs: list[object]) -> None:
    import sagetrack

    a, b = runs
    print()
    print(sagetrack.diff(a, b))  # type: ignore[arg-type]


def plot_curves(runs: list[object], path: Path) -> Path:
    import sagetrack

    sagetrack.plot(runs, path=str(path),  # type: ignore[arg-type]
                   title="ResNet on CIFAR-format data: two tracked runs")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
