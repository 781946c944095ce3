"""SDK features through a tracked ``sagetrack.TensorFlow``, under moto.

Each test launches the same job twice, with tracking on and with ``tracking=False``, and
checks that the CreateTrainingJob (or tuning) request the SDK sent is the SDK's own, apart
from the documented additions (``SAGETRACK_*`` ``Environment`` entries and the console
``MetricDefinitions`` after the user's), and that the launch record holds the feature.
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

import sagetrack
from sagetrack import TensorFlow
from tests.support.repo import git, make_repo

Request = dict[str, Any]


# -- helpers -------------------------------------------------------------------------------
def _code(tmp_path: Path) -> str:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text("print('training')\n")
    return str(code)


def _describe_like_sagemaker(session: Any) -> None:
    """moto's DescribeTrainingJob drops ``KmsKeyId`` and ``Environment`` (``attach`` reads
    them); put them back as each job was created."""
    environments: dict[str, dict[str, str]] = {}

    def before(params: dict[str, Any], **_: Any) -> None:
        environments[params["TrainingJobName"]] = dict(params.get("Environment") or {})

    def after(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("OutputDataConfig", {}).setdefault("KmsKeyId", "")
        if parsed.get("TrainingJobName") in environments:
            parsed["Environment"] = environments[parsed["TrainingJobName"]]

    events = session.sagemaker_client.meta.events
    events.register("provide-client-params.sagemaker.CreateTrainingJob", before)
    events.register("after-call.sagemaker.DescribeTrainingJob", after)


def _job_leaves_its_records(aws: Any, session: Any, experiment: str) -> None:
    """What the container of a tracked job leaves when it ends (moto runs no container):
    its local copy of the run in ``output.tar.gz``, which ``fit(wait=True)`` reads."""

    def after(params: dict[str, Any], **_: Any) -> None:
        job = params["TrainingJobName"]
        status = json.dumps({"status": "completed", "last_epoch": 1}).encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo(f"sagetrack/{experiment}/{job}/status.json")
            info.size = len(status)
            tar.addfile(info, io.BytesIO(status))
        aws.s3.put_object(Bucket=aws.bucket, Key=f"{job}/output/output.tar.gz",
                          Body=buffer.getvalue())

    session.sagemaker_client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", after)


def _sdk_part(request: Request, *job_names: str, tracked: bool, console: bool = True,
              ) -> Request:
    """``request`` without sagetrack's documented additions, its job names as ``<job>``,
    ``<job1>``... ``console=False``: the request has no console metric definitions."""
    text = json.dumps(request)
    for i, name in enumerate(job_names):
        text = text.replace(name, f"<job{i or ''}>")
    request = json.loads(text)
    env = request.pop("Environment", None) or {}
    kept = {k: v for k, v in env.items() if not k.startswith("SAGETRACK")}
    if tracked:
        assert env.get("SAGETRACK") == "1", f"the tracked job has no SAGETRACK entry: {env}"
    if kept:
        request["Environment"] = kept
    spec = request["AlgorithmSpecification"]
    if tracked and console:  # the console definitions follow the user's; drop them
        definitions = spec.pop("MetricDefinitions")
        ours = [d for d in definitions if "#sagetrack" in d["Regex"]]
        assert ours, f"the tracked job has no console metric definitions: {definitions}"
        user = definitions[: len(definitions) - len(ours)]
        assert definitions[len(user):] == ours
        if user:
            spec["MetricDefinitions"] = user
    return request


def _launch_pair(aws: Any, sent_requests: Any, tmp_path: Path, *, wait: bool = False,
                 session: Any = None, **kwargs: Any) -> tuple[TensorFlow, Request, Request,
                                                              TensorFlow]:
    """Fit ``TensorFlow(**kwargs)`` tracked then with ``tracking=False``; the tracked
    estimator, both requests (checked equal but for sagetrack's additions) and the
    untracked estimator."""
    session = session or aws.sagemaker_session()
    requests = sent_requests(session)
    tracked = TensorFlow(tracking_uri=str(tmp_path / "store"), experiment="sdk",
                         sagemaker_session=session, **copy.deepcopy(kwargs))
    tracked.fit(f"s3://{aws.bucket}/data", wait=wait, logs="None")
    untracked = TensorFlow(tracking=False, sagemaker_session=session, **copy.deepcopy(kwargs))
    untracked.fit(f"s3://{aws.bucket}/data", wait=wait, logs="None")
    on, off = requests
    assert (_sdk_part(on, tracked.latest_training_job.name, tracked=True)
            == _sdk_part(off, untracked.latest_training_job.name, tracked=False))
    return tracked, on, off, untracked


# -- 1. deploy -----------------------------------------------------------------------------
def test_deploy_after_fit_wait_serves_the_jobs_model(aws, tmp_path: Path, sdk_args,
                                                     sent_requests, monkeypatch):
    monkeypatch.setattr("sagemaker.session.time.sleep", lambda _s: None)
    session = aws.sagemaker_session()
    _describe_like_sagemaker(session)
    _job_leaves_its_records(aws, session, "sdk")
    models = sent_requests(session, "CreateModel")
    est, _, _, plain = _launch_pair(aws, sent_requests, tmp_path, wait=True, session=session,
                                    source_dir=_code(tmp_path), **sdk_args)
    job = est.latest_training_job.name
    run = est.latest_run
    assert run.id == job and run.status == "completed"
    assert run.job["status"] == "Completed"
    assert run.artifacts["model"] == est.model_data == (
        f"s3://{aws.bucket}/{job}/output/model.tar.gz")

    client = session.sagemaker_client
    served: list[dict[str, Any]] = []
    for estimator in (est, plain):
        predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                                     wait=False)
        endpoint = client.describe_endpoint(EndpointName=predictor.endpoint_name)
        config = client.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"])
        variant = config["ProductionVariants"][0]
        assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
        model = client.describe_model(ModelName=variant["ModelName"])
        assert model["PrimaryContainer"]["ModelDataUrl"] == estimator.model_data
        assert "tensorflow-inference:2.16" in model["PrimaryContainer"]["Image"]
        served.append(model)
    # the model is the SDK's: none of the training job's tracking settings reach it
    on, off = (json.loads(json.dumps(request).replace(name, "<model>").replace(
        estimator.latest_training_job.name, "<job>"))
        for request, name, estimator in zip(models, (m["ModelName"] for m in served),
                                            (est, plain), strict=True))
    assert on == off
    assert not [k for k in on["PrimaryContainer"].get("Environment", {})
                if k.startswith("SAGETRACK")]


# -- 2. spot training with checkpoints ------------------------------------------------------
def test_spot_training_with_checkpoints(aws, tmp_path: Path, sdk_args, sent_requests):
    checkpoints = f"s3://{aws.bucket}/checkpoints"
    est, request, *_ = _launch_pair(
        aws, sent_requests, tmp_path, source_dir=_code(tmp_path), use_spot_instances=True,
        max_run=3600, max_wait=7200, checkpoint_s3_uri=checkpoints,
        checkpoint_local_path="/opt/ml/checkpoints", **sdk_args)
    assert request["EnableManagedSpotTraining"] is True
    assert request["CheckpointConfig"] == {"S3Uri": checkpoints,
                                           "LocalPath": "/opt/ml/checkpoints"}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600,
                                            "MaxWaitTimeInSeconds": 7200}
    config = est.latest_run.job_config
    assert config["use_spot_instances"] is True
    assert (config["max_run"], config["max_wait"]) == (3600, 7200)
    assert config["checkpoint_s3_uri"] == checkpoints
    assert config["checkpoint_local_path"] == "/opt/ml/checkpoints"


# -- 3. model_dir=False ---------------------------------------------------------------------
def test_model_dir_false_sends_no_model_dir(aws, tmp_path: Path, sdk_args, sent_requests):
    est, request, *_ = _launch_pair(aws, sent_requests, tmp_path, source_dir=_code(tmp_path),
                                    model_dir=False, hyperparameters={"epochs": 3}, **sdk_args)
    hps = request["HyperParameters"]
    assert "model_dir" not in hps and hps["epochs"] == "3"
    run = est.latest_run
    assert run.params == {"epochs": 3}
    assert run.record["run_id"] == est.latest_training_job.name


# -- 4. distribution -------------------------------------------------------------------------
@pytest.mark.parametrize(("distribution", "instance", "versions", "expected"), [
    pytest.param({"parameter_server": {"enabled": True}}, "ml.m5.xlarge", ("2.16", "py310"),
                 {"sagemaker_parameter_server_enabled": "true"}, id="parameter_server"),
    pytest.param({"mpi": {"enabled": True, "processes_per_host": 2}}, "ml.m5.xlarge",
                 ("2.16", "py310"),
                 {"sagemaker_mpi_enabled": "true", "sagemaker_mpi_num_of_processes_per_host":
                  "2"}, id="mpi"),
    pytest.param({"multi_worker_mirrored_strategy": {"enabled": True}}, "ml.m5.xlarge",
                 ("2.16", "py310"),
                 {"sagemaker_multi_worker_mirrored_strategy_enabled": "true"}, id="mwms"),
    pytest.param({"smdistributed": {"dataparallel": {"enabled": True}}}, "ml.p4d.24xlarge",
                 ("2.11", "py39"),
                 {"sagemaker_distributed_dataparallel_enabled": "true",
                  "sagemaker_instance_type": '"ml.p4d.24xlarge"'}, id="smdataparallel"),
])
def test_distribution_reaches_the_request_and_the_record(
        aws, tmp_path: Path, sdk_args, sent_requests, distribution, instance, versions,
        expected):
    args = {**sdk_args, "instance_type": instance, "instance_count": 2,
            "framework_version": versions[0], "py_version": versions[1]}
    est, request, *_ = _launch_pair(aws, sent_requests, tmp_path, source_dir=_code(tmp_path),
                                    distribution=distribution, **args)
    hps = request["HyperParameters"]
    assert {k: hps.get(k) for k in expected} == expected
    assert request["ResourceConfig"]["InstanceCount"] == 2
    run = est.latest_run
    assert run.job_config["distribution"] == distribution
    assert run.record["sagemaker_params"].items() >= {
        k: json.loads(v) for k, v in expected.items()}.items()
    assert run.params == {"model_dir": hps["model_dir"].strip('"')}


def test_distribution_the_sdk_refuses_is_refused_unchanged(aws, sdk_args):
    """An smdataparallel job on a TensorFlow version the SDK does not support for it."""
    session = aws.sagemaker_session()
    args = {**sdk_args, "instance_type": "ml.p4d.24xlarge",
            "distribution": {"smdistributed": {"dataparallel": {"enabled": True}}},
            "sagemaker_session": session}
    with pytest.raises(ValueError) as sdk_error:
        TensorFlow(tracking=False, **args)
    with pytest.raises(ValueError) as tracked_error:
        TensorFlow(tracking_uri=f"s3://{aws.bucket}/t", **args)
    assert "not supported by smdataparallel" in str(sdk_error.value)
    assert str(tracked_error.value) == str(sdk_error.value)


# -- 5. git_config ---------------------------------------------------------------------------
REMOTE = "https://git.example.com/team/proj.git"


def _serve_as_remote(repo: Path, monkeypatch: pytest.MonkeyPatch, *urls: str) -> None:
    """Make git fetch ``urls`` from the local ``repo`` (``url.<repo>.insteadOf``).

    The SDK clones only ``https://`` and ssh URLs (``file://`` is refused by
    ``sagemaker.git_utils._sanitize_git_url``), and runs ``git clone`` with the caller's
    environment: git's own URL rewriting makes a real clone of a local repository.
    """
    monkeypatch.setenv("GIT_CONFIG_COUNT", str(len(urls)))
    for i, url in enumerate(urls):
        monkeypatch.setenv(f"GIT_CONFIG_KEY_{i}", f"url.file://{repo}.insteadOf")
        monkeypatch.setenv(f"GIT_CONFIG_VALUE_{i}", url)


def test_git_config_the_sdk_clones(aws, tmp_path: Path, sdk_args, sent_requests, monkeypatch):
    repo = make_repo(tmp_path)
    commit = git(repo, "rev-parse", "HEAD").strip()
    _serve_as_remote(repo, monkeypatch, REMOTE)
    git_config = {"repo": REMOTE, "branch": "main", "commit": commit}
    est, request, *_ = _launch_pair(aws, sent_requests, tmp_path, source_dir="src",
                                    git_config=git_config, **sdk_args)
    assert request["HyperParameters"]["sagemaker_program"] == '"train.py"'
    run = est.latest_run
    assert run.code["git_config"] == git_config
    assert run.code["entry_point"] == "train.py"
    # the tarball is what the SDK packed from its clone (the bootstrap is not listed)
    assert run.tarball["files"] == ["train.py"] and run.tarball["sha256"]


def test_git_config_credentials_are_redacted_in_the_record(aws, tmp_path: Path, sdk_args,
                                                           sent_requests, monkeypatch):
    repo = make_repo(tmp_path)
    _serve_as_remote(repo, monkeypatch, REMOTE, REMOTE.replace("//", "//s3cretTok3n@"))
    git_config = {"repo": REMOTE, "branch": "main", "token": "s3cretTok3n"}
    est, request, *_ = _launch_pair(aws, sent_requests, tmp_path, source_dir="src",
                                    git_config=git_config, **sdk_args)
    recorded = est.latest_run.code["git_config"]
    assert recorded["repo"] == REMOTE and recorded["branch"] == "main"
    assert "token" in recorded
    assert "s3cretTok3n" not in json.dumps(est.latest_run.record)
    assert "s3cretTok3n" not in json.dumps(request)


# -- 6. image_uri ----------------------------------------------------------------------------
def test_image_uri_override(aws, tmp_path: Path, sdk_args, sent_requests):
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-tf:custom"
    args = {k: v for k, v in sdk_args.items() if k not in ("framework_version", "py_version")}
    est, request, *_ = _launch_pair(aws, sent_requests, tmp_path, source_dir=_code(tmp_path),
                                    image_uri=image, **args)
    assert request["AlgorithmSpecification"]["TrainingImage"] == image
    assert est.latest_run.job_config["image_uri"] == image


# -- 7. HyperparameterTuner ------------------------------------------------------------------
def _tune(est: TensorFlow, bucket: str, name: str) -> Any:
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner

    tuner = HyperparameterTuner(est, "val_accuracy",
                                {"learning-rate": ContinuousParameter(0.01, 0.2)},
                                metric_definitions=[{"Name": "val_accuracy",
                                                     "Regex": "val_accuracy=(\\S+)"}],
                                max_jobs=2, max_parallel_jobs=1)
    tuner.fit(f"s3://{bucket}/data", wait=False, job_name=name)
    return tuner


def test_tuner_attach_and_best_estimator(aws, tmp_path: Path, sdk_args, sent_requests):
    """``HyperparameterTuner.attach`` reads what moto's DescribeHyperParameterTuningJob
    lacks; a handler adds it as SageMaker returns it: ``TrainingJobDefinition.ResourceConfig``
    (the SDK sends ``HyperParameterTuningResourceConfig`` but its ``attach`` reads
    ``ResourceConfig``), the ``_tuning_objective_metric`` static hyperparameter SageMaker adds
    (``attach`` deletes it), and ``BestTrainingJob`` (moto names a job that does not exist:
    no training job of a tuning job runs under moto), naming a job launched with the same
    estimator."""
    from sagemaker.tuner import HyperparameterTuner

    session = aws.sagemaker_session()
    _describe_like_sagemaker(session)
    requests = sent_requests(session, "CreateHyperParameterTuningJob")
    args = dict(source_dir=_code(tmp_path), sagemaker_session=session,
                hyperparameters={"epochs": 2}, **sdk_args)
    est = TensorFlow(tracking_uri=str(tmp_path / "store"), experiment="hpo", **args)
    est.fit(f"s3://{aws.bucket}/data", wait=False)
    best_job = est.latest_training_job.name
    plain = TensorFlow(tracking=False, **args)
    plain.fit(f"s3://{aws.bucket}/data", wait=False)  # the SDK keeps its model_dir for tuning
    suffix = uuid.uuid4().hex[:8]
    tuner = _tune(est, aws.bucket, f"hpo-on-{suffix}")
    untracked = _tune(plain, aws.bucket, f"hpo-off-{suffix}")
    on, off = requests
    tuning_job = tuner.latest_tuning_job.name
    # a tuner's own metric_definitions replace the estimator's (SDK behaviour), so the
    # console definitions do not reach a tuning job that names its metrics
    on_part = _sdk_part(on["TrainingJobDefinition"], tuning_job, best_job, tracked=True,
                        console=False)
    off_part = _sdk_part(off["TrainingJobDefinition"], untracked.latest_tuning_job.name,
                         plain.latest_training_job.name, tracked=False)
    assert on_part == off_part
    assert on_part["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "val_accuracy", "Regex": "val_accuracy=(\\S+)"}]
    static = on["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["sagemaker_estimator_class_name"] == '"TensorFlow"'
    assert static["sagemaker_estimator_module"] == '"sagetrack.estimator"'
    assert on["TrainingJobDefinition"]["Environment"]["SAGETRACK_LAUNCH"].startswith(
        "_launch/hpo/")
    assert est.latest_launch_record["run_id"] is None  # the tuner's template

    def best(parsed: dict[str, Any], **_: Any) -> None:
        definition = parsed["TrainingJobDefinition"]
        resources = definition["HyperParameterTuningResourceConfig"]
        definition.setdefault("ResourceConfig", {
            "InstanceType": resources["InstanceType"],
            "InstanceCount": resources["InstanceCount"],
            "VolumeSizeInGB": resources["VolumeSizeInGB"]})
        static = definition["StaticHyperParameters"]
        static.setdefault("_tuning_objective_metric", "val_accuracy")
        parsed["BestTrainingJob"] = {
            "TrainingJobName": best_job, "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"learning-rate": "0.1"}}

    session.sagemaker_client.meta.events.register(
        "after-call.sagemaker.DescribeHyperParameterTuningJob", best)
    attached = HyperparameterTuner.attach(tuning_job, sagemaker_session=session)
    assert isinstance(attached.estimator, sagetrack.TensorFlow)
    assert attached.estimator.source_dir == est.uploaded_code.s3_prefix
    best_estimator = attached.best_estimator()
    assert isinstance(best_estimator, sagetrack.TensorFlow)
    assert best_estimator.latest_training_job.name == best_job
    assert best_estimator.tracking_uri == str(tmp_path / "store")
    assert best_estimator.experiment == "hpo"
    run = best_estimator.latest_run
    assert run.id == best_job and run.params == {
        "epochs": 2, "model_dir": f"s3://{aws.bucket}/{best_job}/model"}
