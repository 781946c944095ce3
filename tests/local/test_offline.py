"""Offline sessions: no credentials, no bucket, no network; the SDK hooks that keep code and
output in the local bucket; container paths; the hints for older scripts.

Every test here runs with no AWS credentials or endpoint in the environment, an empty
``HOME``, and a socket guard that fails the test on any connection outside loopback.
"""

from __future__ import annotations

import json
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagetrack.local import LocalModeError, LocalProcessSession, contract, diagnostics
from sagetrack.local import offline as offline_mod
from tests.local.helpers import ROLE, make_estimator, write_source

_CLEARED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
            "SAGEMAKER_USER_CONFIG_OVERRIDE", "SAGETRACK_URI")


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A machine with no AWS set-up that is not an EC2 instance; returns its ``HOME``."""
    import boto3

    home = tmp_path / "home"
    home.mkdir()
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setattr(offline_mod, "could_be_ec2", lambda: False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return home


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and fail the test on) every connection or look-up outside loopback."""
    tried: list[str] = []

    def loopback(host: Any) -> bool:
        host = host.decode() if isinstance(host, bytes) else str(host or "")
        return host == "" or host.startswith(("localhost", "127.", "::1"))

    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not loopback(address[0]):
            tried.append(f"connect {address!r}")
            raise ConnectionRefusedError(111, "no network in this test")
        connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not loopback(host):
            tried.append(f"look up {host!r}")
            raise socket.gaierror(-2, "no network in this test")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield tried
    assert tried == []


def offline_session(tmp_path: Path, **kwargs: Any) -> LocalProcessSession:
    kwargs.setdefault("stop_grace_seconds", 20)
    return LocalProcessSession(work_dir=tmp_path / "work", **kwargs)


# ----------------------------------------------------------------------------- deciding
def test_a_machine_without_aws_set_up_gets_an_offline_session(no_aws, no_network, tmp_path):
    import os

    session = offline_session(tmp_path)

    assert session.offline is True
    assert session.local_bucket == str(tmp_path / "work" / "bucket")
    assert session.boto_region_name == offline_mod.DEFAULT_REGION
    modules = session.sagemaker_config["SageMaker"]["PythonSDK"]["Modules"]
    assert modules["TelemetryOptOut"] is True
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    with pytest.raises(LocalModeError, match=r"offline.*bucket"):
        session.default_bucket()
    assert session.boto_session.get_credentials() is None  # asked no metadata service


def test_default_work_dir_is_under_sagetrack_home(no_aws, monkeypatch, tmp_path):
    from sagetrack.local import default_work_dir

    monkeypatch.setenv("SAGETRACK_HOME", str(tmp_path / "st"))
    assert default_work_dir() == str(tmp_path / "st" / "local")
    assert LocalProcessSession().local_bucket == str(tmp_path / "st" / "local" / "bucket")


@pytest.mark.parametrize(("setup", "expected"), [
    ({}, False),
    ({"env": {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}}, True),
    ({"credentials": "[default]\naws_access_key_id = AKIDEXAMPLE\n"
                     "aws_secret_access_key = x\n"}, True),
    ({"config": "[default]\nrole_arn = arn:aws:iam::1:role/r\n"
                "credential_source = Environment\n"}, True),
    ({"config": "[default]\nsso_session = corp\n"}, True),
    ({"config": "[default]\nregion = eu-west-1\n"}, False),
    ({"env": {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials"}}, True),
    ({"env": {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token"}}, True),
])
def test_credentials_configured_reads_environment_and_files_only(
        no_aws, no_network, monkeypatch, setup, expected):
    import boto3

    aws = no_aws / ".aws"
    aws.mkdir()
    for name in ("credentials", "config"):
        if name in setup:
            (aws / name).write_text(setup[name])
    for key, value in setup.get("env", {}).items():
        monkeypatch.setenv(key, value)
    assert offline_mod.credentials_configured(boto3.Session()) is expected


def test_explicit_keys_bucket_or_endpoint_keep_the_session_online(no_aws, no_network):
    import boto3

    keys = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x",
                         region_name="eu-west-1")
    assert offline_mod.credentials_configured(keys)
    assert not offline_mod.decide_offline(None, boto_session=boto3.Session(),
                                          default_bucket="b", s3_endpoint_url=None)
    assert not offline_mod.decide_offline(None, boto_session=boto3.Session(),
                                          default_bucket=None,
                                          s3_endpoint_url="http://127.0.0.1:1")
    assert offline_mod.decide_offline(True, boto_session=keys, default_bucket="b",
                                      s3_endpoint_url=None)


def test_offline_must_be_a_bool_or_none(no_aws, tmp_path):
    with pytest.raises(ValueError, match="offline='yes'"):
        offline_session(tmp_path, offline="yes")


def test_forced_offline_keeps_a_given_bucket_name_without_checking_it(
        no_aws, no_network, tmp_path):
    session = offline_session(tmp_path, offline=True, default_bucket="my-bucket")
    assert session.default_bucket() == "my-bucket"


def test_credentials_and_moto_give_an_online_session(make_session):
    session = make_session()
    assert session.offline is False and session.local_bucket is None


def test_online_session_without_network_says_how_to_go_offline(monkeypatch, tmp_path):
    # credentials but no network: the SDK's default-bucket look-up (STS) cannot connect
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    getaddrinfo = socket.getaddrinfo

    def refuse_remote(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not str(host).startswith(("127.", "localhost")):
            raise socket.gaierror(-2, "no network in this test")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", refuse_remote)
    session = LocalProcessSession(work_dir=tmp_path / "work")
    assert session.offline is False
    with pytest.raises(LocalModeError, match=r"offline=True"):
        session.default_bucket()


# ----------------------------------------------------------------------------- the SDK hooks
def test_offline_estimator_packs_the_code_into_the_local_bucket(no_aws, no_network, tmp_path):
    source = write_source(tmp_path / "src", "print('hi')\n", {"helper.py": "X = 1\n"})
    dep = tmp_path / "dep.py"
    dep.write_text("Y = 2\n")
    session = offline_session(tmp_path, default_bucket_prefix="team")
    est = make_estimator(session, source, dependencies=[str(dep)])

    est._prepare_for_training(job_name="job-1")

    bucket = Path(session.local_bucket)
    assert est.output_path == f"file://{bucket}/team/"
    tarball = bucket / "team" / "job-1" / "source" / "sourcedir.tar.gz"
    assert est.uploaded_code.s3_prefix == f"file://{tarball}"
    with tarfile.open(tarball) as tar:
        assert sorted(m.name for m in tar.getmembers()) == ["dep.py", "helper.py", "train.py"]
    hps = est.hyperparameters()
    assert json.loads(hps["sagemaker_submit_directory"]) == f"file://{tarball}"
    assert json.loads(hps["model_dir"]) == f"file://{bucket}/team/job-1/model"
    assert json.loads(hps["sagemaker_region"]) == "us-east-1"


def test_a_given_model_dir_output_path_or_file_code_location_is_kept(make_session, tmp_path):
    source = write_source(tmp_path / "src", "print('hi')\n")
    session = make_session()
    est = make_estimator(session, source, model_dir="/opt/ml/model",
                         output_path=f"file://{tmp_path}/out",
                         code_location=f"file://{tmp_path}/code")

    est._prepare_for_training(job_name="job-2")

    assert est.output_path == f"file://{tmp_path}/out"
    code = tmp_path / "code" / "job-2" / "source" / "sourcedir.tar.gz"
    assert est.uploaded_code.s3_prefix == f"file://{code}" and code.is_file()
    assert json.loads(est.hyperparameters()["model_dir"]) == "/opt/ml/model"


def test_tracked_estimator_records_to_the_local_bucket_by_default(no_aws, no_network, tmp_path):
    from sagetrack import TensorFlow

    session = offline_session(tmp_path)
    est = TensorFlow(entry_point="train.py",
                     source_dir=str(write_source(tmp_path / "src", "print('hi')\n")),
                     role="arn:aws:iam::111122223333:role/r", instance_type="local",
                     instance_count=1, framework_version="2.16", py_version="py310",
                     sagemaker_session=session)
    assert est.tracking_uri == f"{session.local_bucket}/sagetrack"


# ----------------------------------------------------------------------------- pure helpers
def test_container_paths_in_values_point_into_the_base_dir():
    hps = {"model_dir": '"/opt/ml/model"', "data": '"/opt/ml/input/data/training"',
           "epochs": "3", "name": '"/opt/mlx"', "raw": "/opt/ml", "other": '"s3://b/k"'}
    assert contract.map_container_values(hps, "/base/algo-1", encoded=True) == {
        "model_dir": '"/base/algo-1/model"', "data": '"/base/algo-1/input/data/training"',
        "epochs": "3", "name": '"/opt/mlx"', "raw": "/base/algo-1", "other": '"s3://b/k"'}
    env = {"CKPT": "/opt/ml/checkpoints", "PATH": "/usr/bin:/opt/ml/code"}
    assert contract.map_container_values(env, "/b", encoded=False) == {
        "CKPT": "/b/checkpoints", "PATH": "/usr/bin:/opt/ml/code"}


# Failure texts as the toolkit reports them (the error line of the script's traceback),
# taken from real runs with TensorFlow 2.21 / Keras 3.15.
_KERAS3_RESET = "AttributeError: 'Mean' object has no attribute 'reset_states'"
_KERAS3_SAVE = ("ValueError: Invalid filepath extension for saving. Please add either a "
                "`.keras` extension for the native Keras format (recommended) or a `.h5` "
                "extension. Received: filepath=/tmp/model.")
_S3 = ("tensorflow.python.framework.errors_impl.UnimplementedError: File system scheme 's3' "
       "not implemented (file: 's3://bucket/job/model/variables')")
_OPT_ML = "FileNotFoundError: [Errno 2] No such file or directory: '/opt/ml/model/weights.h5'"
_ESTIMATOR = "AttributeError: module 'tensorflow' has no attribute 'estimator'"


@pytest.mark.parametrize(("failure", "request_", "says"), [
    (_KERAS3_RESET, {}, "TF_USE_LEGACY_KERAS"),
    (_KERAS3_SAVE, {}, "TF_USE_LEGACY_KERAS"),
    (_S3, {"HyperParameters": {"model_dir": '"s3://bucket/job/model"'}},
     "model_dir='/opt/ml/model'"),
    (_S3, {}, "no S3 file system"),
    (_OPT_ML, {}, "SM_MODEL_DIR"),
    ("PermissionError: [Errno 13] Permission denied: '/opt/ml'", {}, "container path"),
    (_ESTIMATOR, {}, "TensorFlow 2.16"),
])
def test_failure_hints_name_the_fix(failure, request_, says):
    hint = diagnostics.failure_hint(f"AlgorithmError: ExecuteUserScriptError:\n{failure}",
                                    request_)
    assert hint is not None and says in hint


def test_no_hint_for_other_failures_or_keras2_jobs():
    assert diagnostics.failure_hint("ZeroDivisionError: division by zero", {}) is None
    legacy = {"Environment": {"TF_USE_LEGACY_KERAS": "1"}}
    assert diagnostics.failure_hint(_KERAS3_RESET, legacy) is None


def test_the_hint_survives_truncation():
    reason = diagnostics.with_hint("x" * 5000, "do this", 1024)
    assert len(reason) == 1024 and reason.endswith("\nsagetrack.local: do this")
    assert diagnostics.with_hint("short", None, 1024) == "short"


KERAS2_SCRIPT = """\
import argparse
from tensorflow import keras

parser = argparse.ArgumentParser()
parser.add_argument("--model_dir")
args = parser.parse_args()
loss = keras.metrics.Mean()
loss.update_state(2.0)
# loss.reset_states() in a comment is ignored
loss.reset_states()
print("KERAS", type(loss).__module__.split(".")[0], flush=True)
"""


def test_version_notes_name_keras2_lines(monkeypatch, tmp_path):
    from sagetrack.local._shim import version_notes

    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    write_source(tmp_path, KERAS2_SCRIPT, {"model.py": "import tensorflow as tf\n"
                                                       "est = tf.estimator.Estimator\n"})
    notes = version_notes(str(tmp_path), "train.py")
    assert notes[0].startswith("train.py:10 uses reset_states()")
    assert notes[1].startswith("model.py:2 uses tf.estimator")
    assert any("TF_USE_LEGACY_KERAS" in n for n in notes)
    assert any("removed in TensorFlow 2.16" in n for n in notes)

    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    assert [n for n in version_notes(str(tmp_path), "train.py") if "Keras 2" in n] == []


# ----------------------------------------------------------------------------- jobs
PATHS_SCRIPT = """\
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--model_dir", required=True)
parser.add_argument("--data", required=True)
args = parser.parse_args()
assert args.model_dir == os.environ["SM_MODEL_DIR"], (args.model_dir, os.environ["SM_MODEL_DIR"])
text = open(os.path.join(args.data, "a.txt")).read()
os.makedirs(os.environ["CKPT"], exist_ok=True)
open(os.path.join(os.environ["CKPT"], "step-1"), "w").write("1")
open(os.path.join(args.model_dir, "weights.txt"), "w").write("read " + text)
print("PATHS", args.model_dir, args.data, os.environ["CKPT"], flush=True)
"""


@pytest.mark.slow
def test_offline_job_maps_container_paths_given_through_the_sdk(no_aws, no_network, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    session = offline_session(tmp_path)
    est = make_estimator(session, write_source(tmp_path / "src", PATHS_SCRIPT),
                         model_dir="/opt/ml/model",
                         hyperparameters={"data": "/opt/ml/input/data/training"},
                         environment={"CKPT": "/opt/ml/checkpoints"})

    est.fit({"training": f"file://{data}"}, logs="None")

    desc = est.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert json.loads(desc["HyperParameters"]["model_dir"]) == "/opt/ml/model"  # as sent
    model = Path(est.model_data[len("file://"):])
    assert model.parent.parent.parent == Path(session.local_bucket)
    with tarfile.open(model) as tar:
        assert tar.extractfile("weights.txt").read() == b"read hello"  # type: ignore


@pytest.mark.slow
def test_keras2_script_gets_an_early_notice_a_hint_and_runs_with_legacy_keras(
        no_aws, no_network, tmp_path):
    from sagemaker.exceptions import UnexpectedStatusException

    source = write_source(tmp_path / "src", KERAS2_SCRIPT)
    session = offline_session(tmp_path)
    est = make_estimator(session, source)
    with pytest.raises(UnexpectedStatusException, match="TF_USE_LEGACY_KERAS"):
        est.fit(logs="None")
    job = session.sagemaker_client.get_job(est.latest_training_job.name)
    log = Path(job.log_path).read_text()
    notice = log.index("[sagetrack.local] train.py:10 uses reset_states()")
    assert notice < log.index("has no attribute 'reset_states'")  # before the script ran

    legacy = make_estimator(session, source, environment={"TF_USE_LEGACY_KERAS": "1"})
    legacy.fit(logs="None")
    log = Path(session.sagemaker_client.get_job(legacy.latest_training_job.name).log_path
               ).read_text()
    assert "KERAS tf_keras" in log and "uses reset_states()" not in log


TRACKED_SCRIPT = """\
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--model_dir")
args = parser.parse_args()
open(os.path.join(os.environ["SM_MODEL_DIR"], "m.txt"), "w").write(str(args.epochs))
"""


@pytest.mark.slow
def test_offline_run_is_reproduced_and_checked_out_from_its_local_tarball(
        no_aws, no_network, tmp_path):
    import sagetrack
    from sagetrack import Store, TensorFlow

    store = tmp_path / "runs"
    source = write_source(tmp_path / "src", TRACKED_SCRIPT, {"util.py": "Z = 3\n"})
    est = TensorFlow(entry_point="train.py", source_dir=str(source),
                     role="arn:aws:iam::111122223333:role/r", instance_type="local",
                     instance_count=1, framework_version="2.16", py_version="py310",
                     hyperparameters={"epochs": 2}, tracking_uri=str(store),
                     sagemaker_session=offline_session(tmp_path))
    est.fit(logs="None")
    original = est.latest_run
    assert original.status == "completed"
    assert original.code["tarball"]["uri"].startswith("file://")

    # the source folder is gone: only the local bucket holds the code now
    for path in source.iterdir():
        path.unlink()
    again = sagetrack.reproduce(Store(str(store)).run(original.id), wait=True, logs="None",
                                sagemaker_session=offline_session(tmp_path))
    repeat = again.latest_run
    assert repeat.status == "completed"
    assert repeat.record["reproduces"]["run_id"] == original.id
    assert repeat.code["tarball"]["content_sha256"] == \
        original.code["tarball"]["content_sha256"]

    folder = sagetrack.checkout(Store(str(store)).run(original.id), tmp_path / "co")
    assert (folder / "code" / "util.py").read_text() == "Z = 3\n"
    assert (folder / "code" / "train.py").read_text() == TRACKED_SCRIPT


def test_attach_to_tracked_and_untracked_local_jobs_and_create_models(
        no_aws, no_network, tmp_path):
    """attach in local process mode, from a new session on the same work folder; the
    model is created as the SDK creates it (deploying needs SageMaker endpoints)."""
    import sagetrack

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    source = write_source(tmp_path / "src", """
        import os
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "w.txt"), "w") as fh:
            fh.write("weights")
    """)
    tracked = sagetrack.TensorFlow(
        entry_point="train.py", source_dir=str(source), role=ROLE, instance_type="local",
        instance_count=1, framework_version="2.16", py_version="py310",
        sagemaker_session=offline_session(tmp_path), experiment="attach")
    tracked.fit({"training": f"file://{data}"}, logs="None")
    untracked = make_estimator(offline_session(tmp_path), source)
    untracked.fit({"training": f"file://{data}"}, logs="None")

    for job, was_tracked in ((tracked.latest_training_job.name, True),
                             (untracked.latest_training_job.name, False)):
        est = sagetrack.TensorFlow.attach(job, sagemaker_session=offline_session(tmp_path))
        assert isinstance(est, sagetrack.TensorFlow) and est.model_data.startswith("file://")
        if was_tracked:
            assert est.experiment == "attach" and est.latest_run.id == job
            assert est.latest_run.status == "completed"
        model = est.create_model()
        assert model.model_data == est.model_data
