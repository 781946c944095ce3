"""Fast tests: the container contract, request validation, client and session plumbing."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sagetrack.errors import SagetrackError
from sagetrack.local import (
    LocalJobApiError,
    LocalModeError,
    LocalProcessSession,
    UnsupportedLocalFeatureError,
    contract,
)
from sagetrack.local.artifacts import Artifacts
from sagetrack.local.hosts import Host
from sagetrack.local.storage import Storage, join_uri, local_path_from_file_uri
from tests.local.helpers import ROLE, make_estimator, write_source


def test_tf_config_mwms_indexes_hosts_in_order() -> None:
    hosts = ["algo-1", "algo-2", "algo-3"]
    ports = {"algo-1": 1001, "algo-2": 1002, "algo-3": 1003}
    cfg = contract.build_tf_config_mwms(hosts, "algo-2", ports)
    assert cfg["cluster"] == {
        "worker": ["127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"]
    }
    assert cfg["task"] == {"type": "worker", "index": 1}


def test_tf_config_parameter_server_master_is_first_host() -> None:
    hosts = ["algo-1", "algo-2", "algo-3"]
    ports = {h: 2000 + i for i, h in enumerate(hosts)}
    ps_ports = {h: 3000 + i for i, h in enumerate(hosts)}
    master = contract.build_tf_config_ps(hosts, "algo-1", ports, ps_ports)
    assert master["cluster"] == {
        "master": ["127.0.0.1:2000"],
        "ps": ["127.0.0.1:3000", "127.0.0.1:3001", "127.0.0.1:3002"],
        "worker": ["127.0.0.1:2001", "127.0.0.1:2002"],
    }
    assert master["task"] == {"type": "master", "index": 0}
    assert contract.build_tf_config_ps(hosts, "algo-3", ports, ps_ports)["task"] == {
        "type": "worker",
        "index": 1,
    }
    assert contract.build_tf_config_ps(hosts, "algo-3", ports, ps_ports, ps_task=True)[
        "task"
    ] == {"type": "ps", "index": 2}


def test_distribution_kind_reads_sdk_hyperparameters() -> None:
    assert contract.distribution_kind({"sagemaker_program": '"t.py"'}, 2) is None
    mwms = {"sagemaker_multi_worker_mirrored_strategy_enabled": "true"}
    assert contract.distribution_kind(mwms, 2) == contract.DIST_MWMS
    ps = {"sagemaker_parameter_server_enabled": "true"}
    assert contract.distribution_kind(ps, 2) == contract.DIST_PS
    assert contract.distribution_kind(ps, 1) is None  # the container ignores PS on one host
    with pytest.raises(UnsupportedLocalFeatureError, match="MPI") as err:
        contract.distribution_kind({"sagemaker_mpi_enabled": "true"}, 2)
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, SagetrackError)


def test_input_and_resource_config_files() -> None:
    channels = [
        {
            "ChannelName": "training",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://b/p",
                    "S3DataDistributionType": "ShardedByS3Key",
                }
            },
            "ContentType": "text/csv",
        },
        {
            "ChannelName": "extra",
            "DataSource": {
                "FileDataSource": {
                    "FileUri": "file:///x",
                    "FileDataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "FastFile",
        },
    ]
    assert contract.build_input_data_config(channels, "File") == {
        "training": {
            "TrainingInputMode": "File",
            "S3DistributionType": "ShardedByS3Key",
            "RecordWrapperType": "None",
            "ContentType": "text/csv",
        },
        "extra": {
            "TrainingInputMode": "FastFile",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        },
    }
    rc = contract.build_resource_config("algo-2", ["algo-1", "algo-2"], "local", "lo")
    assert rc["current_host"] == "algo-2"
    assert rc["hosts"] == ["algo-1", "algo-2"]
    assert rc["network_interface_name"] == "lo"


def test_paths_and_uris(tmp_path: Path) -> None:
    assert contract.map_container_path("/opt/ml/checkpoints", "/b") == "/b/checkpoints"
    assert contract.map_container_path("/data/x", "/b") == "/data/x"
    assert join_uri("s3://b/p/", "job", "/output/") == "s3://b/p/job/output"
    assert local_path_from_file_uri(f"file://{tmp_path}") == str(tmp_path)
    assert len(set(contract.free_ports(4))) == 4


def test_storage_downloads_prefix_and_single_object(s3: Any, bucket: str, tmp_path: Path) -> None:
    import boto3

    for key in ("st/a.txt", "st/sub/b.txt", "st/c.txt", "other/d.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    storage = Storage(boto3.Session(region_name="us-east-1"))
    assert storage.download(f"s3://{bucket}/st", str(tmp_path / "all")) == 3
    assert (tmp_path / "all" / "sub" / "b.txt").read_text() == "st/sub/b.txt"
    assert storage.download(f"s3://{bucket}/st/c.txt", str(tmp_path / "one")) == 1
    assert (tmp_path / "one" / "c.txt").read_text() == "st/c.txt"
    shard0 = storage.download(f"s3://{bucket}/st/", str(tmp_path / "s0"), shard=(0, 2))
    shard1 = storage.download(f"s3://{bucket}/st/", str(tmp_path / "s1"), shard=(1, 2))
    assert (shard0, shard1) == (2, 1)
    with pytest.raises(LocalModeError, match="no S3 objects"):
        storage.download(f"s3://{bucket}/missing/", str(tmp_path / "none"))


def test_unknown_job_is_a_client_error(make_session: Any) -> None:
    session = make_session()
    with pytest.raises(ClientError) as err:
        session.describe_training_job("no-such-job")
    assert isinstance(err.value, LocalJobApiError)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(UnsupportedLocalFeatureError, match="create_endpoint"):
        session.sagemaker_client.create_endpoint(EndpointName="x")
    assert not hasattr(session.sagemaker_client, "create_model")


def test_session_forces_code_upload_to_s3(
    make_session: Any, local_moto: dict[str, str]
) -> None:
    moto_endpoint = local_moto["endpoint"]
    session = make_session()
    assert session.local_mode is True
    assert session.config["local"]["local_code"] is False
    # An explicit endpoint without a boto session must not crash (LocalSession needs one).
    explicit = LocalProcessSession(
        s3_endpoint_url=moto_endpoint, default_bucket="b", work_dir=session.work_dir
    )
    assert explicit.s3_client.meta.endpoint_url == moto_endpoint
    env = explicit._child_env()
    assert env["S3_ENDPOINT_URL"] == moto_endpoint
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_mpi_distribution_is_rejected_before_anything_runs(
    make_session: Any, tmp_path: Path, bucket: str
) -> None:
    src = write_source(tmp_path / "src", "print('never runs')\n")
    est = make_estimator(
        make_session(work_dir=tmp_path / "work"),
        src,
        instance_count=2,
        distribution={"mpi": {"enabled": True}},
    )
    with pytest.raises(UnsupportedLocalFeatureError, match="MPI"):
        est.fit(f"s3://{bucket}/anything", wait=False)
    assert not (tmp_path / "work" / "runs").exists()


def test_pipe_mode_is_rejected(make_session: Any, tmp_path: Path, bucket: str) -> None:
    src = write_source(tmp_path / "src", "print('never runs')\n")
    est = make_estimator(make_session(), src, input_mode="Pipe")
    with pytest.raises(UnsupportedLocalFeatureError, match="Pipe"):
        est.fit(f"s3://{bucket}/anything", wait=False)


def test_request_reaches_the_client_unchanged(
    make_session: Any, tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK builds the request; the client only records it (no job started here)."""
    from sagetrack.local.client import LocalProcessSagemakerClient

    seen: dict[str, Any] = {}

    def fake_create(self: Any, **request: Any) -> dict[str, Any]:
        seen.update(request)
        return {"TrainingJobArn": "arn"}

    monkeypatch.setattr(LocalProcessSagemakerClient, "create_training_job", fake_create)
    src = write_source(tmp_path / "src", "print('x')\n")
    est = make_estimator(
        make_session(),
        src,
        hyperparameters={"epochs": 2, "name": "a b"},
        checkpoint_s3_uri=f"s3://{bucket}/ckpt",
        environment={"MY_FLAG": "1"},
    )
    est.fit({"training": f"s3://{bucket}/data"}, wait=False)
    hps = seen["HyperParameters"]
    assert hps["epochs"] == "2" and hps["name"] == json.dumps("a b")
    assert json.loads(hps["sagemaker_submit_directory"]).startswith(f"s3://{bucket}/")
    assert seen["CheckpointConfig"] == {"S3Uri": f"s3://{bucket}/ckpt"}
    assert seen["Environment"] == {"MY_FLAG": "1"}
    assert seen["RoleArn"] == ROLE


def test_code_tarball_members_escaping_the_code_dir_are_refused(tmp_path: Path) -> None:
    """Network isolation: the runner extracts the code itself and must stay in code/."""
    import boto3

    tarball = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, data in (("train.py", b"print(1)\n"), ("../escape.py", b"owned\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    base = tmp_path / "job" / "algo-1"
    host = Host("algo-1", 0, str(base), str(base / "checkpoints"))
    request = {"HyperParameters": {"sagemaker_submit_directory": json.dumps(str(tarball))}}
    artifacts = Artifacts(request, Storage(boto3.Session(region_name="us-east-1")), print)
    with pytest.raises(LocalModeError, match=r"\.\./escape\.py") as err:
        artifacts.prepare_code([host])
    assert "outside the code directory" in str(err.value)
    assert not (base / "escape.py").exists() and not (tmp_path / "escape.py").exists()
    assert (base / "code" / "train.py").read_bytes() == b"print(1)\n"


@pytest.mark.parametrize("name", ["../../escape-job", "a/b", "-lead", "x" * 64, "a_b", "",
                                  "job.1", "job\nname", None])
def test_job_names_are_validated_as_sagemaker_does(
    make_session: Any, tmp_path: Path, name: Any
) -> None:
    session = make_session(work_dir=tmp_path / "work")
    client = session.sagemaker_client
    with pytest.raises(LocalJobApiError, match="trainingJobName"):
        client.create_training_job(TrainingJobName=name)
    with pytest.raises(LocalJobApiError, match="trainingJobName"):
        client.describe_training_job(TrainingJobName=name)
    assert not any(p.name.endswith("escape-job") for p in tmp_path.rglob("*"))
