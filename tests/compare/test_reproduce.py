"""Reproduce and check out runs launched for real (under moto) with sagetrack.TensorFlow.

The reproduce round trip for both store backends is in ``tests/cli/test_cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sagetrack import TensorFlow
from sagetrack.api import Store
from sagetrack.client.checkout import checkout
from sagetrack.client.reproduce import (
    DataChanged,
    ReproductionError,
    reproduce,
    reproduction_request,
)
from sagetrack.compare import diff
from sagetrack.errors import ConfigurationError
from tests.support.aws import ROLE
from tests.support.records import write_run
from tests.support.repo import git

COMMON = dict(entry_point="train.py", role=ROLE, instance_type="ml.m5.xlarge",
              instance_count=1, framework_version="2.16", py_version="py310")


def launch(aws: Any, git_repo: Path, uri: str) -> tuple[Store, str]:
    """A run launched with fit(wait=False): dirty git code, one S3 channel of 3 objects."""
    src = git_repo / "src"
    (src / "util.py").write_text("X = 1\n")
    git(git_repo, "add", "src/util.py")
    git(git_repo, "commit", "-qm", "util")
    (src / "train.py").write_text("print('lr changed, not committed')\n")
    for i in range(3):
        aws.s3.put_object(Bucket=aws.bucket, Key=f"cifar/train/{i}.npz", Body=b"x" * (i + 1))
    est = TensorFlow(source_dir=str(src), sagemaker_session=aws.sagemaker_session(),
                     hyperparameters={"epochs": 3, "learning-rate": 0.1, "opt": {"name": "sgd"}},
                     tracking_uri=uri, experiment="resnet", **COMMON)
    est.fit({"training": f"s3://{aws.bucket}/cifar/train"}, wait=False)
    return Store(uri), est.latest_training_job.name


def test_reproduce_refuses_changed_data_unless_allowed(aws, git_repo):
    store, original_id = launch(aws, git_repo, f"s3://{aws.bucket}/sagetrack")
    aws.s3.put_object(Bucket=aws.bucket, Key="cifar/train/3.npz", Body=b"new")
    original = store.run(original_id)
    with pytest.raises(DataChanged, match=r"training: changed: 3 -> 4 objects") as info:
        reproduce(original, sagemaker_session=aws.sagemaker_session())
    assert "--allow-data-change" in str(info.value)
    assert [rid for _e, rid in store.run_ids()] == [original_id]  # nothing launched
    est = reproduce(original, sagemaker_session=aws.sagemaker_session(),
                    allow_data_change=True)
    new = est.latest_run
    assert new.record["reproduces"]["data_changed"] == {"training": "changed"}
    assert [c.status for c in diff(original, new).data] == ["changed"]


def test_run_estimator_with_overrides_and_checkout(aws, git_repo, tmp_path):
    store, original_id = launch(aws, git_repo, str(tmp_path / "store"))
    run = store.run(original_id)
    est = run.estimator(sagemaker_session=aws.sagemaker_session(), instance_count=2,
                        hyperparameters={"learning-rate": 0.05})
    assert isinstance(est, TensorFlow)
    assert est.source_dir == run.code["tarball"]["uri"] and est.instance_count == 2
    est.fit(run.training_inputs(), wait=False)
    new = est.latest_run
    assert new.params["learning-rate"] == 0.05 and new.params["opt"] == {"name": "sgd"}
    assert new.job_config["instance_count"] == 2
    assert new.record["reproduces"]["run_id"] == run.id
    assert new.record["reproduces"]["overrides"] == ["hyperparameters.learning-rate",
                                                     "instance_count"]
    assert new.code["tarball"]["content_sha256"] == run.code["tarball"]["content_sha256"]

    target = checkout(run, tmp_path / "work")
    files = sorted(p.relative_to(target / "code").as_posix()
                   for p in (target / "code").rglob("*") if p.is_file())
    assert files == ["requirements.txt", "train.py", "util.py"] or files == ["train.py",
                                                                             "util.py"]
    assert (target / "code" / "train.py").read_text() == "print('lr changed, not committed')\n"
    assert json.loads((target / "hyperparameters.json").read_text())["learning-rate"] == 0.1
    assert json.loads((target / "run.json").read_text())["run_id"] == run.id
    readme = (target / "README.md").read_text()
    assert f"sagetrack reproduce {run.id}" in readme and run.code["commit"] in readme
    assert "python train.py" in readme and "--learning-rate 0.1" in readme
    assert "lr changed" in (target / "code.diff").read_text()
    with pytest.raises(ConfigurationError, match="not empty"):
        checkout(run, target)


def test_request_is_built_from_the_record_alone(tmp_path):
    uri = str(tmp_path / "store")
    write_run(uri, "resnet", "resnet-a", params={"api_token": "[REDACTED]"})
    run = Store(uri).run("resnet-a")
    with pytest.raises(ReproductionError, match="'api_token' of run resnet-a was redacted"):
        reproduction_request(run)
    request = reproduction_request(run, hyperparameters={"api_token": "t"})
    args = request.estimator_args
    assert request.source_dir == "s3://bucket/resnet-a/source/sourcedir.tar.gz"
    assert args["entry_point"] == "train.py" and args["image_uri"].endswith("2.16-cpu-py310")
    assert args["hyperparameters"] == {"epochs": 3, "learning-rate": 0.1, "batch-size": 128,
                                       "api_token": "t"}  # model_dir: the SDK names the job
    assert args["tracking_uri"] == run.backend.uri and args["experiment"] == "resnet"
    assert request.inputs == {"training": {"uri": "s3://bucket/cifar/train",
                                           "data_type": "S3Prefix"}}
    assert "sagetrack.TensorFlow(" in str(request) and "source_dir=" in str(request)
    run.record["code"]["tarball"] = None
    run.record["artifacts"] = {}
    with pytest.raises(ReproductionError, match="recorded no code tarball"):
        reproduction_request(run)
