"""A launch takes over the records of a job name only when that job provably never started:
the store says ``launched`` and SageMaker does not know the job. Otherwise the records are
left as they are, and the job is launched untracked."""

from __future__ import annotations

import json
import uuid
import warnings
from typing import Any

import pytest

from sagetrack import TensorFlow, TrackingWarning

# the session's moto server keeps every job: names of their own
_ID = uuid.uuid4().hex[:8]
LIVE, UNCONFIRMED, NEVER_STARTED = f"live-{_ID}", f"unconfirmed-{_ID}", f"never-{_ID}"


def refuse_duplicate_names(session: Any) -> None:
    """SageMaker refuses a second job of the same name (moto accepts it)."""
    from botocore.exceptions import ClientError

    def check(params: dict[str, Any], **_: Any) -> None:
        try:
            session.sagemaker_client.describe_training_job(
                TrainingJobName=params["TrainingJobName"])
        except ClientError:
            return
        raise ClientError({"Error": {"Code": "ResourceInUse",
                                     "Message": "Training job names must be unique"}},
                          "CreateTrainingJob")

    session.sagemaker_client.meta.events.register(
        "before-parameter-build.sagemaker.CreateTrainingJob", check)


def test_a_live_jobs_name_never_takes_over_its_records(aws, tmp_path, sdk_args, sent_requests):
    """The second launch of a running job's name: SageMaker refuses it, and the first job's
    records (hyperparameters, status, metrics) stay exactly as they were."""
    (tmp_path / "train.py").write_text("pass\n")
    store = tmp_path / "store" / "default" / LIVE
    session = aws.sagemaker_session()
    refuse_duplicate_names(session)
    requests = sent_requests(session)

    def estimator(epochs: int) -> TensorFlow:
        return TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                          hyperparameters={"epochs": epochs},
                          tracking_uri=str(tmp_path / "store"), **sdk_args)

    estimator(1).fit(f"s3://{aws.bucket}/data", wait=False, job_name=LIVE)
    before = {p.name: p.read_bytes() for p in store.iterdir()}
    second = estimator(2)
    taken = f"{LIVE} already has a launched run, and SageMaker a job of that name"
    with pytest.warns(TrackingWarning, match=taken), \
            pytest.raises(Exception, match="ResourceInUse"):
        second.fit(f"s3://{aws.bucket}/data", wait=False, job_name=LIVE)
    second.wait_for_launch_record()
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before  # no job.json either
    assert json.loads(before["run.json"])["params"]["epochs"] == 1
    assert len(requests) == 2
    # the same with the run already started and its metrics recorded
    status = json.loads(before["status.json"])
    (store / "status.json").write_text(json.dumps({**status, "status": "running",
                                                   "metrics": {"loss": 0.5}}))
    with pytest.warns(TrackingWarning, match=r"already has a run \(running\)"), \
            pytest.raises(Exception, match="ResourceInUse"):
        estimator(3).fit(f"s3://{aws.bucket}/data", wait=False, job_name=LIVE)
    assert json.loads((store / "status.json").read_text())["metrics"] == {"loss": 0.5}
    assert json.loads((store / "run.json").read_text())["params"]["epochs"] == 1


def test_a_name_sagemaker_cannot_vouch_for_is_left_alone_and_launched_untracked(
        aws, tmp_path, sdk_args, sent_requests):
    from botocore.exceptions import ClientError

    (tmp_path / "train.py").write_text("pass\n")
    store = tmp_path / "store" / "default" / UNCONFIRMED
    store.mkdir(parents=True)
    launched = {"format": "sagetrack/1", "run_id": UNCONFIRMED, "status": "launched"}
    (store / "status.json").write_text(json.dumps(launched))
    (store / "run.json").write_text('{"params": {"epochs": 30}}')
    session = aws.sagemaker_session()
    requests = sent_requests(session)

    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "DescribeTrainingJob")

    session.sagemaker_client.meta.events.register(
        "before-call.sagemaker.DescribeTrainingJob", deny)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), **sdk_args)
    with pytest.warns(TrackingWarning, match="could not confirm that its job never started"):
        est.fit(f"s3://{aws.bucket}/data", wait=False, job_name=UNCONFIRMED)
    (request,) = requests
    assert "SAGETRACK" not in request.get("Environment", {})  # launched untracked
    assert json.loads((store / "status.json").read_text()) == launched
    assert (store / "run.json").read_text() == '{"params": {"epochs": 30}}'


def test_a_name_whose_launch_never_reached_sagemaker_is_taken_over(aws, tmp_path, sdk_args):
    (tmp_path / "train.py").write_text("pass\n")
    store = tmp_path / "store" / "default" / NEVER_STARTED
    store.mkdir(parents=True)
    (store / "status.json").write_text(json.dumps(
        {"format": "sagetrack/1", "run_id": NEVER_STARTED, "status": "launched"}))
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     hyperparameters={"epochs": 1}, tracking_uri=str(tmp_path / "store"),
                     **sdk_args)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        est.fit(f"s3://{aws.bucket}/data", wait=False, job_name=NEVER_STARTED)
    assert json.loads((store / "run.json").read_text())["params"]["epochs"] == 1
    assert est.latest_run.id == NEVER_STARTED and est.latest_run.status == "launched"
