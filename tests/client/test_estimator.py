"""sagetrack.TensorFlow's SDK hooks under moto: the request the SDK sends, the tarball, the
launch record, and an estimator with tracking off that is exactly the SDK's."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sagemaker.tensorflow import TensorFlow as SDKTensorFlow

from sagetrack import TensorFlow
from sagetrack.client.staging import RUNTIME_PACKAGE
from sagetrack.store.reader import Store
from tests.support.aws import ROLE
from tests.support.repo import git


@pytest.fixture
def project(git_repo: Path) -> Path:
    (git_repo / "src" / "requirements.txt").write_text("")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-qm", "reqs")
    (git_repo / "src" / "train.py").write_text("print('changed, not committed')\n")
    (git_repo / "src" / "notes.txt").write_text("untracked note\n")
    return git_repo / "src"


def test_fit_sends_tracking_in_environment_only_and_records_the_launch(
        aws, project, sdk_args, sent_requests):
    session = aws.sagemaker_session()
    requests = sent_requests(session)
    for i in range(3):
        aws.s3.put_object(Bucket=aws.bucket, Key=f"cifar/train/{i}.npz", Body=b"x" * (i + 1))
    est = TensorFlow(source_dir=str(project), sagemaker_session=session,
                     hyperparameters={"epochs": 3, "batch-size": 128, "opt": {"name": "sgd",
                                                                              "lr": [0.1, 0.01]}},
                     metric_definitions=[{"Name": "custom", "Regex": "custom=([0-9.]+)"}],
                     tracking_uri=f"s3://{aws.bucket}/sagetrack", experiment="resnet",
                     track_batches=50, **sdk_args)
    gets: list[str] = []
    session.s3_client.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    est.fit({"training": f"s3://{aws.bucket}/cifar/train",
             "validation": f"s3://{aws.bucket}/cifar/val"}, wait=False)
    (request,) = requests
    job = request["TrainingJobName"]

    # hyperparameters: the user's plus the SDK's sagemaker_* and model_dir; nothing of ours
    assert {k for k in request["HyperParameters"] if not k.startswith("sagemaker_")} == {
        "epochs", "batch-size", "opt", "model_dir"}
    env = request["Environment"]
    assert env["SAGETRACK"] == "1"
    assert env["SAGETRACK_URI"] == f"s3://{aws.bucket}/sagetrack"
    assert env["SAGETRACK_EXPERIMENT"] == "resnet" and env["SAGETRACK_TRACK_BATCHES"] == "50"
    assert json.loads(env["SAGETRACK_METRICS"]) == [["custom", "custom=([0-9.]+)"]]
    names = [d["Name"] for d in request["AlgorithmSpecification"]["MetricDefinitions"]]
    assert names[0] == "custom" and "val_accuracy" in names and len(names) <= 40

    # the tarball SageMaker will run: user files + sagetrack bootstrap at the root
    code_uri = json.loads(request["HyperParameters"]["sagemaker_submit_directory"])
    key = code_uri.split(f"{aws.bucket}/", 1)[1]
    tar_bytes = aws.read(key)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = set(tar.getnames())
    assert {"train.py", "notes.txt", "requirements.txt", "sitecustomize.py",
            f"{RUNTIME_PACKAGE}/container/bootstrap.py",
            f"{RUNTIME_PACKAGE}/store/backends.py"} <= members
    assert not any(m.startswith(f"{RUNTIME_PACKAGE}/client") or "__pycache__" in m
                   for m in members)

    record = json.loads(aws.read(f"sagetrack/resnet/{job}/run.json"))
    assert record["run_id"] == job and record["experiment"] == "resnet"
    assert record["params"] == {"epochs": 3, "batch-size": 128,
                                "model_dir": f"s3://{aws.bucket}/{job}/model",
                                "opt": {"name": "sgd", "lr": [0.1, 0.01]}}
    code = record["code"]
    assert code["commit"] == git(project.parent, "rev-parse", "HEAD").strip()
    assert code["branch"] == "main" and code["dirty"] is True
    assert code["remote"] == "https://git.example.com/team/proj.git"
    assert code["tarball"]["uri"] == code_uri
    assert code["tarball"]["sha256"] == hashlib.sha256(tar_bytes).hexdigest()
    assert "sitecustomize.py" not in code["tarball"]["files"]
    assert key not in gets  # hashed from the bytes the SDK packed, not downloaded again
    diff = aws.read(f"sagetrack/resnet/{job}/code.diff").decode()
    assert "+print('changed, not committed')" in diff and "+untracked note" in diff
    train = record["inputs"]["training"]
    assert (train["objects"], train["bytes"], train["data_type"]) == (3, 6, "S3Prefix")
    assert record["inputs"]["validation"]["objects"] == 0
    assert record["job"]["image_uri"].endswith("tensorflow-training:2.16-cpu-py310")
    assert (record["job"]["instance_type"], record["job"]["instance_count"]) == ("ml.m5.xlarge", 1)
    assert record["artifacts"]["model"] == f"s3://{aws.bucket}/{job}/output/model.tar.gz"

    run = est.latest_run
    assert run.id == job and run.status == "launched" and run.params["epochs"] == 3
    table = Store(f"s3://{aws.bucket}/sagetrack").runs()
    assert list(table["id"]) == [job] and bool(table.loc[0, "dirty"]) is True


def normalise(request: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(request, sort_keys=True).replace(request["TrainingJobName"], "JOB")
    return json.loads(text)


def test_tracking_false_sends_exactly_what_the_sdk_sends(aws, tmp_path, sdk_args, sent_requests):
    (tmp_path / "train.py").write_text("pass\n")
    captured = []
    for cls, extra in ((SDKTensorFlow, {}), (TensorFlow, {"tracking": False})):
        session = aws.sagemaker_session()
        captured.append(sent_requests(session))
        cls(source_dir=str(tmp_path), sagemaker_session=session, base_job_name="same",
            hyperparameters={"a": 1}, **sdk_args, **extra).fit(
            f"s3://{aws.bucket}/data", wait=False, job_name="same-job")
    (sdk,), (ours,) = captured
    sdk_code = sdk["HyperParameters"].pop("sagemaker_submit_directory")
    our_code = ours["HyperParameters"].pop("sagemaker_submit_directory")
    assert sdk_code == our_code
    assert normalise(sdk) == normalise(ours)
    assert not any(k.startswith("sagetrack") for k in aws.list_keys())


def test_positional_sdk_arguments_keep_their_meaning(aws, tmp_path):
    (tmp_path / "train.py").write_text("pass\n")
    est = TensorFlow("py310", "2.16", entry_point="train.py", source_dir=str(tmp_path), role=ROLE,
                     instance_type="ml.m5.xlarge", instance_count=1,
                     sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(tmp_path / "store"))
    assert (est.py_version, est.framework_version) == ("py310", "2.16")
    est.fit(f"s3://{aws.bucket}/data", wait=False)
    run = Store(str(tmp_path / "store")).run(est.latest_training_job.name)
    assert run.record["code"]["git"] is False
    assert run.record["job"]["framework_version"] == "2.16"


def test_local_folder_store_has_the_same_layout(aws, project, tmp_path, sdk_args):
    store = tmp_path / "runs"
    est = TensorFlow(source_dir=str(project), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(store), experiment="e1", **sdk_args)
    est.fit(f"s3://{aws.bucket}/nothing-here", wait=False)
    job = est.latest_training_job.name
    assert sorted(p.name for p in (store / "e1" / job).iterdir()) == [
        "code.diff", "run.json", "status.json"]
    assert est.latest_run.inputs["training"]["objects"] == 0
