"""The ResNet/CIFAR-10 example end to end, offline: ``make demo``.

1. writes a small synthetic CIFAR-format data set to ``demo-output/data``;
2. launches two tracked training jobs of ``train.py`` with different hyperparameters,
   each run as a local process under the real SageMaker container contract by an offline
   ``LocalProcessSession``: no AWS account, credentials or network, even when some are
   configured (code tarballs and models go to ``demo-output/jobs/bucket``);
3. prints the runs table and the diff of the two runs, saves their learning curves as a PNG,
   writes the static report (``demo-output/report/index.html``, screenshots of its pages
   in ``demo-output/screenshots/``) and says where the records live.

Runs in a few minutes on 2 CPU cores. Records go to ``./sagetrack-runs``; plots to
``./demo-output``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

RUNS = [
    {"epochs": 4, "batch-size": 128, "learning-rate": 0.1, "depth": 20},
    {"epochs": 4, "batch-size": 128, "learning-rate": 0.02, "depth": 14},
]
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"  # recorded, not used locally


def step(n: int, total: int, text: str) -> None:
    print(f"\n[{n}/{total}] {text}", flush=True)


def quiet_logs() -> None:
    """Keep the SDK's and botocore's INFO chatter out of the output."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    for name in ("botocore", "boto3", "sagemaker.config", "sagemaker.image_uris",
                 "sagemaker.telemetry"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=str(ROOT / "sagetrack-runs"),
                        help="tracking URI for the runs (default: %(default)s)")
    parser.add_argument("--output", default=str(ROOT / "demo-output"),
                        help="folder for the data, the curves PNG and the job work dirs")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs per run")
    parser.add_argument("--quick", action="store_true",
                        help="tiny data and model, one epoch (a smoke test)")
    parser.add_argument("--quiet", action="store_true", help="do not stream the job logs")
    args = parser.parse_args(argv)
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    total = 4
    quiet_logs()

    data = output / "data"
    step(1, total, f"Writing a synthetic CIFAR-format data set to {data}")
    import prepare_data

    sizes = ("256", "128") if args.quick else ("2048", "512")
    prepare_data.main(["--out", str(data), "--train-size", sizes[0], "--val-size", sizes[1]])

    from sagetrack import Store, TensorFlow
    from sagetrack.local import LocalProcessSession

    run_ids = []
    for i, hps in enumerate(RUNS, start=1):
        if args.quick:
            hps = {**hps, "epochs": 1, "depth": 8}
        if args.epochs:
            hps = {**hps, "epochs": args.epochs}
        step(1 + i, total, f"Training run {i} of {len(RUNS)} as a local SageMaker job: "
             + ", ".join(f"{k}={v}" for k, v in hps.items()))
        session = LocalProcessSession(offline=True, work_dir=str(output / "jobs"))
        estimator = TensorFlow(
            entry_point="train.py", source_dir=str(HERE), role=ROLE,
            instance_type="local", instance_count=1,
            framework_version="2.16", py_version="py310",
            hyperparameters=hps, sagemaker_session=session,
            tracking_uri=args.store, experiment="resnet-cifar10",
        )
        t0 = time.monotonic()
        estimator.fit({"training": f"file://{data}/train", "validation": f"file://{data}/val"},
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
    print(f"\nLearning curves: {png}")
    site = write_report(args.store, output)
    print(f"Report (open in a browser, no server needed): {site}")
    print(f"Records: {Path(args.store).resolve()}/resnet-cifar10/<run id>/ "
          "(plain JSON/JSONL, see docs/record-format.md)")
    print(f"Try: .venv/bin/sagetrack runs --uri {args.store}")
    print(f"     .venv/bin/sagetrack checkout {run_ids[0]} ./code-that-ran --uri {args.store}")
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


def write_report(store: str, output: Path) -> str:
    """The static report of the demo's runs, and screenshots of its pages when a
    Chromium is at hand (``sagetrack report`` does the same from the command line)."""
    from sagetrack.report import build, screenshots

    result = build(store, output / "report", experiments=["resnet-cifar10"])
    try:
        shots = screenshots(output / "report", output / "screenshots")
        print(f"Screenshots: {', '.join(str(p) for p in shots)}")
    except Exception as exc:  # no browser on this machine: the report itself is written
        print(f"(no screenshots: {exc})")
    return str(result.url)


def plot_curves(runs: list[object], path: Path) -> Path:
    import sagetrack

    sagetrack.plot(runs, path=str(path),  # type: ignore[arg-type]
                   title="ResNet on CIFAR-format data: two tracked runs")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
