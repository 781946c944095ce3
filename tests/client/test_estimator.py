"""sagetrack.TensorFlow on the client, under moto: the request, the tarball, the record."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from sagemaker.tensorflow import TensorFlow as SDKTensorFlow

from sagetrack import TensorFlow
from sagetrack.errors import ConfigurationError
from sagetrack.store.reader import Store

from ..conftest import ROLE, git

COMMON = dict(entry_point="train.py", role=ROLE, instance_type="ml.m5.xlarge",
              instance_count=1, framework_version="2.16", py_version="py310")


def capture(session: Any, operation: str = "CreateTrainingJob") -> list[dict[str, Any]]:
    """Requests the SDK sends for ``operation``, exactly as botocore receives them."""
    requests: list[dict[str, Any]] = []
    session.sagemaker_client.meta.events.register(
        f"provide-client-params.sagemaker.{operation}",
        lambda params, **_: requests.append(json.loads(json.dumps(params, default=str))))
    return requests


@pytest.fixture
def project(git_repo: Path) -> Path:
    (git_repo / "src" / "requirements.txt").write_text("")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-qm", "reqs")
    (git_repo / "src" / "train.py").write_text("print('changed, not committed')\n")
    (git_repo / "src" / "notes.txt").write_text("untracked note\n")
    return git_repo / "src"


def test_fit_sends_tracking_in_environment_only_and_records_the_launch(aws, project):
    session = aws.sagemaker_session()
    requests = capture(session)
    for i in range(3):
        aws.s3.put_object(Bucket=aws.bucket, Key=f"cifar/train/{i}.npz", Body=b"x" * (i + 1))
    est = TensorFlow(source_dir=str(project), sagemaker_session=session,
                     hyperparameters={"epochs": 3, "batch-size": 128, "opt": {"name": "sgd",
                                                                              "lr": [0.1, 0.01]}},
                     metric_definitions=[{"Name": "custom", "Regex": "custom=([0-9.]+)"}],
                     tracking_uri=f"s3://{aws.bucket}/sagetrack", experiment="resnet",
                     track_batches=50, **COMMON)
    gets: list[str] = []
    est._s3_client().meta.events.register(
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
            "sagetrack/container/bootstrap.py", "sagetrack/store/backends.py"} <= members
    assert not any(m.startswith("sagetrack/client") or "__pycache__" in m for m in members)

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


def test_tracking_false_sends_exactly_what_the_sdk_sends(aws, tmp_path):
    (tmp_path / "train.py").write_text("pass\n")
    captured = []
    for cls, extra in ((SDKTensorFlow, {}), (TensorFlow, {"tracking": False})):
        session = aws.sagemaker_session()
        captured.append(capture(session))
        cls(source_dir=str(tmp_path), sagemaker_session=session, base_job_name="same",
            hyperparameters={"a": 1}, **COMMON, **extra).fit(
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


def test_local_folder_store_has_the_same_layout(aws, project, tmp_path):
    store = tmp_path / "runs"
    est = TensorFlow(source_dir=str(project), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(store), experiment="e1", **COMMON)
    est.fit(f"s3://{aws.bucket}/nothing-here", wait=False)
    job = est.latest_training_job.name
    assert sorted(p.name for p in (store / "e1" / job).iterdir()) == [
        "code.diff", "run.json", "status.json"]
    assert est.latest_run.inputs["training"]["objects"] == 0


def test_default_tracking_uri_is_env_then_session_bucket(aws, tmp_path, monkeypatch):
    (tmp_path / "train.py").write_text("pass\n")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     **COMMON)
    assert est.tracking_uri == f"s3://{aws.bucket}/sagetrack"
    monkeypatch.setenv("SAGETRACK_URI", str(tmp_path / "env-store"))
    est2 = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                      **COMMON)
    assert est2.tracking_uri == str(tmp_path / "env-store")


def test_create_training_job_failure_is_recorded_and_raised(aws, tmp_path):
    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()

    def refuse(params, **_):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad role"}},
                          "CreateTrainingJob")

    session.sagemaker_client.meta.events.register(
        "before-call.sagemaker.CreateTrainingJob", refuse)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), **COMMON)
    with pytest.raises(Exception, match="bad role"):
        est.fit(f"s3://{aws.bucket}/d", wait=False)
    (run,) = Store(str(tmp_path / "store")).list_runs()
    assert run.status == "failed"
    assert "bad role" in run.failure["message"]


def test_store_failure_at_fit_warns_keeps_a_local_copy_and_launches(aws, tmp_path, monkeypatch):
    monkeypatch.delenv("SAGETRACK_STRICT")
    monkeypatch.setenv("SAGETRACK_HOME", str(tmp_path / "home"))
    import sagetrack.client.estimator as estimator_module

    monkeypatch.setattr(estimator_module, "UNSENT_DIR", tmp_path / "home" / "unsent")
    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()
    requests = capture(session)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri="s3://no-such-bucket-xyz/track", **COMMON)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(f"s3://{aws.bucket}/d", wait=False)
    assert len(requests) == 1  # the job was launched
    assert any("could not write the launch record" in str(w.message) for w in caught)
    saved = list((tmp_path / "home" / "unsent").rglob("*.json"))
    assert saved and saved[0].name in ("run.json", "status.json")


BAD_ARGUMENTS = [
    ({"tracking": "yes"}, "tracking"),
    ({"tracking_uri": "gs://bucket/x"}, "scheme 'gs' is not supported"),
    ({"tracking_uri": "s3://"}, "no valid bucket"),
    ({"tracking_uri": "s3://Bad_Bucket/x"}, "no valid bucket"),
    ({"tracking_uri": "s3://bucket/../x"}, "'..'"),
    ({"tracking_uri": ""}, "tracking_uri"),
    ({"tracking_uri": 42}, "tracking_uri"),
    ({"experiment": "a/b"}, "experiment='a/b'"),
    ({"experiment": ".."}, "Invalid experiment"),
    ({"experiment": ""}, "Invalid experiment"),
    ({"experiment": "x" * 129}, "Invalid experiment"),
    ({"track_batches": -1}, "track_batches=-1"),
    ({"track_batches": True}, "track_batches=True"),
    ({"track_batches": "10"}, "track_batches='10'"),
    ({"source_dir": "s3://bucket/code.tar.gz"}, "source_dir is on S3"),
    ({"hyperparameters": {"when": object()}}, "'when'"),
    ({"hyperparameters": {"s": {1, 2}}}, "not JSON-serialisable"),
    ({"metric_definitions": [{"Name": "x", "Regex": "("}]}, "Invalid regex"),
    ({"metric_definitions": "loss"}, "metric_definitions"),
    ({"metric_definitions": [{"Name": f"m{i}", "Regex": "x"} for i in range(41)]}, "at most 40"),
    ({"environment": {f"K{i}": "v" for i in range(95)}}, "SageMaker allows 100"),
    ({"environment": ["A=1"]}, "environment"),
    ({"dependencies": ["/tmp/somewhere/sagetrack"]}, "clashes"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS,
                         ids=[f"{next(iter(k))}-{i}" for i, (k, _) in enumerate(BAD_ARGUMENTS)])
def test_bad_arguments_fail_in_the_constructor_before_any_aws_call(kwargs, message, tmp_path,
                                                                   monkeypatch):
    import botocore.endpoint

    def no_network(*args, **kw):
        raise AssertionError("an AWS call was made")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", no_network)
    (tmp_path / "train.py").write_text("pass\n")
    args = {**COMMON, "source_dir": str(tmp_path), **kwargs}
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        TensorFlow(**args)
    assert not (tmp_path / "store").exists()


def test_sitecustomize_clash_is_refused(tmp_path):
    (tmp_path / "train.py").write_text("pass\n")
    (tmp_path / "sitecustomize.py").write_text("")
    with pytest.raises(ConfigurationError, match=r"sitecustomize\.py"):
        TensorFlow(source_dir=str(tmp_path), **COMMON)


def test_missing_credentials_for_an_s3_store_fail_early(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / "train.py").write_text("pass\n")
    with pytest.raises(ConfigurationError, match="No AWS credentials"):
        TensorFlow(source_dir=str(tmp_path), tracking_uri="s3://bucket/track", **COMMON)


def test_unreadable_git_repo_warns_and_records_the_error(aws, git_repo, tmp_path):
    (git_repo / ".git" / "HEAD").write_text("garbage\n")  # a broken repository
    est = TensorFlow(source_dir=str(git_repo / "src"), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(tmp_path / "store"), **COMMON)
    with pytest.warns(UserWarning, match="git"):
        est.fit(f"s3://{aws.bucket}/d", wait=False)
    assert est.latest_run.code["error"]


def test_store_keys_cannot_escape_the_store(tmp_path):
    from sagetrack.store.backends import LocalBackend

    with pytest.raises(ConfigurationError):
        Store(str(tmp_path)).run("../../etc")
    with pytest.raises(ConfigurationError):
        LocalBackend(tmp_path).put("exp/../../outside.json", b"{}")
    with pytest.raises(ConfigurationError):
        Store(str(tmp_path)).runs(experiment="../x")
    assert list(tmp_path.parent.glob("outside.json")) == []


def test_kms_key_is_passed_on_every_write(aws):
    from sagetrack.store.backends import S3Backend

    sent = []
    backend = S3Backend(aws.bucket, "t", kms_key_id="arn:aws:kms:us-east-1:123456789012:key/k1")
    backend.client.meta.events.register("provide-client-params.s3.PutObject",
                                        lambda params, **_: sent.append(dict(params)))
    backend.put("e/r/status.json", b"{}")
    assert sent[0]["ServerSideEncryption"] == "aws:kms"
    assert sent[0]["SSEKMSKeyId"].endswith("key/k1")
    assert "ACL" not in sent[0]


@pytest.mark.parametrize("budget", [60.0, 0.0], ids=["record-before-launch", "record-after"])
def test_duplicate_work_warns_and_skip_if_done_returns_the_completed_run(
        aws, tmp_path, monkeypatch, budget):
    import sagetrack.client.estimator as estimator_module
    from sagetrack import TrackingWarning

    monkeypatch.setattr(estimator_module, "LAUNCH_BUDGET_S", budget)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("pass\n")
    aws.s3.put_object(Bucket=aws.bucket, Key="data/x", Body=b"x")
    store = tmp_path / "store"
    session = aws.sagemaker_session()
    requests = capture(session)

    def estimator(**hps):
        return TensorFlow(source_dir=str(tmp_path / "src"), sagemaker_session=session,
                          hyperparameters={"epochs": 2, **hps}, tracking_uri=str(store),
                          experiment="dup", **COMMON)

    def launch(est, **kwargs):
        # with no budget the record (and its same-work check) completes in the background
        result = est.fit(f"s3://{aws.bucket}/data", wait=False, **kwargs)
        est.wait_for_launch_record()
        return result

    first = estimator()
    launch(first)
    done = first.latest_training_job.name
    status = store / "dup" / done / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "status": "completed"}))

    with pytest.warns(TrackingWarning, match=done):
        launch(estimator())  # warned, still launched
    assert len(requests) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        launch(estimator(epochs=3))  # other work: silent
    assert len(requests) == 3
    with pytest.warns(TrackingWarning):
        run = launch(estimator(), skip_if_done=True)
    assert run.id == done and len(requests) == 3  # nothing launched
    aws.s3.put_object(Bucket=aws.bucket, Key="data/y", Body=b"new data")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        launch(estimator(), skip_if_done=True)
    assert len(requests) == 4  # the data changed: not the same work


def test_tarball_hashes_are_the_same_from_the_local_copy_or_a_download(aws, tmp_path):
    from sagetrack.client.provenance import code_tarball_info

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('hi')\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "code" / "train.py", arcname="train.py")
    data = buf.getvalue()
    aws.s3.put_object(Bucket=aws.bucket, Key="src/sourcedir.tar.gz", Body=data)
    uri = f"s3://{aws.bucket}/src/sourcedir.tar.gz"
    downloaded = code_tarball_info(aws.s3, uri)
    assert downloaded == code_tarball_info(aws.s3, uri, local_copy=data)
    assert downloaded["sha256"] == hashlib.sha256(data).hexdigest()
    assert downloaded["files"] == ["train.py"]
    # a copy that does not match the uploaded object is not trusted
    assert code_tarball_info(aws.s3, uri, local_copy=data + b"x") == downloaded


def test_slow_input_listing_completes_after_the_launch(aws, tmp_path, monkeypatch):
    import threading

    import sagetrack.client.estimator as estimator_module

    monkeypatch.setattr(estimator_module, "LAUNCH_BUDGET_S", 0.1)
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
                     tracking_uri=str(tmp_path / "store"), **COMMON)

    def slow_listing(**_: Any) -> None:
        release.wait(120)  # a huge prefix: listing takes a while (released below)
        events.append("listed")

    est._s3_client().meta.events.register("before-call.s3.ListObjectsV2", slow_listing)
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


def test_a_job_name_that_already_ran_keeps_its_records(aws, tmp_path):
    """Reusing an explicit job_name never overwrites the records of a run that started."""
    from sagetrack import TrackingWarning

    (tmp_path / "train.py").write_text("pass\n")
    store = tmp_path / "store" / "default"
    (store / "job-x").mkdir(parents=True)
    completed = {"format": "sagetrack/1", "run_id": "job-x", "status": "completed"}
    (store / "job-x" / "status.json").write_text(json.dumps(completed))
    (store / "job-x" / "run.json").write_text('{"params": {"epochs": 30}}')
    session = aws.sagemaker_session()
    requests = capture(session)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), hyperparameters={"epochs": 1},
                     **COMMON)
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


def test_a_capture_that_raises_leaves_an_error_in_the_record_not_a_lost_record(
        aws, tmp_path, monkeypatch):
    import sagetrack.client.estimator as estimator_module

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("listing exploded")

    monkeypatch.setattr(estimator_module, "fingerprint_channel", broken)
    (tmp_path / "train.py").write_text("pass\n")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(tmp_path / "store"), **COMMON)
    est.fit(f"s3://{aws.bucket}/data", wait=False)
    run = est.latest_run
    assert run.inputs["training"]["uri"] == f"s3://{aws.bucket}/data"
    assert run.inputs["training"]["error"] == "RuntimeError: listing exploded"
    assert run.status == "launched" and run.record["pending"] is None


def test_a_listing_past_its_first_page_never_holds_up_the_launch(aws, tmp_path):
    """Even with a generous budget, fit() does not wait for page two of a big prefix:
    the listing continues once the record is written, and completes it afterwards."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: aws.s3.put_object(Bucket=aws.bucket, Key=f"big/{i:05d}",
                                                  Body=b"x"), range(1001)))
    (tmp_path / "train.py").write_text("pass\n")
    store = tmp_path / "store" / "default"
    session = aws.sagemaker_session()
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), **COMMON)
    at_page_two: list[Any] = []

    def on_list(params: dict[str, Any], **_: Any) -> None:
        if params.get("ContinuationToken"):  # page two: what was recorded by then?
            at_page_two.extend(json.loads(p.read_text())["pending"]
                               for p in store.glob("*/run.json"))

    est._s3_client().meta.events.register("before-parameter-build.s3.ListObjectsV2", on_list)
    started = time.monotonic()
    est.fit(f"s3://{aws.bucket}/big", wait=False)  # the suite's budget is 60 s
    assert time.monotonic() - started < 60
    run = est.latest_run
    assert at_page_two == [["inputs.training"]]  # written, with the listing pending
    assert run.record["pending"] is None and run.inputs["training"]["objects"] == 1001


def test_launches_in_a_loop_never_wait_for_an_earlier_launch_record(aws, tmp_path, monkeypatch):
    """A sweep of fit(wait=False) calls over a slow input is not serialised by tracking."""
    import threading

    import sagetrack.client.estimator as estimator_module

    monkeypatch.setattr(estimator_module, "LAUNCH_BUDGET_S", 0.1)
    (tmp_path / "train.py").write_text("pass\n")
    aws.s3.put_object(Bucket=aws.bucket, Key="big/0", Body=b"x")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(tmp_path / "store"), **COMMON)
    release = threading.Event()

    def slow_listing(**_: Any) -> None:
        release.wait(120)  # released below, once both launches have returned

    est._s3_client().meta.events.register("before-call.s3.ListObjectsV2", slow_listing)
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
