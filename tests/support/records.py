"""Runs written straight into a store in the documented layout (``store/schema.py``).

``write_run`` produces the same files the estimator and the container write, so the
reader, ``diff``, the index and the CLI are tested on real records without launching
jobs. ``store_uri`` gives each test a fresh store: a local folder, or S3 under moto.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from sagetrack.api import Store
from sagetrack.store.backends import Backend, open_backend
from sagetrack.store.layout import FORMAT, dumps, dumps_row

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.16-cpu-py310"
PACKAGES = ["keras==3.3.3", "numpy==1.26.4", "tensorflow==2.16.1"]
DIFF_A = ("diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n"
          "-print('old')\n+print('lr 0.1')\n")
DIFF_B = ("diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n"
          "-print('old')\n+print('lr 0.05')\n")


@functools.lru_cache(maxsize=4)
def _s3_client(endpoint: str | None) -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint)


def backend(uri: str) -> Backend:
    """The store's backend; S3 backends share one client (creating one takes ~0.2 s)."""
    return open_backend(uri, client=_s3_client(os.environ.get("AWS_ENDPOINT_URL"))
                        if uri.startswith("s3://") else None)


def open_store(uri: str) -> Store:
    """``Store(uri)`` with the shared S3 client."""
    return Store(uri, s3_client=_s3_client(os.environ.get("AWS_ENDPOINT_URL"))
                 if uri.startswith("s3://") else None)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_run(uri: str, experiment: str, run_id: str, *, params: dict[str, Any] | None = None,
              losses: list[float] | None = None, status: str = "completed",
              started: str = "2024-05-01T10:00:00.000+00:00",
              ended: str | None = "2024-05-01T10:12:30.000+00:00", commit: str = "a" * 40,
              diff: str = "", content: str = "code-1", data: str = "data-1",
              objects: int = 3, packages: list[str] | None = None,
              instance_type: str = "ml.m5.xlarge", failure: dict[str, Any] | None = None,
              files: list[str] | None = None, job_doc: dict[str, Any] | None = None) -> None:
    """Write one run's records; ``losses`` give one epoch each (accuracy = 1 - loss)."""
    out = backend(uri)
    prefix = f"{experiment}/{run_id}"
    params = {"epochs": 3, "learning-rate": 0.1, "batch-size": 128,
              "model_dir": f"s3://bucket/{run_id}/model", **(params or {})}
    losses = [0.9, 0.5, 0.4] if losses is None else losses
    record = {
        "format": FORMAT, "run_id": run_id, "experiment": experiment, "created": started,
        "user": "alice", "client_host": "laptop", "sagetrack_version": "0.1.0",
        "sagemaker_sdk_version": "2.257.7", "params": params,
        "sagemaker_params": {"sagemaker_program": "train.py"},
        "code": {"entry_point": "train.py", "source_dir": "/home/alice/proj/src", "git": True,
                 "commit": commit, "branch": "main", "remote": "https://git.example.com/p.git",
                 "dirty": bool(diff), "diff_file": "code.diff" if diff else None,
                 "tarball": {"uri": f"s3://bucket/{run_id}/source/sourcedir.tar.gz",
                             "sha256": _sha(content + "tar"), "content_sha256": _sha(content),
                             "files": files or ["train.py"], "file_count": len(files or [1])}},
        "inputs": {"training": {"uri": "s3://bucket/cifar/train", "objects": objects,
                                "bytes": objects * 1000, "sha256": _sha(data),
                                "data_type": "S3Prefix"}},
        "job": {"image_uri": IMAGE, "instance_type": instance_type, "instance_count": 1,
                "framework_version": "2.16", "py_version": "py310", "region": "us-east-1",
                "role": "arn:aws:iam::123456789012:role/SageMakerRole",
                "output_path": "s3://bucket/", "environment": {}, "base_job_name": "resnet",
                "metric_definitions": [], "use_spot_instances": False},
        "artifacts": {"model": f"s3://bucket/{run_id}/output/model.tar.gz"},
        "tracking": {"uri": uri, "track_batches": 0}, "reproduces": None,
    }
    epochs = [{"epoch": i + 1, "time": started, "duration_s": 250.0,
               "metrics": {"loss": loss, "accuracy": 1 - loss, "val_loss": loss + 0.1,
                           "val_accuracy": 0.9 - loss}, "fit": 0, "attempt": 1}
              for i, loss in enumerate(losses)]
    out.put(f"{prefix}/run.json", dumps(record))
    if diff:
        out.put(f"{prefix}/code.diff", diff.encode())
    out.put(f"{prefix}/status.json", dumps({
        "format": FORMAT, "run_id": run_id, "experiment": experiment, "status": status,
        "started": started, "updated": ended or started, "ended": ended, "attempt": 1,
        "last_epoch": len(epochs) or None,
        "metrics": epochs[-1]["metrics"] if epochs else {}, "failure": failure}))
    if epochs:
        out.put(f"{prefix}/metrics.jsonl", "".join(dumps_row(r) for r in epochs).encode())
    out.put(f"{prefix}/environment.json", dumps({
        "python": "3.10.14", "tensorflow": "2.16.1", "keras": "3.3.3", "keras_flavour": "keras",
        "cpu_count": 4, "gpu_count": 0, "host_count": 1,
        "packages": PACKAGES if packages is None else packages}))
    out.put(f"{prefix}/model.json", dumps({"format": FORMAT, "files": [
        {"path": "model.keras", "bytes": 1234, "sha256": "c" * 64}], "total_bytes": 1234}))
    if job_doc is not None:
        out.put(f"{prefix}/job.json", dumps({"format": FORMAT, **job_doc}))


def write_pair(uri: str, experiment: str = "resnet") -> tuple[str, str]:
    """The example's two runs: B halves the learning rate, adds warmup, changes the
    uncommitted diff, gets one more training object and a newer numpy."""
    write_run(uri, experiment, "resnet-a", diff=DIFF_A, losses=[0.9, 0.5, 0.45],
              files=["train.py", "cifar.py"])
    write_run(uri, experiment, "resnet-b", params={"learning-rate": 0.05, "warmup": 2},
              diff=DIFF_B, content="code-2", data="data-2", objects=4,
              losses=[0.8, 0.35, 0.4], started="2024-05-02T09:00:00.000+00:00",
              ended="2024-05-02T09:20:00.000+00:00", files=["train.py", "cifar.py", "aug.py"],
              packages=["keras==3.3.3", "numpy==2.0.0", "tensorflow==2.16.1", "rich==13.0"])
    return "resnet-a", "resnet-b"


@pytest.fixture(params=["local", "s3"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh, empty store: a local folder, or a prefix of a moto S3 bucket."""
    if request.param == "local":
        path = tmp_path / "store"
        path.mkdir()
        return str(path)
    aws = request.getfixturevalue("aws")
    return f"s3://{aws.bucket}/sagetrack"


def write_offline_run(root: Path, experiment: str, run_id: str, **kwargs: Any) -> None:
    """:func:`write_run` into the store folder ``root/store``, with a real code tarball
    and input folder under ``root`` (``file://``), so that ``checkout`` and ``reproduce
    --dry-run`` work without AWS."""
    import io
    import tarfile

    from sagetrack.client.provenance import fingerprint_channel

    store = root / "store"
    write_run(str(store), experiment, run_id, **kwargs)
    data = root / "data"
    if not data.is_dir():
        data.mkdir(parents=True)
        (data / "part-0.csv").write_text("x,y\n1,2\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        body = b"print('training')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    tarball = root / f"{run_id}-sourcedir.tar.gz"
    tarball.write_bytes(buf.getvalue())
    key = f"{experiment}/{run_id}/run.json"
    out = backend(str(store))
    record = json.loads(out.get(key))
    record["code"]["tarball"].update(uri=f"file://{tarball}",
                                     sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    channel = fingerprint_channel(None, f"file://{data}")
    record["inputs"]["training"].update(channel, data_type="S3Prefix")
    out.put(key, dumps(record))


def write_custom_loop_run(uri: str, experiment: str, run_id: str,
                          lines: list[dict[str, float]], *, old_format: bool = False,
                          **kwargs: Any) -> None:
    """A custom-loop run: no epoch rows; each item of ``lines`` is the values that
    ``metric_definitions`` matched on one printed output line, in ``steps.jsonl`` as the
    recorder writes them (one row per value, ``seq``, the values of one line sharing a
    step) or, ``old_format``, as earlier versions did (no ``seq``; each metric numbered
    from 0). ``status.json`` holds the last value of each metric, as the recorder's."""
    write_run(uri, experiment, run_id, losses=[], **kwargs)
    out = backend(uri)
    rows: list[dict[str, Any]] = []
    per_metric: dict[str, int] = {}
    for i, values in enumerate(lines):
        when = f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}.000+00:00"
        for name, value in values.items():
            step = per_metric.get(name, 0) if old_format else i
            per_metric[name] = per_metric.get(name, 0) + 1
            row: dict[str, Any] = {"step": step, "time": when, "metrics": {name: value},
                                   "source": "output", "attempt": 1}
            if not old_format:
                row["seq"] = len(rows)
            rows.append(row)
    out.put(f"{experiment}/{run_id}/steps.jsonl", "".join(dumps_row(r) for r in rows).encode())
    status = json.loads(out.get(f"{experiment}/{run_id}/status.json"))
    status["metrics"] = {k: v for values in lines for k, v in values.items()}
    out.put(f"{experiment}/{run_id}/status.json", dumps(status))


#: a third-party custom loop over 2 epochs: three training lines per epoch, then a line
#: with the epoch's validation values (what its ``metric_definitions`` match)
CUSTOM_LOOP_LINES: list[dict[str, float]] = [
    {"train:loss": 0.9}, {"train:loss": 0.8}, {"train:loss": 0.7},
    {"val:loss": 0.75, "val:acc": 0.6},
    {"train:loss": 0.6}, {"train:loss": 0.5}, {"train:loss": 0.4},
    {"val:loss": 0.55, "val:acc": 0.7},
]
