"""The job supervisor with a fake, instant "toolkit": stop/kill, timeouts, failures, state.

These call the process-backed client directly with hand-written requests and replace the
toolkit command with a tiny script, so each job takes about a second.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import sagetrack.local.client as client_module
import sagetrack.local.processes as processes_module
from sagetrack.local import LocalJobApiError, LocalJobInterrupted, LocalProcessSagemakerClient
from tests.local.helpers import ROLE, make_estimator, write_source

FAKE_TOOLKIT = r"""
import json, os, signal, sys, time
base = os.environ["SAGEMAKER_BASE_DIR"]
with open(os.path.join(base, "input", "config", "resourceconfig.json")) as f:
    host = json.load(f)["current_host"]
mode = os.environ["FAKE_MODE"]
print("fake toolkit on " + host, flush=True)
if mode == "ignore_term":
    signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
    time.sleep(60)
elif mode == "sleep":
    time.sleep(60)
elif mode == "fail_second":
    if host == "algo-2":
        with open(os.path.join(base, "output", "failure"), "w") as f:
            f.write("custom failure text")
        sys.exit(3)
    time.sleep(60)
elif mode == "ready_then_term":
    def on_term(*a):
        print("fake got SIGTERM", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print("READY", flush=True)
    time.sleep(60)
elif mode == "code":
    with open(os.path.join(base, "model", "code.json"), "w") as f:
        json.dump(sorted(os.listdir(os.path.join(base, "code"))), f)
elif mode == "ok":
    with open(os.path.join(base, "model", "m.txt"), "w") as f:
        f.write(host)
    with open(os.path.join(base, "model", host + ".txt"), "w") as f:
        f.write(host)
"""


@pytest.fixture
def fake_toolkit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        processes_module, "toolkit_command", lambda python: [python, "-c", FAKE_TOOLKIT]
    )


def _request(tmp_path: Path, mode: str, hosts: int = 1, max_run: int = 60) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text("print('unused')\n")
    return {
        "TrainingJobName": f"fake-{uuid.uuid4().hex[:10]}",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "HyperParameters": {
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(f"file://{src}"),
        },
        "OutputDataConfig": {"S3OutputPath": f"file://{tmp_path}/out"},
        "ResourceConfig": {"InstanceCount": hosts, "InstanceType": "local", "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_run},
        "Environment": {"FAKE_MODE": mode},
        "Tags": [{"Key": "team", "Value": "ml"}],
    }


def _wait_for(job: Any, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(job.log_path).exists() and text in Path(job.log_path).read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {Path(job.log_path).read_text()}")


def test_sigkill_after_grace_when_sigterm_is_ignored(
    fake_toolkit: None, make_session: Any, tmp_path: Path
) -> None:
    session = make_session(stop_grace_seconds=1)
    request = _request(tmp_path, "ignore_term")
    session.sagemaker_client.create_training_job(**request)
    job = session.sagemaker_client.get_job(request["TrainingJobName"])
    _wait_for(job, "fake toolkit on algo-1")
    started = time.monotonic()
    session.stop_training_job(request["TrainingJobName"])
    assert session.describe_training_job(request["TrainingJobName"])["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    assert job.wait(15)
    assert time.monotonic() - started < 10
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Stopped"
    assert "ignoring SIGTERM" in Path(job.log_path).read_text()
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Stopping", "Uploading", "Stopped"]


def test_max_runtime_stops_the_job(fake_toolkit: None, make_session: Any, tmp_path: Path) -> None:
    session = make_session(stop_grace_seconds=5)
    request = _request(tmp_path, "sleep", max_run=1)
    session.sagemaker_client.create_training_job(**request)
    desc = session.wait_for_job(request["TrainingJobName"])
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"
    model = Path(f"{tmp_path}/out/{request['TrainingJobName']}/output/model.tar.gz")
    assert model.exists()
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == f"file://{model}"


def test_first_host_failure_fails_the_job_and_stops_the_others(
    fake_toolkit: None, make_session: Any, tmp_path: Path
) -> None:
    from sagemaker.exceptions import UnexpectedStatusException

    session = make_session(stop_grace_seconds=5)
    request = _request(tmp_path, "fail_second", hosts=2)
    started = time.monotonic()
    session.sagemaker_client.create_training_job(**request)
    with pytest.raises(UnexpectedStatusException, match="custom failure text"):
        session.wait_for_job(request["TrainingJobName"])
    assert time.monotonic() - started < 20  # algo-1 did not sleep its 60 s
    desc = session.describe_training_job(request["TrainingJobName"])
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: [algo-2] custom failure text"
    assert "ModelArtifacts" not in desc
    out = Path(f"{tmp_path}/out/{request['TrainingJobName']}/output")
    assert sorted(p.name for p in out.iterdir()) == ["output.tar.gz"]


def test_file_output_state_file_tags_and_unique_names(
    fake_toolkit: None, make_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    session = make_session(work_dir=work)
    request = _request(tmp_path, "ok", hosts=2)
    name = request["TrainingJobName"]
    session.sagemaker_client.create_training_job(**request)
    desc = session.wait_for_job(name)
    assert desc["TrainingJobStatus"] == "Completed"
    model = tmp_path / "out" / name / "output" / "model.tar.gz"
    with tarfile.open(model) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert files == {"m.txt": b"algo-2", "algo-1.txt": b"algo-1", "algo-2.txt": b"algo-2"}
    assert not list((work / "runs").iterdir())  # per-host dirs removed (keep_work_dir=False)
    assert session.sagemaker_client.list_tags(ResourceArn=desc["TrainingJobArn"]) == {
        "Tags": [{"Key": "team", "Value": "ml"}]
    }
    with pytest.raises(LocalJobApiError) as err:
        session.sagemaker_client.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ResourceInUse"

    # A new session in a "new process" (empty registry) reads the state file.
    monkeypatch.setattr(client_module, "_REGISTRY", {})
    other = make_session(work_dir=work)
    assert isinstance(other.sagemaker_client, LocalProcessSagemakerClient)
    again = other.describe_training_job(name)
    assert again["TrainingJobStatus"] == "Completed"
    assert again["ModelArtifacts"] == desc["ModelArtifacts"]
    assert again["TrainingEndTime"] == desc["TrainingEndTime"]
    listed = other.sagemaker_client.list_training_jobs(NameContains=name)
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == [name]
    assert other.sagemaker_client.list_tags(ResourceArn=desc["TrainingJobArn"])["Tags"]
    other.logs_for_job(name)  # prints the stored log; must not fail


def test_job_of_a_dead_process_reads_as_failed(make_session: Any, tmp_path: Path) -> None:
    work = tmp_path / "work"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    request = _request(tmp_path, "sleep")
    (work / "jobs").mkdir(parents=True)
    state = {"request": request, "owner_pid": dead.pid, "status": "InProgress"}
    (work / "jobs" / f"{request['TrainingJobName']}.json").write_text(json.dumps(state))
    desc = make_session(work_dir=work).describe_training_job(request["TrainingJobName"])
    assert desc["TrainingJobStatus"] == "Failed"
    assert f"pid {dead.pid}" in desc["FailureReason"]


def test_network_isolation_code_channel_is_extracted(
    fake_toolkit: None, make_session: Any, tmp_path: Path
) -> None:
    """With network isolation the SDK ships the code as channel "code" and points
    sagemaker_submit_directory at /opt/ml/input/data/code/sourcedir.tar.gz."""
    code = tmp_path / "codechannel"
    code.mkdir()
    (tmp_path / "train.py").write_text("print('x')\n")
    with tarfile.open(code / "sourcedir.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "train.py", arcname="train.py")
    request = _request(tmp_path, "code")
    request["EnableNetworkIsolation"] = True
    request["HyperParameters"]["sagemaker_submit_directory"] = json.dumps(
        "/opt/ml/input/data/code/sourcedir.tar.gz"
    )
    request["InputDataConfig"] = [
        {
            "ChannelName": "code",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"file://{code}",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
    ]
    session = make_session()
    session.sagemaker_client.create_training_job(**request)
    desc = session.wait_for_job(request["TrainingJobName"])
    assert desc["EnableNetworkIsolation"] is True
    model = tmp_path / "out" / request["TrainingJobName"] / "output" / "model.tar.gz"
    with tarfile.open(model) as tar:
        listing = json.loads(tar.extractfile("code.json").read())  # type: ignore[union-attr]
    assert listing == ["train.py"]


def test_ctrl_c_while_fit_waits_stops_the_job(
    fake_toolkit: None, make_session: Any, tmp_path: Path
) -> None:
    """Ctrl-C in fit(): the job is stopped and a KeyboardInterrupt gets out of fit()
    (the SDK's telemetry wrapper would swallow a bare KeyboardInterrupt)."""
    session = make_session(stop_grace_seconds=10)
    src = write_source(tmp_path / "src", "print('unused')\n")
    est = make_estimator(
        session, src, model_dir=False, environment={"FAKE_MODE": "ready_then_term"}
    )
    work = Path(session.work_dir)

    def interrupt_when_ready() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for log in work.glob("jobs/*.log"):
                if "READY" in log.read_text(errors="replace"):
                    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does to fit()
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_when_ready, daemon=True)
    watcher.start()
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt) as err, redirect_stdout(out):
        est.fit(f"file://{src}")
    watcher.join()
    assert isinstance(err.value, LocalJobInterrupted)
    desc = est.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Stopped"
    assert "fake got SIGTERM" in out.getvalue()  # streamed until the job ended
