"""Training overhead: ResNet-20 epochs untracked vs tracked, run alternately in one process.

Variants (same model, same data, same seed; ``fit`` on uint8 CIFAR-format arrays):

* ``untracked``        - plain ``keras.Model.fit`` (the patch removed);
* ``sagetrack-local``  - epoch-level tracking through the real ``Model.fit`` patch, the real
  ``TrackingCallback``, ``Recorder`` and background ``RecordWriter``, to a local folder;
* ``sagetrack-s3``     - the same, to S3 on a local moto server (another process);
* ``sagetrack-batch``  - every batch recorded (``track_batches=1``), local folder;
* ``sagetrack-batch-s3`` - every batch, to S3 on moto;
* ``mlflow``           - MLflow's own Keras callback (``mlflow.keras.MlflowCallback``, per
  epoch) with a local sqlite (or file) store, when MLflow is installed.

One *round* runs one ``fit`` per variant, the starting variant rotated each round
(ABC, BCA, CAB, ...); round 0 is a warm-up (graph tracing, first S3 client, MLflow's
database) and is discarded. A trial's epoch time is the time from the ``fit`` call to the
``on_train_end`` of a timing callback placed after every other callback, per epoch: all the
tracker's work, without Keras' teardown after training (which on some machines stalls for
seconds whatever the callbacks; the whole call is reported beside it). Ratios are taken per
round against that round's untracked trial, so slow drifts of the machine cancel.

    python benchmarks/training_overhead.py            # full run (~6 min on 2 cores)
    python benchmarks/training_overhead.py --quick    # smoke run (~1 min)
    python benchmarks/training_overhead.py --device gpu
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from _common import fmt_ratio, fmt_s, print_table, summarize, write_results

NAME = "training_overhead"
ALL_VARIANTS = ("untracked", "sagetrack-local", "sagetrack-s3", "sagetrack-batch",
                "sagetrack-batch-s3", "mlflow")
TARGETS = {"sagetrack-local": 1.01, "sagetrack-s3": 1.01, "sagetrack-batch": 1.03,
           "sagetrack-batch-s3": 1.03}
MLFLOW_INSTALL = ".venv/bin/pip install mlflow-skinny sqlalchemy alembic"


@dataclass
class Trial:
    variant: str
    round: int
    wall_s: float
    cpu_s: float
    epochs: int
    loadavg: float
    records: int | None = None
    writer_cpu_s: float | None = None
    store_writes: int | None = None
    fit_s: float | None = None  # the whole fit() call, Keras' teardown included

    @property
    def epoch_s(self) -> float:
        return self.wall_s / self.epochs


@dataclass
class Bench:
    """Everything the variants share: the model, the data, the stores."""

    args: argparse.Namespace
    model: Any
    x: Any
    y: Any
    workdir: Path
    original_fit: Callable[..., Any]
    patched_fit: Callable[..., Any]
    s3_uri: str | None = None
    mlflow: Any = None
    skipped: dict[str, str] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (about a minute)")
    p.add_argument("--rounds", type=int, default=None,
                   help="measured rounds, after the warm-up round (default 12; quick 1)")
    p.add_argument("--min-rounds", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting rounds after this many seconds, once --min-rounds "
                        "are done (default 420; quick 60)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per fit call (default 1)")
    p.add_argument("--images", type=int, default=None, help="images (default 2048; quick 256)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(ALL_VARIANTS),
                   help=f"comma-separated subset of {', '.join(ALL_VARIANTS)}")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument("--from-json", type=Path, default=None,
                   help="analyse the trials of a saved results file again and print its "
                        "table (nothing is run; the file's analysis is brought up to date)")
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds if args.rounds is not None else (1 if q else 12)
    args.min_rounds = min(args.min_rounds, args.rounds)
    args.budget_s = args.budget_s if args.budget_s is not None else (60.0 if q else 420.0)
    args.epochs = args.epochs or 1
    args.images = args.images or (256 if q else 2048)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variants) - set(ALL_VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {ALL_VARIANTS}")
    args.variants = ["untracked", *(v for v in args.variants if v != "untracked")]
    return args


# -- setting up ----------------------------------------------------------------------------
def _select_device(device: str) -> Any:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu":
        if not gpus:
            raise SystemExit("--device gpu: TensorFlow sees no GPU on this machine")
        return tf.device("/GPU:0")
    if gpus:
        tf.config.set_visible_devices([], "GPU")
    return tf.device("/CPU:0")


def _setup_mlflow(workdir: Path) -> tuple[Any, str | None]:
    """(mlflow module, None) or (None, why it is skipped)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow
            from mlflow.keras import MlflowCallback  # noqa: F401
    except Exception as exc:
        return None, f"MLflow not installed ({type(exc).__name__}); `{MLFLOW_INSTALL}`"
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401

        uri = f"sqlite:///{workdir / 'mlflow.db'}"
    except ImportError:  # mlflow-skinny alone: the file store (maintenance mode in MLflow 3)
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        uri = f"file:{workdir / 'mlruns'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("sagetrack-bench")
    return mlflow, None


def setup(args: argparse.Namespace, workdir: Path, s3_url: str | None) -> Bench:
    import keras
    from resnet20 import build_resnet20, synthetic_cifar

    from sagetrack.container.keras import patch_model_fit

    original_fit = keras.Model.fit
    patch_model_fit(keras, "keras")  # the real patch, as the bootstrap installs it
    patched_fit = keras.Model.fit
    keras.Model.fit = original_fit
    x, y = synthetic_cifar(args.images, seed=args.seed)
    model = build_resnet20(seed=args.seed)
    bench = Bench(args=args, model=model, x=x, y=y, workdir=workdir,
                  original_fit=original_fit, patched_fit=patched_fit)
    if s3_url is not None:
        import boto3

        os.environ["AWS_ENDPOINT_URL"] = s3_url  # as in a job pointed at a custom endpoint
        boto3.client("s3", region_name=_common.REGION).create_bucket(Bucket="bench")
        bench.s3_uri = "s3://bench/sagetrack"
    if "mlflow" in args.variants:
        bench.mlflow, why = _setup_mlflow(workdir)
        if why:
            bench.skipped["mlflow"] = why
    return bench


# -- one trial -----------------------------------------------------------------------------
@contextlib.contextmanager
def _variant(bench: Bench, variant: str, run_id: str) -> Iterator[tuple[list[Any], Any]]:
    """Arrange ``variant`` outside the timed region; yield (callbacks, recorder)."""
    import keras

    from sagetrack.container.recorder import set_active_recorder
    from sagetrack.store.backends import LocalBackend, open_backend

    if variant == "untracked":
        keras.Model.fit = bench.original_fit
        yield [], None
        return
    if variant == "mlflow":
        from mlflow.keras import MlflowCallback

        keras.Model.fit = bench.original_fit
        bench.mlflow.start_run(run_name=run_id)
        try:
            yield [MlflowCallback()], None  # type: ignore[no-untyped-call]
        finally:
            bench.mlflow.end_run()
        return
    batches = 1 if "batch" in variant else 0
    store: Any = (open_backend(bench.s3_uri) if variant.endswith("-s3") and bench.s3_uri
                  else LocalBackend(bench.workdir / "store"))
    recorder = _common.make_recorder(bench.workdir / "jobs", store, run_id=run_id,
                                     track_batches=batches)
    # In a job the bootstrap starts recording at process start, seconds before the script
    # has imported TensorFlow and built its model: the start records (and the S3 client)
    # are done before training begins. Wait for them here, outside the timed region.
    deadline = time.monotonic() + 30
    while recorder.writer.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    keras.Model.fit = bench.patched_fit
    set_active_recorder(recorder)
    try:
        yield [], recorder
    finally:
        set_active_recorder(None)
        keras.Model.fit = bench.original_fit
        recorder.finish("completed")
        if not recorder.close(30.0):
            print(f"  warning: {variant} {run_id}: records not all stored", flush=True)


def _recorded_rows(recorder: Any, variant: str, epochs: int) -> int:
    from sagetrack.store.layout import RUN_FILES

    if "batch" in variant:
        return int(recorder.batches_recorded)
    return len(recorder.writer.rows(RUN_FILES["metrics"]))


def _settle(writer: Any, timeout: float = 15.0) -> None:
    """Wake the writer and wait until the store has every document (or ``timeout``)."""
    wake = getattr(writer, "flush_soon", None)
    if wake is not None:
        wake()
    deadline = time.monotonic() + timeout
    while writer.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # the local copy is written first; give the last put time to return


def run_trial(bench: Bench, variant: str, round_no: int, device: Any) -> Trial:
    args = bench.args
    run_id = f"{variant}-r{round_no}".replace("_", "-")
    writer_cpu, writes = None, None
    threads_before = {t.ident for t in threading.enumerate()}
    with open(os.devnull, "w") as devnull, _variant(bench, variant, run_id) as (cbs, rec):
        load = os.getloadavg()[0]
        _LOADS.append(load)
        # the writer threads' CPU clocks run from their start (S3 client creation, start
        # records): count only what they use during the fit
        writer0 = _common.thread_cpu("sagetrack", exclude=threads_before)
        writes0 = getattr(rec.writer, "uploads", 0) if rec is not None else 0
        timer = _end_of_training_timer()
        with device, contextlib.redirect_stdout(devnull):  # the #sagetrack metric lines
            cpu0, t0 = time.process_time(), time.perf_counter()
            bench.model.fit(bench.x, bench.y, batch_size=args.batch_size, epochs=args.epochs,
                            shuffle=False, verbose=0, callbacks=[*cbs, timer])
            fit_s, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        # from the call to the last callback's on_train_end: everything every callback did
        # (sagetrack's run first), without Keras' teardown after training, which on this
        # machine sometimes stalls ~4 s whatever the callbacks (see docs/benchmarks.md)
        wall = timer.ended - t0 if timer.ended is not None else fit_s
        if rec is not None:
            # what the fit handed to the writer (its last epoch included) is written
            # after fit() returns: let it be written, outside the timed region, and count
            # its CPU too (the threads end at close, so read their clocks before that)
            _settle(rec.writer)
            writer_cpu = _common.thread_cpu("sagetrack", exclude=threads_before) - writer0
            writes = getattr(rec.writer, "uploads", writes0) - writes0
    records = _recorded_rows(rec, variant, args.epochs) if rec is not None else None
    if rec is not None:
        expected = args.epochs * (-(-args.images // args.batch_size) if "batch" in variant
                                  else 1)
        if records != expected:
            raise RuntimeError(f"{variant}: {records} rows recorded, expected {expected}")
    return Trial(variant, round_no, wall, cpu, args.epochs, load, records, writer_cpu, writes,
                 fit_s)


def _end_of_training_timer() -> Any:
    """A Keras callback, placed last, that notes when on_train_end reached it."""
    import keras

    class EndOfTraining(keras.callbacks.Callback):  # type: ignore[misc]
        ended: float | None = None

        def on_train_end(self, logs: Any = None) -> None:
            self.ended = time.perf_counter()

    return EndOfTraining()


# -- analysis ------------------------------------------------------------------------------
def t_epochs(trials: list[Trial]) -> int:
    return trials[0].epochs if trials else 1


def analyse(trials: list[Trial], variants: list[str]) -> dict[str, Any]:
    measured = [t for t in trials if t.round > 0]
    base = {t.round: t for t in measured if t.variant == "untracked"}
    out: dict[str, Any] = {}
    for v in variants:
        mine = [t for t in measured if t.variant == v]
        if not mine:
            continue
        ratios = [t.epoch_s / base[t.round].epoch_s for t in mine if t.round in base]
        cpu_ratios = [t.cpu_s / base[t.round].cpu_s for t in mine if t.round in base]
        writer = [t.writer_cpu_s for t in mine if t.writer_cpu_s is not None]
        # min_ratio: the least-disturbed trial of each variant, robust to stalls that hit
        # some trials of every variant (the minimum is what timeit reports)
        fastest = min(t.epoch_s for t in measured if t.variant == "untracked")
        row: dict[str, Any] = {
            "epoch_s": summarize([t.epoch_s for t in mine]),
            "min_ratio": min(t.epoch_s for t in mine) / fastest,
            "writer_cpu_per_fit_s": summarize(writer) if writer else None,
            "cpu_per_epoch_s": summarize([t.cpu_s / t.epochs for t in mine]),
            "ratio": summarize(ratios), "cpu_ratio": summarize(cpu_ratios)}
        whole = [t.fit_s for t in mine if t.fit_s is not None]
        if whole:
            row["fit_s"] = summarize(whole)
        if writer and v != "untracked" and "untracked" in out:
            # a load-independent bound: the writer threads' CPU as a share of the
            # fastest untracked epoch (the least-disturbed one: the larger share)
            row["writer_cpu_share"] = (row["writer_cpu_per_fit_s"]["median"] / t_epochs(mine)
                                       / out["untracked"]["epoch_s"]["min"])
        writes = [t.store_writes for t in mine if t.store_writes is not None]
        if writes:
            row["store_writes_per_fit"] = summarize(writes)
        if v in TARGETS and ratios:
            target, q = TARGETS[v], row["ratio"]
            row["target_ratio"] = target
            row["meets_target"] = q["median"] <= target
            # the run's resolution: half the spread of the middle half of the paired
            # ratios. When it is coarser than the margin the target allows, or the middle
            # half straddles the target, the run cannot tell met from missed: say so.
            row["resolution"] = (q["p75"] - q["p25"]) / 2
            unclear = (len(ratios) < 3 or row["resolution"] > target - 1
                       or q["p25"] <= target <= q["p75"])
            row["verdict"] = ("inconclusive" if unclear
                              else "met" if row["meets_target"] else "MISSED")
        out[v] = row
    return out


def report(result: dict[str, Any], variants: list[str], args: argparse.Namespace,
           rounds: int, skipped: dict[str, str]) -> None:
    rows = []
    for v in variants:
        if v not in result:
            rows.append([v, "skipped", "", "", "", "", "", "", "", ""])
            continue
        r = result[v]
        e, ratio, cpu = r["epoch_s"], r["ratio"], r["cpu_ratio"]
        target = (f"<= {r['target_ratio']:.2f}: {r['verdict']} "
                  f"(+/-{r['resolution'] * 100:.1f}%)" if "target_ratio" in r else "")
        w = r.get("writer_cpu_per_fit_s")
        rows.append([v, fmt_s(e["median"]), f"{fmt_s(e['min'])}-{fmt_s(e['max'])}",
                     "1.000" if v == "untracked" else fmt_ratio(ratio["median"]),
                     "" if v == "untracked" else
                     f"{ratio['p25']:.3f}-{ratio['p75']:.3f} [{ratio['min']:.3f}-"
                     f"{ratio['max']:.3f}]",
                     "1.000" if v == "untracked" else fmt_ratio(r["min_ratio"]),
                     "1.000" if v == "untracked" else fmt_ratio(cpu["median"]),
                     f"{w['median'] * 1e3:.1f} ({r['writer_cpu_share'] * 100:.2f}%)"
                     if w and "writer_cpu_share" in r else "", target,
                     f"{fmt_s(r['fit_s']['median'])} [{fmt_s(r['fit_s']['min'])}-"
                     f"{fmt_s(r['fit_s']['max'])}]" if "fit_s" in r else ""])
    notes = [f"{rounds} measured rounds after 1 warm-up round; {args.epochs} epoch(s) of "
             f"{args.images} images (batch {args.batch_size}) per fit; device {args.device}.",
             "Epoch time: from the fit() call to the last callback's on_train_end (every "
             "callback's work, the tracker's first), per epoch; whole fit(): the call until "
             "it returns, Keras' teardown included, median [min-max].",
             "Ratio: median over rounds of (variant epoch time / same round's untracked "
             "epoch time); spread: IQR [min-max] of those ratios. Ratio of minima: fastest "
             "trial of the variant / fastest untracked trial. CPU: process CPU seconds, "
             "same pairing. Target: verdict and the run's resolution (half the IQR of the "
             "ratios); 'inconclusive' with fewer than 3 rounds, when the resolution is "
             "coarser than the margin, or when the IQR contains the target. Writer CPU: "
             "CPU time of sagetrack's writer threads for what the fit recorded, its last "
             "epoch's writes included (the start records are written before the fit, as "
             "in a job), and that CPU as "
             "a share of the fastest untracked epoch: a bound that machine load barely moves.",
             f"Load average during the run: {_load_note()}."]
    notes += [f"{v}: skipped - {why}" for v, why in skipped.items()]
    print_table("Training overhead: ResNet-20, CIFAR-format data",
                ["variant", "median epoch (s)", "min-max (s)", "ratio to untracked",
                 "ratio IQR [min-max]", "ratio of minima", "CPU ratio",
                 "writer CPU/fit, ms (% of epoch)",
                 "target", "whole fit() (s)"],
                rows, notes)


_LOADS: list[float] = []


def _load_note() -> str:
    if not _LOADS:
        return "n/a"
    return f"{min(_LOADS):.1f}-{max(_LOADS):.1f} (1-min, on {os.cpu_count()} CPUs)"


def reprint(path: Path, args: argparse.Namespace) -> int:
    """Analyse the trials of a saved run again and print its table."""
    import json

    doc = json.loads(path.read_text())
    trials = [Trial(**{k: v for k, v in t.items() if k != "epoch_s"}) for t in doc["trials"]]
    config = doc["config"]
    args.epochs, args.images = config["epochs_per_fit"], config["images"]
    args.batch_size, args.device = config["batch_size"], config["device"]
    variants = list(doc["variants"])
    _LOADS.extend(t.loadavg for t in trials)
    result = analyse(trials, variants)
    report(result, variants, args, config["rounds"], doc.get("skipped", {}))
    if doc.get("variants") != result:  # the analysis changed since: keep the file in step
        doc["variants"] = result
        doc["reanalysed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return reprint(args.from_json, args)
    _common.offline_environment()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        device = _select_device(args.device)
    started = time.perf_counter()
    needs_s3 = any(v.endswith("-s3") for v in args.variants)
    with tempfile.TemporaryDirectory(prefix="sagetrack-bench-") as tmp, \
            (_common.moto_server() if needs_s3 else contextlib.nullcontext(None)) as s3_url:
        bench = setup(args, Path(tmp), s3_url)
        variants = [v for v in args.variants if v not in bench.skipped]
        print(f"training overhead: variants {', '.join(variants)}; model "
              f"{bench.model.count_params():,} parameters", flush=True)
        trials: list[Trial] = []
        round_no = 0
        while round_no <= args.rounds:
            t_round = time.perf_counter()
            order = variants[round_no % len(variants):] + variants[:round_no % len(variants)]
            for v in order:
                trials.append(run_trial(bench, v, round_no, device))
            took = time.perf_counter() - t_round
            label = "warm-up" if round_no == 0 else f"round {round_no}/{args.rounds}"
            print(f"  {label}: " + ", ".join(
                f"{t.variant} {t.epoch_s:.2f}s" for t in trials[-len(order):])
                + f" ({took:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)
            round_no += 1
            elapsed = time.perf_counter() - started
            if round_no > args.min_rounds and elapsed + took > args.budget_s:
                print(f"  time budget reached after {round_no - 1} measured rounds",
                      flush=True)
                break
        measured_rounds = round_no - 1
        result = analyse(trials, variants)
    report(result, variants, args, measured_rounds, bench.skipped)
    write_results(NAME, {
        "config": {"images": args.images, "batch_size": args.batch_size,
                   "epochs_per_fit": args.epochs, "rounds": measured_rounds,
                   "device": args.device, "seed": args.seed,
                   "model_params": int(bench.model.count_params()),
                   "mlflow_store": (bench.mlflow.get_tracking_uri().split(":", 1)[0]
                                    if bench.mlflow else None)},
        "variants": result,
        "skipped": bench.skipped,
        "trials": [vars(t) | {"epoch_s": t.epoch_s} for t in trials],
        "elapsed_s": time.perf_counter() - started,
    }, quick=args.quick, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
