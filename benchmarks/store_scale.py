"""How listing and comparing scale: 1,000 runs x 100 epochs, in S3 (moto) and a folder.

Creates ``--runs`` runs (records in the documented layout: ``run.json``, ``status.json``,
``metrics.jsonl`` with ``--epochs`` rows) in a moto S3 server on 127.0.0.1 (a child
process, so the server does not share this process's GIL) and in a local folder, then
times, for each store:

* ``list, no index``       ``Store.list_runs()``: 1 LIST + 3 GETs per run, concurrent;
* ``metrics, no index``    ``Store.metrics(runs)``: one GET of ``metrics.jsonl`` per run;
* ``build index``          ``Store.refresh_index()`` (reads every run once, writes 2 objects);
* ``list, index``          ``Store.list_runs()`` with the index: 1 LIST + 1 GET;
* ``metrics, index``       ``Store.metrics()`` with the index: + 1 GET;
* ``list, index + 10 new`` after 10 more runs: the index plus 3 GETs per new run;
* ``sagetrack runs``       the command end to end (new process, imports, client, table).

Timings are the median of ``--repeat`` rounds (each round uses a new ``Store``; the S3
client is shared, as a notebook session would). Results: ``results/store_scale.json``.

    python benchmarks/store_scale.py              # 1,000 runs x 100 epochs
    python benchmarks/store_scale.py --quick      # 100 runs x 20 epochs
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ROOT,
    moto_server,
    offline_environment,
    print_table,
    write_results,
)

__all__ = ["main"]

EXPERIMENT = "resnet"


def _record(run_id: str, i: int) -> dict[str, Any]:
    sha = f"{i:064x}"
    return {
        "format": "sagetrack/1", "run_id": run_id, "experiment": EXPERIMENT,
        "created": "2024-05-01T10:00:00.000+00:00", "user": "alice", "client_host": "laptop",
        "sagetrack_version": "0.1.0", "sagemaker_sdk_version": "2.257.7",
        "params": {"epochs": 100, "learning-rate": round(0.1 / (1 + i % 7), 5),
                   "batch-size": 64 * (1 + i % 4), "depth": 20 + 6 * (i % 3),
                   "model_dir": f"s3://bucket/{run_id}/model"},
        "sagemaker_params": {"sagemaker_program": "train.py"},
        "code": {"entry_point": "train.py", "git": True, "commit": "a" * 40, "branch": "main",
                 "remote": "https://git.example.com/p.git", "dirty": i % 5 == 0,
                 "tarball": {"uri": f"s3://bucket/{run_id}/source/sourcedir.tar.gz",
                             "sha256": sha, "content_sha256": sha,
                             "files": ["train.py", "cifar.py"], "file_count": 2}},
        "inputs": {"training": {"uri": "s3://bucket/cifar/train", "objects": 50,
                                "bytes": 150_000_000, "sha256": "b" * 64,
                                "data_type": "S3Prefix"}},
        "job": {"image_uri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
                             "tensorflow-training:2.16-gpu-py310",
                "instance_type": "ml.g5.xlarge", "instance_count": 1,
                "framework_version": "2.16", "py_version": "py310", "region": "us-east-1",
                "role": "arn:aws:iam::123456789012:role/SageMakerRole",
                "output_path": "s3://bucket/", "environment": {}, "base_job_name": "resnet"},
        "tracking": {"track_batches": 0},
    }


def _files(i: int, epochs: int) -> dict[str, bytes]:
    from sagetrack.store.layout import dumps, dumps_row

    run_id = f"resnet-2024-05-01-{i:06d}"
    rows = [{"epoch": e, "time": "2024-05-01T10:00:00.000+00:00", "duration_s": 31.5,
             "metrics": {"loss": 2.0 / e + i * 1e-4, "accuracy": 1 - 1.0 / (e + 1),
                         "val_loss": 2.1 / e, "val_accuracy": 1 - 1.1 / (e + 1),
                         "learning_rate": 0.1 / e}, "fit": 0, "attempt": 1}
            for e in range(1, epochs + 1)]
    status = {"format": "sagetrack/1", "run_id": run_id, "experiment": EXPERIMENT,
              "status": "completed", "started": f"2024-05-01T{i // 60 % 24:02d}:{i % 60:02d}"
                                                ":00.000+00:00",
              "ended": "2024-05-02T00:00:00.000+00:00", "attempt": 1, "last_epoch": epochs,
              "metrics": rows[-1]["metrics"] if rows else {}, "failure": None}
    prefix = f"{EXPERIMENT}/{run_id}"
    return {f"{prefix}/run.json": dumps(_record(run_id, i)),
            f"{prefix}/status.json": dumps(status),
            f"{prefix}/metrics.jsonl": "".join(dumps_row(r) for r in rows).encode()}


def populate(backend: Any, start: int, count: int, epochs: int) -> None:
    """Write runs ``start .. start+count-1`` (16 writers)."""
    def write(i: int) -> None:
        for key, data in _files(i, epochs).items():
            backend.put(key, data)

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, range(start, start + count)))


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Median wall time of ``repeat`` calls, all times, the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def bench_store(label: str, uri: str, client: Any, runs: int, epochs: int, repeat: int,
                env: dict[str, str]) -> list[dict[str, Any]]:
    from sagetrack.store.backends import open_backend
    from sagetrack.store.reader import Store

    def store() -> Store:
        return Store(uri, s3_client=client)

    backend = open_backend(uri, client=client)
    t0 = time.perf_counter()
    populate(backend, 0, runs, epochs)
    print(f"{label}: wrote {runs} runs x {epochs} epochs in {time.perf_counter() - t0:.1f} s",
          flush=True)
    out: list[dict[str, Any]] = []

    def record(what: str, fn: Callable[[], Any], check: Callable[[Any], bool], n: int = repeat,
               note: str = "") -> None:
        median, times, result = timed(fn, n)
        if not check(result):
            raise AssertionError(f"{label} {what}: unexpected result")
        out.append({"store": label, "operation": what, "runs": runs, "median_s": median,
                    "times_s": times, "note": note})
        print(f"  {what:<24} {median:7.3f} s", flush=True)

    def list_cold() -> list[Any]:
        return store().list_runs()

    def metrics_cold() -> Any:
        s = store()
        return s.metrics(s.list_runs())  # list_runs warms record/status; metrics loads rows

    record("list, no index", list_cold, lambda r: len(r) == runs)
    record("list + metrics, no index", metrics_cold, lambda f: len(f) == runs * epochs,
           note="includes the listing")
    record("build index", lambda: store().refresh_index(rebuild=True),
           lambda s: s[EXPERIMENT]["indexed"] == runs, n=1)
    record("list, index", list_cold, lambda r: len(r) == runs)
    record("list + metrics, index", metrics_cold, lambda f: len(f) == runs * epochs,
           note="includes the listing")
    populate(backend, runs, 10, epochs)
    record("list, index + 10 new", list_cold, lambda r: len(r) == runs + 10, n=1,
           note="10 runs not in the index yet")

    def cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sagetrack.cli", "runs", "--uri", uri,
                               "--limit", "20"], capture_output=True, text=True, env=env,
                              timeout=600, check=True)

    record("sagetrack runs (CLI)", cli, lambda p: "resnet-2024" in p.stdout,
           note="new process: imports, S3 client, index refresh, table")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table and write ``results/store_scale[.quick].json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 runs x 20 epochs, 1 round")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.epochs, args.repeat = 100, 20, 1
    offline_environment()
    import boto3
    from botocore.config import Config

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sagetrack-scale-") as tmp, moto_server() as url:
        os.environ["AWS_ENDPOINT_URL"] = url
        client = boto3.session.Session().client(
            "s3", config=Config(max_pool_connections=32, retries={"max_attempts": 2}))
        client.create_bucket(Bucket="store-scale")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        results += bench_store("s3 (moto)", "s3://store-scale/sagetrack", client, args.runs,
                               args.epochs, args.repeat, env)
        results += bench_store("local folder", str(Path(tmp) / "store"), None, args.runs,
                               args.epochs, args.repeat, env)
    rows = [[r["operation"], r["store"], f"{r['median_s']:.3f}", r["note"]] for r in results]
    print_table(f"{args.runs} runs x {args.epochs} epochs (median of {args.repeat})",
                ["operation", "store", "seconds", "note"], rows,
                notes=["moto runs in a child process on this machine; times include it."])
    write_results("store_scale", {"runs": args.runs, "epochs": args.epochs,
                                  "repeat": args.repeat, "results": results},
                  quick=args.quick, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
