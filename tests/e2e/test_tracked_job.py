"""End to end: sagetrack.TensorFlow -> SDK -> code tarball -> real toolkit -> store.

Each job runs once per module under the local process runner (the same container
contract SageMaker uses, no Docker) with moto standing in for S3.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sagetrack import TensorFlow
from sagetrack.client.validation import console_metric_definitions
from sagetrack.store.reader import Store

from ..conftest import ROLE, git
from .conftest import local_session

pytestmark = pytest.mark.slow

STRICT_KERAS = """
    import argparse, json, os
    import numpy as np
    import keras

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--optimizer", required=True)  # the toolkit passes "lr=0.05,name=sgd"
    parser.add_argument("--model_dir")
    args = parser.parse_args()  # strict: any extra argument is an error

    data = np.load(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "train.npz"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    optimizer = json.loads(os.environ["SM_HPS"])["optimizer"]  # the decoded dict
    model.compile(keras.optimizers.SGD(optimizer["lr"]),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(data["x"], data["y"], epochs=args.epochs, batch_size=args.batch_size,
                        validation_split=0.25, verbose=2)
    model.save(os.path.join(os.environ["SM_MODEL_DIR"], "model.keras"))
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "history.json"), "w") as fh:
        json.dump(history.history, fh)
"""


def write(folder: Path, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(script))
    return folder


def launch(aws: Any, work: Path, source: Path, inputs: Any, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("instance_count", 1)
    est = TensorFlow(entry_point="train.py", source_dir=str(source), role=ROLE,
                     instance_type="local", framework_version="2.16", py_version="py310",
                     sagemaker_session=local_session(aws, work / "jobs"), **kwargs)
    out = io.StringIO()
    error = None
    with contextlib.redirect_stdout(out):
        try:
            est.fit(inputs, wait=True, logs="All")
        except Exception as exc:
            error = exc
    return {"estimator": est, "stdout": out.getvalue(), "error": error}


@pytest.fixture(scope="module")
def keras_job(e2e_aws, tmp_path_factory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("keras-job")
    repo = work / "repo"
    source = write(repo / "trainer", STRICT_KERAS)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    (source / "train.py").write_text((source / "train.py").read_text() + "# tuned\n")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=(x[:, 0] > 0).astype("int32"))
    e2e_aws.s3.put_object(Bucket=e2e_aws.bucket, Key="data/train/train.npz",
                          Body=buffer.getvalue())
    job = launch(e2e_aws, work, source, {"training": f"s3://{e2e_aws.bucket}/data/train"},
                 hyperparameters={"epochs": 3, "batch-size": 16,
                                  "optimizer": {"name": "sgd", "lr": 0.05}},
                 tracking_uri=f"s3://{e2e_aws.bucket}/sagetrack", experiment="e2e")
    job["repo"] = repo
    return job


def test_keras_job_completes_with_full_record(keras_job, e2e_aws):
    assert keras_job["error"] is None, keras_job["stdout"][-3000:]
    est = keras_job["estimator"]
    run = est.latest_run
    assert run.status == "completed"
    assert run.params == {"epochs": 3, "batch-size": 16, "optimizer": {"name": "sgd", "lr": 0.05},
                          "model_dir": f"s3://{e2e_aws.bucket}/{run.id}/model"}
    assert run.code["commit"] == git(keras_job["repo"], "rev-parse", "HEAD").strip()
    assert run.code["dirty"] is True and "+# tuned" in run.diff
    assert run.inputs["training"]["objects"] == 1
    # the metrics equal what Keras returned inside the job (saved by the script)
    history = json.loads(_output_member(e2e_aws, run.id, "history.json"))
    frame = run.metrics
    assert list(frame.index) == [1, 2, 3]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(frame[name], history[name], rtol=1e-6)
    assert run.environment["argv"][1:] == ["--batch-size", "16", "--epochs", "3", "--model_dir",
                                           f"s3://{e2e_aws.bucket}/{run.id}/model",
                                           "--optimizer", "lr=0.05,name=sgd"]
    assert run.model["files"][0]["path"] == "model.keras"
    assert run.model["uri"] == f"s3://{e2e_aws.bucket}/{run.id}/output/model.tar.gz"
    assert run.job["status"] == "Completed"


def test_console_metric_lines_match_the_definitions(keras_job):
    run = keras_job["estimator"].latest_run
    (definition,) = console_metric_definitions(["val_loss"])
    values = [float(v) for v in re.findall(definition["Regex"], keras_job["stdout"])]
    assert values == pytest.approx(list(run.metrics["val_loss"]), rel=1e-6)


def _output_member(aws: Any, job: str, name: str) -> bytes:
    import tarfile

    data = aws.read(f"{job}/output/output.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def test_local_copy_travels_in_output_tar(keras_job, e2e_aws):
    run = keras_job["estimator"].latest_run
    status = json.loads(_output_member(e2e_aws, run.id,
                                       f"sagetrack/e2e/{run.id}/status.json"))
    assert status["status"] == "completed" and status["last_epoch"] == 3


CUSTOM_LOOP = """
    import argparse
    import sagetrack
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int)
    parser.add_argument("--model_dir")
    args = parser.parse_args()
    loss = 1.0
    for step in range(args.steps):
        loss *= 0.5
        print(f"step={step} train-loss: {loss:.5f}", flush=True)
        sagetrack.log_metrics(step=step, accuracy=1 - loss)
"""


@pytest.fixture(scope="module")
def custom_loop_job(e2e_aws, tmp_path_factory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("custom-loop")
    source = write(work / "plain", CUSTOM_LOOP)  # not in a git repository
    job = launch(e2e_aws, work, source, f"file://{source}", hyperparameters={"steps": 4},
                 metric_definitions=[{"Name": "train:loss",
                                      "Regex": r"train-loss: ([0-9.]+)"}],
                 tracking_uri=str(work / "store"), experiment="loops")
    job["store"] = work / "store"
    return job


def test_custom_loop_is_tracked_in_a_local_store(custom_loop_job):
    assert custom_loop_job["error"] is None, custom_loop_job["stdout"][-3000:]
    run = Store(str(custom_loop_job["store"])).run(
        custom_loop_job["estimator"].latest_training_job.name)
    assert run.status == "completed"
    assert run.code["git"] is False
    steps = run.steps
    assert list(steps["train:loss"]) == [0.5, 0.25, 0.125, 0.0625]
    assert list(steps["accuracy"]) == [0.5, 0.75, 0.875, 0.9375]
    assert run.inputs["training"]["uri"].startswith("file://")
    assert run.metrics.empty


FAILING = """
    import sys
    def load():
        raise FileNotFoundError("no training data in /opt/ml/input/data/training")
    print("starting", flush=True)
    load()
"""


def test_failing_script_gives_failed_job_and_failed_run(e2e_aws, tmp_path):
    from sagemaker.exceptions import UnexpectedStatusException

    source = write(tmp_path / "failing", FAILING)
    e2e_aws.s3.put_object(Bucket=e2e_aws.bucket, Key="misc/readme.txt", Body=b"x")
    job = launch(e2e_aws, tmp_path, source, f"s3://{e2e_aws.bucket}/misc",
                 tracking_uri=str(tmp_path / "store"))
    assert isinstance(job["error"], UnexpectedStatusException)
    desc = job["estimator"].latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Failed"
    assert "no training data" in desc["FailureReason"]
    run = Store(str(tmp_path / "store")).run(desc["TrainingJobName"])
    assert run.status == "failed"
    assert run.failure["type"] == "FileNotFoundError"
    assert "in load" in run.failure["traceback"]
    assert run.job["status"] == "Failed"


MULTI_WORKER = """
    import argparse, json, os
    import numpy as np
    import tensorflow as tf
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--model_dir")
    args = parser.parse_args()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(8).with_options(options)
    model.fit(data, epochs=args.epochs, steps_per_epoch=4, verbose=2)
"""


def test_two_host_multi_worker_job_is_one_run(e2e_aws, tmp_path):
    source = write(tmp_path / "mw", MULTI_WORKER)
    e2e_aws.s3.put_object(Bucket=e2e_aws.bucket, Key="misc/readme.txt", Body=b"x")
    job = launch(e2e_aws, tmp_path, source, f"s3://{e2e_aws.bucket}/misc",
                 instance_count=2, hyperparameters={"epochs": 2},
                 distribution={"multi_worker_mirrored_strategy": {"enabled": True}},
                 # Keras 3's fit rejects MWMS-distributed batches; Keras 2 (tf_keras) takes them
                 environment={"TF_USE_LEGACY_KERAS": "1"},
                 tracking_uri=str(tmp_path / "store"), experiment="mw")
    assert job["error"] is None, job["stdout"][-4000:]
    store = Store(str(tmp_path / "store"))
    (run,) = store.list_runs("mw")
    assert run.status == "completed"
    assert list(run.metrics.index) == [1, 2]  # once, from the chief
    hosts = sorted(p.name for p in (tmp_path / "store/mw" / run.id / "hosts").iterdir())
    assert hosts == ["algo-1.json", "algo-2.json"]
    assert run.environment["host"] == "algo-1" and run.environment["host_count"] == 2
    assert run.environment["keras_flavour"] == "tf_keras"


def test_reproduce_runs_again_under_local_mode_and_links_the_original(keras_job, e2e_aws,
                                                                      tmp_path):
    import sagetrack

    original = keras_job["estimator"].latest_run
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        est = sagetrack.reproduce(original, wait=True, logs="None",
                                  sagemaker_session=local_session(e2e_aws, tmp_path / "jobs"),
                                  instance_type="local")
    again = est.latest_run
    assert again.id != original.id and again.status == "completed", out.getvalue()[-3000:]
    params = {k: v for k, v in again.params.items() if k != "model_dir"}
    assert params == {k: v for k, v in original.params.items() if k != "model_dir"}
    assert again.code["tarball"]["uri"] == original.code["tarball"]["uri"]
    assert again.code["tarball"]["content_sha256"] == original.code["tarball"]["content_sha256"]
    assert again.code["commit"] == original.code["commit"]  # the original's git state
    assert again.record["reproduces"]["run_id"] == original.id
    # same code, data and seed on CPU: the same learning curve
    np.testing.assert_allclose(again.metrics["loss"], original.metrics["loss"], rtol=1e-5)
