"""Network-isolated jobs: records travel in output.tar.gz and are ingested by the client."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from sagetrack import TensorFlow
from sagetrack.client.ingest import ingest_job
from sagetrack.store.backends import open_backend
from sagetrack.store.reader import Store


def output_archive(experiment: str, job: str) -> bytes:
    """What SM_OUTPUT_DATA_DIR/sagetrack holds at the end of a job, packed as SageMaker does."""
    files = {
        "status.json": json.dumps({"status": "completed", "last_epoch": 2,
                                   "metrics": {"loss": 0.5}}),
        "metrics.jsonl": "".join(json.dumps({"epoch": e, "metrics": {"loss": 1 / e}}) + "\n"
                                 for e in (1, 2)),
        "environment.json": json.dumps({"host": "algo-1"}),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"sagetrack/{experiment}/{job}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        other = b"user output"
        info = tarfile.TarInfo("predictions.csv")
        info.size = len(other)
        tar.addfile(info, io.BytesIO(other))
    return buffer.getvalue()


@pytest.fixture
def no_sleep(monkeypatch):
    import sagemaker.session

    monkeypatch.setattr(sagemaker.session.time, "sleep", lambda s: None)


def test_isolated_job_is_ingested_after_fit_wait(aws, tmp_path: Path, no_sleep, sdk_args,
                                                 sent_requests):
    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()
    requests = sent_requests(session)

    def job_writes_output(http_response, parsed, model, **_):
        job = requests[-1]["TrainingJobName"]
        aws.s3.put_object(Bucket=aws.bucket, Key=f"{job}/output/output.tar.gz",
                          Body=output_archive("iso", job))

    session.sagemaker_client.meta.events.register("after-call.sagemaker.CreateTrainingJob",
                                                  job_writes_output)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     enable_network_isolation=True, tracking_uri=str(tmp_path / "store"),
                     experiment="iso", **sdk_args)
    est.fit(f"s3://{aws.bucket}/d", wait=True, logs="None")
    assert requests[0]["Environment"]["SAGETRACK_OFFLINE"] == "1"
    run = est.latest_run
    assert run.status == "completed" and list(run.metrics.index) == [1, 2]
    assert run.job["status"] == "Completed"
    assert run.environment == {"host": "algo-1"}


def test_explicit_ingest_keeps_a_final_status_already_in_the_store(aws, tmp_path: Path, sdk_args):
    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=f"s3://{aws.bucket}/t", experiment="iso", **sdk_args)
    est.fit(f"s3://{aws.bucket}/d", wait=False)
    job = est.latest_training_job.name
    aws.s3.put_object(Bucket=aws.bucket, Key=f"{job}/output/output.tar.gz",
                      Body=output_archive("iso", job))
    store = open_backend(f"s3://{aws.bucket}/t")
    store.put(f"iso/{job}/status.json", json.dumps({"status": "failed"}).encode())
    written = ingest_job(job, store, sagemaker_client=session.sagemaker_client,
                         s3_client=aws.s3)
    assert sorted(k.rsplit("/", 1)[1] for k in written) == ["environment.json", "metrics.jsonl"]
    run = Store(f"s3://{aws.bucket}/t").run(job)
    assert run.status == "failed" and list(run.metrics.index) == [1, 2]


def test_sagetrack_ingest_command(aws, tmp_path: Path, capsys, sdk_args):
    from sagetrack.cli.main import main

    (tmp_path / "train.py").write_text("pass\n")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     enable_network_isolation=True, tracking_uri=str(tmp_path / "store"),
                     experiment="iso", **sdk_args)
    est.fit(f"s3://{aws.bucket}/d", wait=False)
    job = est.latest_training_job.name
    assert main(["ingest", job, "--uri", str(tmp_path / "store")]) == 1  # no output yet
    assert "Cannot read the job's output archive" in capsys.readouterr().err
    aws.s3.put_object(Bucket=aws.bucket, Key=f"{job}/output/output.tar.gz",
                      Body=output_archive("iso", job))
    assert main(["ingest", job, "--uri", str(tmp_path / "store")]) == 0
    assert f"Ingested 3 records of {job}" in capsys.readouterr().out
    assert Store(str(tmp_path / "store")).run(job).status == "completed"
