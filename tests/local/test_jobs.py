"""End-to-end: the real TensorFlow estimator -> LocalProcessSession -> sagemaker-training."""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sagemaker.exceptions import UnexpectedStatusException
from sagemaker.inputs import TrainingInput
from sagemaker.tensorflow import TensorFlow

from tests.local.helpers import (
    local_aws_env,
    make_estimator,
    s3_keys,
    tar_members,
    write_source,
)

pytestmark = pytest.mark.slow

NOT_A_PACKAGE = "sagetrack-local-no-such-package"

PLAIN_SCRIPT = """
import argparse, json, os, sys

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--name", type=str, required=True)
parser.add_argument("--model_dir", type=str, required=True)
args = parser.parse_args()  # strict: any unexpected argument fails the job

def listing(channel):
    root = os.environ["SM_CHANNEL_" + channel.upper()]
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )

host = os.environ["SM_CURRENT_HOST"]
report = {
    "args": vars(args),
    "training": listing("training"),
    "extra": listing("extra"),
    "sharded": listing("sharded"),
    "nested": open(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "sub", "b.txt")).read(),
    "env": {k: os.environ.get(k) for k in (
        "SM_HOSTS", "SM_CURRENT_HOST", "SM_MODULE_DIR", "TRAINING_JOB_NAME",
        "TRAINING_JOB_ARN", "TF_CONFIG", "MY_FLAG")},
}
print("REPORT " + json.dumps(report), flush=True)
print("to stderr from " + host, file=sys.stderr, flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.txt"), "w") as f:
    f.write("trained by " + host)
with open(os.path.join(os.environ["SM_MODEL_DIR"], host + ".txt"), "w") as f:
    f.write(host)
os.makedirs(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "eval"))
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "eval", host + ".json"), "w") as f:
    json.dump({"acc": 0.5}, f)
"""


def _reports(text: str) -> dict[str, dict[str, Any]]:
    """The REPORT line of each host, from the prefixed log (``[algo-1] REPORT {...}``)."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        for host in ("algo-1", "algo-2"):
            if line.startswith(f"[{host}] REPORT "):
                out[host] = json.loads(line[len(f"[{host}] REPORT ") :])
    return out


@pytest.fixture(scope="module")
def plain_job(
    local_moto: dict[str, str],
    make_session: Any,
    tmp_path_factory: pytest.TempPathFactory,
    mwms_job: Any,
    venv_job: Any,
) -> dict[str, Any]:
    """One Completed 2-host job (s3://, file:// and sharded channels) and its stdout.

    It depends on the background jobs only so that they run while this one does (the
    machine has two cores; each job mostly keeps one busy).
    """
    import boto3

    tmp = tmp_path_factory.mktemp("plain")
    bucket = local_moto["bucket"]
    with local_aws_env(local_moto):
        s3 = boto3.client("s3")
        for key in ("plain/train/a.txt", "plain/train/sub/b.txt"):
            s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        for i in range(4):
            s3.put_object(Bucket=bucket, Key=f"plain/shards/part-{i}.txt", Body=b"x")
        extra = tmp / "extra"
        extra.mkdir()
        (extra / "c.txt").write_text("c")
        src = write_source(
            tmp / "src",
            PLAIN_SCRIPT,
            {"requirements.txt": f"{NOT_A_PACKAGE}==9.9.9\n"},
        )
        session = make_session(work_dir=tmp / "work", keep_work_dir=True)
        est = make_estimator(
            session,
            src,
            instance_count=2,
            hyperparameters={"epochs": 3, "lr": 0.1, "name": "a b"},
            environment={"MY_FLAG": "on"},
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            est.fit(
                {
                    "training": f"s3://{bucket}/plain/train",
                    "extra": f"file://{extra}",
                    "sharded": TrainingInput(
                        f"s3://{bucket}/plain/shards", distribution="ShardedByS3Key"
                    ),
                }
            )
    return {"est": est, "session": session, "stdout": out.getvalue(), "work": tmp / "work"}


def test_plain_job_completes_with_hyperparameters_and_channels(plain_job: dict[str, Any]) -> None:
    desc = plain_job["est"].latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["SecondaryStatus"] == "Completed"
    reports = _reports(plain_job["stdout"])
    assert set(reports) == {"algo-1", "algo-2"}
    for host, report in reports.items():
        assert report["args"]["epochs"] == 3
        assert report["args"]["lr"] == 0.1
        assert report["args"]["name"] == "a b"
        assert report["training"] == ["a.txt", "sub/b.txt"]
        assert report["nested"] == "plain/train/sub/b.txt"
        assert report["extra"] == ["c.txt"]
        assert len(report["sharded"]) == 2  # ShardedByS3Key: half of the 4 objects each
        env = report["env"]
        assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
        assert env["SM_CURRENT_HOST"] == host
        assert env["TRAINING_JOB_NAME"] == desc["TrainingJobName"]
        assert env["TRAINING_JOB_ARN"] == desc["TrainingJobArn"]
        assert env["SM_MODULE_DIR"].startswith("s3://")  # code came from S3, as on SageMaker
        assert env["TF_CONFIG"] is None
        assert env["MY_FLAG"] == "on"
    shards = reports["algo-1"]["sharded"] + reports["algo-2"]["sharded"]
    assert sorted(shards) == [f"part-{i}.txt" for i in range(4)]


def test_plain_job_uploads_model_and_output(
    plain_job: dict[str, Any], s3: Any, bucket: str, tmp_path: Path
) -> None:
    est = plain_job["est"]
    name = est.latest_training_job.name
    assert est.model_data == f"s3://{bucket}/{name}/output/model.tar.gz"
    assert set(s3_keys(s3, bucket, f"{name}/output/")) == {
        f"{name}/output/model.tar.gz",
        f"{name}/output/output.tar.gz",
    }
    # model/ and output/data/ of all hosts merged; on equal paths the later host wins.
    assert tar_members(s3, bucket, f"{name}/output/model.tar.gz", tmp_path) == {
        "weights.txt": b"trained by algo-2",
        "algo-1.txt": b"algo-1",
        "algo-2.txt": b"algo-2",
    }
    output = tar_members(s3, bucket, f"{name}/output/output.tar.gz", tmp_path)
    assert set(output) == {"eval/algo-1.json", "eval/algo-2.json"}
    assert json.loads(output["eval/algo-1.json"]) == {"acc": 0.5}


def test_plain_job_container_files_match_the_request(plain_job: dict[str, Any]) -> None:
    desc = plain_job["est"].latest_training_job.describe()
    (job_dir,) = glob.glob(str(plain_job["work"] / "runs" / f"{desc['TrainingJobName']}-*"))
    for host in ("algo-1", "algo-2"):
        base = Path(job_dir) / host
        config = base / "input" / "config"
        hps = json.loads((config / "hyperparameters.json").read_text())
        assert hps == desc["HyperParameters"]
        channels = json.loads((config / "inputdataconfig.json").read_text())
        assert channels["sharded"]["S3DistributionType"] == "ShardedByS3Key"
        assert set(channels) == {"training", "extra", "sharded"}
        resource = json.loads((config / "resourceconfig.json").read_text())
        assert resource["current_host"] == host
        assert resource["hosts"] == ["algo-1", "algo-2"]
        assert resource["network_interface_name"]
        assert (base / "output" / "success").exists()


def test_plain_job_logs_stream_to_stdout(plain_job: dict[str, Any]) -> None:
    out = plain_job["stdout"]
    # stdout and stderr of the script on both hosts, prefixed with the host name
    for host in ("algo-1", "algo-2"):
        assert f"[{host}] REPORT " in out and f"[{host}] to stderr from {host}" in out
    assert "Reporting training SUCCESS" in out  # the toolkit itself ran
    assert "Training - Training image download completed" in out
    assert out.index("REPORT ") < out.index("Completed - Training job completed")


def test_requirements_are_not_installed_by_default(plain_job: dict[str, Any]) -> None:
    out = plain_job["stdout"]
    assert "NOT installing" in out and "install_requirements=True" in out
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution(NOT_A_PACKAGE)


def test_attach_from_new_sessions(
    plain_job: dict[str, Any], make_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = plain_job["est"].latest_training_job.name
    # Another session object in the same process, any work dir.
    attached = TensorFlow.attach(name, sagemaker_session=make_session())
    assert attached.latest_training_job.describe()["TrainingJobStatus"] == "Completed"
    assert attached.model_data == plain_job["est"].model_data
    assert attached.hyperparameters()["epochs"] == "3"
    # Only the state file left (as for another process): same work dir finds it.
    import sagetrack.local.client as client_module

    monkeypatch.setattr(client_module, "_REGISTRY", {})
    fresh = make_session(work_dir=plain_job["work"])
    desc = fresh.describe_training_job(name)
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == plain_job["est"].model_data
    again = TensorFlow.attach(name, sagemaker_session=fresh)
    assert again.model_data == plain_job["est"].model_data


def test_failing_job_raises_with_reason(
    make_session: Any, tmp_path: Path, bucket: str, s3: Any
) -> None:
    src = write_source(
        tmp_path / "src",
        """
        import sys
        print("about to fail", flush=True)
        raise ValueError("boom-4711")
        """,
    )
    est = make_estimator(make_session(), src, model_dir=False)
    with pytest.raises(UnexpectedStatusException) as err:
        est.fit(f"file://{tmp_path / 'src'}")
    assert "boom-4711" in str(err.value)
    desc = est.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Failed"
    assert "boom-4711" in desc["FailureReason"]
    assert desc["FailureReason"].startswith("AlgorithmError:")
    assert "ModelArtifacts" not in desc
    name = desc["TrainingJobName"]
    assert s3_keys(s3, bucket, f"{name}/output/") == [f"{name}/output/output.tar.gz"]


SIGTERM_SCRIPT = """
import os, signal, sys, time

def on_term(signum, frame):
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "sigterm.txt"), "w") as f:
        f.write("got SIGTERM")
    print("SIGTERM received, saved", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
print("READY", flush=True)
for _ in range(600):
    time.sleep(0.1)
print("never stopped", flush=True)
"""


def _wait_for_log(session: Any, name: str, text: str, capsys: Any, timeout: float = 90) -> str:
    """Poll logs_for_job(wait=False) (live output, job still running) until ``text`` shows."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.logs_for_job(name, wait=False)
        seen += capsys.readouterr().out
        if text in seen:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in the job's log:\n{seen}")


def test_stop_sends_sigterm_and_reports_stopped(
    make_session: Any, tmp_path: Path, bucket: str, s3: Any, capsys: Any
) -> None:
    session = make_session()
    src = write_source(tmp_path / "src", SIGTERM_SCRIPT)
    est = make_estimator(session, src, model_dir=False)
    est.fit(f"file://{src}", wait=False)
    name = est.latest_training_job.name
    seen = _wait_for_log(session, name, "READY", capsys)
    assert session.describe_training_job(name)["TrainingJobStatus"] == "InProgress"
    assert "never stopped" not in seen
    est.latest_training_job.stop()
    session.logs_for_job(name, wait=True)  # Stopped: returns (with the SDK's warning)
    out = capsys.readouterr().out
    assert "SIGTERM received, saved" in out
    desc = session.describe_training_job(name)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "Stopped"
    output = tar_members(s3, bucket, f"{name}/output/output.tar.gz", tmp_path)
    assert output["sigterm.txt"] == b"got SIGTERM"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"].endswith(f"{name}/output/model.tar.gz")


CHECKPOINT_SCRIPT = """
import json, os, time
import boto3

with open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "checkpointconfig.json")) as f:
    config = json.load(f)
local = config["LocalPath"]
path = os.path.join(local, "state", "step.txt")
step = int(open(path).read()) if os.path.exists(path) else 0
print(f"RESTORED step={step}", flush=True)
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    f.write(str(step + 1))
# Periodic sync: the file reaches S3 while the job still runs.
bucket, _, prefix = config["S3Path"][len("s3://"):].partition("/")
s3 = boto3.client("s3")
synced = False
for _ in range(100):
    body = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/state/step.txt")
    if body.get("KeyCount") and s3.get_object(
        Bucket=bucket, Key=prefix + "/state/step.txt"
    )["Body"].read() == str(step + 1).encode():
        synced = True
        break
    time.sleep(0.1)
print(f"SYNCED_WHILE_RUNNING={synced}", flush=True)
"""


def test_checkpoints_sync_and_restore(
    make_session: Any, tmp_path: Path, bucket: str, s3: Any, capsys: Any
) -> None:
    session = make_session()
    src = write_source(tmp_path / "src", CHECKPOINT_SCRIPT)
    ckpt = f"s3://{bucket}/ckpt-{tmp_path.name}"
    for run in (1, 2):
        est = make_estimator(session, src, model_dir=False, checkpoint_s3_uri=ckpt)
        est.fit(f"file://{src}")
        out = capsys.readouterr().out
        assert f"RESTORED step={run - 1}" in out
        assert "SYNCED_WHILE_RUNNING=True" in out
        desc = est.latest_training_job.describe()
        assert desc["CheckpointConfig"]["S3Uri"] == ckpt
        key = f"ckpt-{tmp_path.name}/state/step.txt"
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == str(run).encode()


MWMS_SCRIPT = """
import argparse, json, os
import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, required=True)
parser.add_argument("--model_dir", type=str)
args = parser.parse_args()

config = json.loads(os.environ["TF_CONFIG"])
strategy = tf.distribute.MultiWorkerMirroredStrategy()
rng = np.random.default_rng(0)
x = rng.random((64, 4), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(8).with_options(options)
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
history = model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=2)
host = os.environ["SM_CURRENT_HOST"]
chief = config["task"]["index"] == 0
target = os.environ["SM_MODEL_DIR"] if chief else os.path.join(os.environ["SM_OUTPUT_DIR"], "tmp")
os.makedirs(target, exist_ok=True)
model.save(os.path.join(target, "model.keras"))
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], host + ".json"), "w") as f:
    json.dump({"replicas": strategy.num_replicas_in_sync, "task": config["task"],
               "workers": config["cluster"]["worker"], "loss": history.history["loss"]}, f)
"""


@pytest.fixture(scope="module")
def mwms_job(
    local_moto: dict[str, str], make_session: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A 2-worker MultiWorkerMirroredStrategy job, started in the background (wait=False)."""
    tmp = tmp_path_factory.mktemp("mwms")
    with local_aws_env(local_moto):
        src = write_source(tmp / "src", MWMS_SCRIPT)
        est = make_estimator(
            make_session(),
            src,
            instance_count=2,
            model_dir=False,
            hyperparameters={"steps": 3},
            distribution={"multi_worker_mirrored_strategy": {"enabled": True}},
            # Keras 3's Model.fit does not accept MWMS-distributed batches; tf_keras does.
            environment={"TF_USE_LEGACY_KERAS": "1"},
        )
        est.fit(f"file://{src}", wait=False)
    yield est
    _stop_if_running(est)


VENV_SCRIPT = """
import sys, boto3
print("PYTHON " + sys.executable, flush=True)
"""


@pytest.fixture(scope="module")
def venv_job(
    local_moto: dict[str, str], make_session: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A job with install_requirements=True, started in the background (wait=False)."""
    tmp = tmp_path_factory.mktemp("venv")
    with local_aws_env(local_moto):
        # "boto3" is already satisfied, so pip needs no index (PIP_NO_INDEX keeps it offline).
        src = write_source(tmp / "src", VENV_SCRIPT, {"requirements.txt": "boto3\n"})
        est = make_estimator(
            make_session(install_requirements=True),
            src,
            model_dir=False,
            environment={"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        est.fit(f"file://{src}", wait=False)
    yield est
    _stop_if_running(est)


def _stop_if_running(est: Any) -> None:
    job = est.sagemaker_session.sagemaker_client.get_job(est.latest_training_job.name)
    if not job.is_done():
        job.stop()
        job.wait(60)


def test_multi_worker_mirrored_strategy_two_hosts(
    mwms_job: Any, tmp_path: Path, bucket: str, s3: Any
) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        mwms_job.latest_training_job.wait()  # streams the whole log, then checks the status
    desc = mwms_job.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Completed", out.getvalue()[-3000:]
    name = desc["TrainingJobName"]
    output = tar_members(s3, bucket, f"{name}/output/output.tar.gz", tmp_path)
    reports = [json.loads(output[f"algo-{i}.json"]) for i in (1, 2)]
    assert [r["task"] for r in reports] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
    ]
    for report in reports:
        assert report["replicas"] == 2
        assert all(w.startswith("127.0.0.1:") for w in report["workers"])
    assert reports[0]["loss"] == reports[1]["loss"]  # one synchronized model
    assert "model.keras" in tar_members(s3, bucket, f"{name}/output/model.tar.gz", tmp_path)


def test_install_requirements_uses_an_isolated_venv(venv_job: Any) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        venv_job.latest_training_job.wait()
    text = out.getvalue()
    assert "Requirement already satisfied: boto3" in text
    python = next(ln for ln in text.splitlines() if ln.startswith("PYTHON "))
    assert f"{os.sep}venvs{os.sep}algo-1{os.sep}" in python
