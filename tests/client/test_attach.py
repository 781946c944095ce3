"""``sagetrack.TensorFlow.attach``: any job, tracked or not, then what the SDK does after."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

import sagetrack
from sagetrack import TensorFlow, TrackingWarning


def _describe_like_sagemaker(session: Any, environments: dict[str, dict[str, str]]) -> None:
    """moto's DescribeTrainingJob drops ``Environment`` and ``KmsKeyId``; put them back as
    SageMaker returns them (the environment as each job was created with)."""

    def after(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("OutputDataConfig", {}).setdefault("KmsKeyId", "")
        env = environments.get(parsed.get("TrainingJobName", ""))
        if env is not None:
            parsed["Environment"] = env

    def before(params: dict[str, Any], **_: Any) -> None:
        environments[params["TrainingJobName"]] = dict(params.get("Environment") or {})

    client = session.sagemaker_client
    client.meta.events.register("after-call.sagemaker.DescribeTrainingJob", after)
    client.meta.events.register("provide-client-params.sagemaker.CreateTrainingJob", before)


def _session(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A moto session that describes jobs as SageMaker does, and the code in tmp/code."""
    monkeypatch.setattr("sagemaker.session.time.sleep", lambda _s: None)
    session = aws.sagemaker_session()
    _describe_like_sagemaker(session, {})
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('training')\n")
    return session


def test_attach_to_a_tracked_and_an_untracked_job_then_create_and_deploy(
        aws, tmp_path: Path, sdk_args: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    session = _session(aws, tmp_path, monkeypatch)
    store = tmp_path / "store"
    tracked = TensorFlow(source_dir=str(tmp_path / "code"), sagemaker_session=session,
                         tracking_uri=str(store), experiment="attach", **sdk_args)
    tracked.fit(f"s3://{aws.bucket}/data", wait=False)
    untracked = TensorFlow(source_dir=str(tmp_path / "code"), sagemaker_session=session,
                           tracking=False, **sdk_args)
    untracked.fit(f"s3://{aws.bucket}/data", wait=False)

    for job, was_tracked in ((tracked.latest_training_job.name, True),
                             (untracked.latest_training_job.name, False)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", TrackingWarning)  # attaching warns about nothing
            est = TensorFlow.attach(job, sagemaker_session=session)
        assert isinstance(est, sagetrack.TensorFlow)
        assert est.source_dir.startswith("s3://") and est.source_dir.endswith(".tar.gz")
        if was_tracked:
            assert est.tracking_uri == str(store) and est.experiment == "attach"
            assert est.latest_run.id == job and isinstance(est.latest_run, sagetrack.Run)
        model = est.create_model()
        assert model.model_data == est.model_data
        predictor = est.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                               wait=False)
        endpoint = session.sagemaker_client.describe_endpoint(
            EndpointName=predictor.endpoint_name)
        config = session.sagemaker_client.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"])
        served = session.sagemaker_client.describe_model(
            ModelName=config["ProductionVariants"][0]["ModelName"])
        assert served["PrimaryContainer"]["ModelDataUrl"] == est.model_data


def test_a_later_fit_of_an_attached_tracked_job_is_tracked(
        aws, tmp_path: Path, sdk_args: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    session = _session(aws, tmp_path, monkeypatch)
    store = tmp_path / "store"
    first = TensorFlow(source_dir=str(tmp_path / "code"), sagemaker_session=session,
                       tracking_uri=str(store), **sdk_args)
    first.fit(f"s3://{aws.bucket}/data", wait=False)
    est = TensorFlow.attach(first.latest_training_job.name, sagemaker_session=session)
    with pytest.warns(TrackingWarning, match="source_dir is on S3"):
        est.fit(f"s3://{aws.bucket}/data", wait=False)
    run = est.latest_run
    assert run.id == est.latest_training_job.name != first.latest_training_job.name
    assert run.params == first.latest_run.params
    assert run.code["tarball"]["uri"] == first.latest_run.code["tarball"]["uri"]
