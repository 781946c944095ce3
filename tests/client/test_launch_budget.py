"""A launch is never broken or held up by tracking: a store that never answers or refuses
connections costs fit() at most the launch budget, and a job name the store cannot use is
launched untracked, exactly as the SDK launches it."""

from __future__ import annotations

import json
import socket
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from sagemaker.tensorflow import TensorFlow as SDKTensorFlow

from sagetrack import TensorFlow, TrackingWarning
from sagetrack.client import store_access
from tests.support.aws import REGION, blackhole

STORE_BUCKET = "sagetrack-store"


def closed_port() -> str:
    """An endpoint on 127.0.0.1 that refuses connections (nothing listens)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(params=["never-answers", "refuses"])
def broken_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """The endpoint the tracking store's requests are sent to."""
    if request.param == "never-answers":
        with blackhole() as url:
            yield url
    else:
        yield closed_port()


def session_with_store_at(aws: Any, endpoint: str) -> Any:
    """A SageMaker session on moto whose requests for ``STORE_BUCKET`` go to ``endpoint``
    (every S3 client made from it, the SDK's own and sagetrack's)."""
    import boto3
    import sagemaker

    boto = boto3.Session(region_name=REGION)

    def route(request: Any, **_: Any) -> None:
        if request.url.startswith(f"{aws.url}/{STORE_BUCKET}"):
            request.url = endpoint + request.url[len(aws.url):]

    boto.events.register("before-send.s3", route)
    return sagemaker.Session(boto_session=boto, default_bucket=aws.bucket)


def test_a_store_that_hangs_or_refuses_never_holds_up_the_launch(
        aws, broken_store, tmp_path, monkeypatch, sdk_args, sent_requests):
    monkeypatch.delenv("SAGETRACK_STRICT")  # as users run: tracking failures are warnings
    monkeypatch.setenv("SAGETRACK_LAUNCH_BUDGET", "0.5")  # the default
    # shorter client timeouts only shorten the background retries this test waits for;
    # what fit() waits for is bounded by the launch budget, whatever they are
    monkeypatch.setitem(store_access.RECORD_CLIENT_TIMEOUTS, "read_timeout", 1.0)
    monkeypatch.setitem(store_access.RECORD_CLIENT_TIMEOUTS, "connect_timeout", 1.0)
    (tmp_path / "train.py").write_text("pass\n")
    session = session_with_store_at(aws, broken_store)
    requests = sent_requests(session)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=f"s3://{STORE_BUCKET}/track", **sdk_args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.monotonic()
        est.fit(f"s3://{aws.bucket}/data", wait=False)
        took = time.monotonic() - started
        est.wait_for_launch_record()  # the background writes give up: the record is kept
    # the SDK session's client waited 60 s per attempt: fit() took 186 s against a store
    # that never answers; a generous bound against hanging, not a benchmark
    assert took < 10
    assert len(requests) == 1  # the job was created
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(messages) == 1 and "could not write the launch record" in messages[0]
    job = est.latest_training_job.name
    folder = store_access.settings.unsent_dir() / f"s3_{STORE_BUCKET}_track" / "default" / job
    assert str(folder.parent.parent.parent) in messages[0]
    record = json.loads((folder / "run.json").read_text())
    assert record["run_id"] == job and record["pending"] is None
    assert json.loads((folder / "status.json").read_text())["status"] == "launched"


def normalised(request: dict[str, Any]) -> dict[str, Any]:
    request = json.loads(json.dumps(request))
    request["HyperParameters"].pop("sagemaker_submit_directory")  # the tarball's own path
    return request


def test_a_job_name_the_store_cannot_use_is_launched_untracked_as_the_sdk_would(
        aws, tmp_path, sdk_args, sent_requests):
    (tmp_path / "train.py").write_text("pass\n")
    sent = []
    for cls in (SDKTensorFlow, TensorFlow):
        session = aws.sagemaker_session()
        sent.append(sent_requests(session))
        est = cls(source_dir=str(tmp_path), sagemaker_session=session,
                  hyperparameters={"epochs": 1}, environment={"MODE": "fast"}, **sdk_args,
                  **({"tracking_uri": str(tmp_path / "store")} if cls is TensorFlow else {}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(f"s3://{aws.bucket}/data", wait=False, job_name="doing something")
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(messages) == 1
    assert "'doing something' is launched untracked" in messages[0] and "run id" in messages[0]
    (sdk,), (ours,) = sent
    assert normalised(ours) == normalised(sdk)  # no SAGETRACK_* environment, no metric regex
    assert not (tmp_path / "store").exists()
    with pytest.raises(Exception, match="launched untracked"):
        est.latest_run  # noqa: B018 - never another run's records


def test_generated_names_the_store_cannot_use_are_launched_untracked(
        aws, tmp_path, monkeypatch, sdk_args, sent_requests):
    """The SDK's own unit tests fake the timestamp in generated names with colons."""
    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()
    requests = sent_requests(session)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), **sdk_args)
    monkeypatch.setattr(time, "strftime", lambda *_: "2017-11-06-14:14:15.673")
    with pytest.warns(TrackingWarning, match="14:14:15.673' is launched untracked"):
        est.fit(f"s3://{aws.bucket}/data", wait=False)
    (request,) = requests
    assert request["TrainingJobName"].endswith("-2017-11-06-14:14:15.673")
    assert "SAGETRACK" not in (request.get("Environment") or {})
    assert not (tmp_path / "store").exists()


def test_a_store_that_comes_back_gets_the_record_from_the_retry(aws, tmp_path, monkeypatch,
                                                                 sdk_args):
    """The first writes fail (connection refused) until the job is created; the writing
    thread retries, and the record lands in the store with no warning and no unsent copy."""
    from sagetrack.client import launch_writer
    from sagetrack.store.reader import Store

    monkeypatch.delenv("SAGETRACK_STRICT")
    monkeypatch.setenv("SAGETRACK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(launch_writer, "RETRY_DELAY", 2.0)
    aws.s3.create_bucket(Bucket=STORE_BUCKET)
    (tmp_path / "train.py").write_text("pass\n")
    import boto3
    import sagemaker

    boto = boto3.Session(region_name=REGION)
    refused, down = closed_port(), [True]

    def route(request: Any, **_: Any) -> None:
        if down[0] and request.url.startswith(f"{aws.url}/{STORE_BUCKET}"):
            request.url = refused + request.url[len(aws.url):]

    boto.events.register("before-send.s3", route)
    session = sagemaker.Session(boto_session=boto, default_bucket=aws.bucket)
    session.sagemaker_client.meta.events.register(
        "before-call.sagemaker.CreateTrainingJob", lambda **_: down.__setitem__(0, False))
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=f"s3://{STORE_BUCKET}/track", **sdk_args)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        est.fit(f"s3://{aws.bucket}/data", wait=False)
        est.wait_for_launch_record()
    run = Store(f"s3://{STORE_BUCKET}/track", s3_client=aws.s3).run(
        est.latest_training_job.name)
    assert run.status == "launched" and run.record["pending"] is None
    # the copy the failed attempt kept is gone once the record is in the store
    assert (tmp_path / "home").is_dir()
    assert not list((tmp_path / "home").rglob("*.json"))
