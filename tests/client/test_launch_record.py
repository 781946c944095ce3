"""The launch record: written and claimed before the job is created, completed in the
background, never over the records of a run that started."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import pytest

from sagetrack import TensorFlow
from sagetrack.store.reader import Store


def test_slow_input_listing_completes_after_the_launch(aws, tmp_path, monkeypatch, sdk_args):
    import threading

    monkeypatch.setenv("SAGETRACK_LAUNCH_BUDGET", "0.1")
    (tmp_path / "train.py").write_text("pass\n")
    for i in range(3):
        aws.s3.put_object(Bucket=aws.bucket, Key=f"big/{i}", Body=b"x")
    session = aws.sagemaker_session()
    store = tmp_path / "store" / "default"
    events: list[str] = []
    release = threading.Event()

    def on_create(params: dict[str, Any], **_: Any) -> None:
        recorded = (store / params["TrainingJobName"] / "run.json").exists()
        events.append("create, record written" if recorded else "create, no record")

    session.sagemaker_client.meta.events.register(
        "before-parameter-build.sagemaker.CreateTrainingJob", on_create)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), **sdk_args)

    def slow_listing(**_: Any) -> None:
        release.wait(120)  # a huge prefix: listing takes a while (released below)
        events.append("listed")

    s3 = est.sagemaker_session.s3_client  # the client the capture lists with
    s3.meta.events.register("before-call.s3.ListObjectsV2", slow_listing)
    started = time.monotonic()
    est.fit(f"s3://{aws.bucket}/big", wait=False)
    assert time.monotonic() - started < 60  # fit() returned while the listing was blocked
    job = est.latest_training_job.name
    first = json.loads((store / job / "run.json").read_text())
    assert "inputs.training" in first["pending"]
    assert first["inputs"]["training"]["uri"] == f"s3://{aws.bucket}/big"
    assert json.loads((store / job / "status.json").read_text())["status"] == "launched"
    release.set()
    run = est.latest_run  # waits for the record to be completed
    # the record was written before the job was created, and the job did not wait for
    # the listing
    assert events[:2] == ["create, record written", "listed"]
    assert run.record["pending"] is None and run.inputs["training"]["objects"] == 3
    assert run.status == "launched"  # the status written at launch is left alone


def test_a_job_name_that_already_ran_keeps_its_records(aws, tmp_path, sdk_args, sent_requests):
    """Reusing an explicit job_name never overwrites the records of a run that started."""
    from sagetrack import TrackingWarning

    (tmp_path / "train.py").write_text("pass\n")
    store = tmp_path / "store" / "default"
    (store / "job-x").mkdir(parents=True)
    completed = {"format": "sagetrack/1", "run_id": "job-x", "status": "completed"}
    (store / "job-x" / "status.json").write_text(json.dumps(completed))
    (store / "job-x" / "run.json").write_text('{"params": {"epochs": 30}}')
    session = aws.sagemaker_session()
    requests = sent_requests(session)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), hyperparameters={"epochs": 1},
                     **sdk_args)
    with pytest.warns(TrackingWarning, match="job-x already has a run"):
        est.fit(f"s3://{aws.bucket}/data", wait=False, job_name="job-x")
    assert len(requests) == 1  # the launch itself goes ahead (SageMaker decides)
    assert json.loads((store / "job-x" / "status.json").read_text()) == completed
    assert (store / "job-x" / "run.json").read_text() == '{"params": {"epochs": 30}}'
    # a name whose earlier launch never started is taken over
    (store / "job-y").mkdir()
    (store / "job-y" / "status.json").write_text(json.dumps({**completed, "run_id": "job-y",
                                                             "status": "launched"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        est.fit(f"s3://{aws.bucket}/data", wait=False, job_name="job-y")
    assert json.loads((store / "job-y" / "run.json").read_text())["params"]["epochs"] == 1


def test_launches_in_a_loop_never_wait_for_an_earlier_launch_record(
        aws, tmp_path, monkeypatch, sdk_args):
    """A sweep of fit(wait=False) calls over a slow input is not serialised by tracking."""
    import threading

    monkeypatch.setenv("SAGETRACK_LAUNCH_BUDGET", "0.1")
    (tmp_path / "train.py").write_text("pass\n")
    aws.s3.put_object(Bucket=aws.bucket, Key="big/0", Body=b"x")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(tmp_path / "store"), **sdk_args)
    release = threading.Event()

    def slow_listing(**_: Any) -> None:
        release.wait(120)  # released below, once both launches have returned

    s3 = est.sagemaker_session.s3_client  # the client the capture lists with
    s3.meta.events.register("before-call.s3.ListObjectsV2", slow_listing)
    jobs = []
    for epochs in (1, 2):
        est.set_hyperparameters(epochs=epochs)
        est.fit(f"s3://{aws.bucket}/big", wait=False)
        jobs.append(est.latest_training_job.name)
    assert not release.is_set() and len(set(jobs)) == 2
    assert est.latest_launch_record["run_id"] == jobs[1]
    release.set()
    assert est.wait_for_launch_record(60)["run_id"] == jobs[1]
    store = Store(str(tmp_path / "store"))
    for job, epochs in zip(jobs, (1, 2), strict=True):
        run = store.run(job)
        assert run.record["pending"] is None and run.inputs["training"]["objects"] == 1
        assert str(run.params["epochs"]) == str(epochs)
