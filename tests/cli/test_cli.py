"""The ``sagetrack`` command against both store backends (local folder, S3 under moto)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sagetrack import TensorFlow
from sagetrack.cli.main import main
from sagetrack.store.backends import open_backend
from sagetrack.store.reader import Store

from ..conftest import ROLE, git
from ..support.records import write_pair, write_run


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def squash(text: str) -> str:
    """Text with runs of spaces collapsed (column widths vary with the content)."""
    return re.sub(r"[ \t]+", " ", text)


# -- runs ----------------------------------------------------------------------------------
def test_runs_table_filters_sorting_and_json(store_uri, capsys):
    write_pair(store_uri)
    write_run(store_uri, "resnet", "resnet-failed", status="failed", losses=[2.0],
              started="2024-05-03T00:00:00.000+00:00", ended="2024-05-03T00:01:05.000+00:00",
              failure={"type": "ValueError", "message": "bad batch", "traceback": "tb"})
    code, out, err = run_cli(capsys, "runs", "--uri", store_uri)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "START", "DURATION", "learning-rate", "warmup",
                                "val_loss", "val_accuracy", "loss", "COMMIT", "DIRTY"]
    assert lines[1].split()[:5] == ["resnet-failed", "failed", "2024-05-03", "00:00", "1m05s"]
    assert lines[2].split() == ["resnet-b", "completed", "2024-05-02", "09:00", "20m00s",
                                "0.05", "2", "0.5", "(0.45)", "0.5", "(0.55)", "0.4", "(0.35)",
                                "aaaaaaa", "yes"]
    assert "final value (best value when different)" in out

    code, out, _ = run_cli(capsys, "--uri", store_uri, "runs", "--sort", "val_loss", "-n", "2")
    assert [line.split()[0] for line in out.splitlines()[1:3]] == ["resnet-b", "resnet-a"]
    code, out, _ = run_cli(capsys, "runs", "--uri", store_uri, "--status", "completed",
                           "--sort", "accuracy", "--json")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["resnet-b", "resnet-a"]
    assert rows[0]["best"]["loss"] == 0.35 and rows[0]["metrics"]["loss"] == 0.4
    assert rows[0]["params"]["warmup"] == 2 and rows[0]["duration_s"] == 1200.0
    # listing refreshed the run index (settled runs)
    assert Store(store_uri).refresh_index()["resnet"]["from_index"] == 3


def test_runs_on_an_empty_store_and_unknown_experiment(store_uri, capsys):
    code, out, err = run_cli(capsys, "runs", "--uri", store_uri)
    assert (code, out) == (0, "") and "No runs in" in err and "fit()" in err
    assert run_cli(capsys, "runs", "--uri", store_uri, "--json")[1] == "[]\n"
    write_run(store_uri, "resnet", "r-1")
    code, out, err = run_cli(capsys, "runs", "--uri", store_uri, "-e", "vgg")
    assert code == 0 and "No runs in experiment 'vgg'. Experiments: resnet." in err
    code, out, err = run_cli(capsys, "runs", "--uri", store_uri, "--status", "failed")
    assert "No failed runs (of 1)." in err


# -- show ----------------------------------------------------------------------------------
def test_show_prints_every_record(store_uri, capsys):
    write_pair(store_uri)
    code, out, _ = run_cli(capsys, "show", "resnet-b", "--uri", store_uri)
    assert code == 0
    for expected in ("Run resnet-b (experiment resnet)", "status completed",
                     "learning-rate 0.05", "commit " + "a" * 40, "dirty yes",
                     "uncommitted 1 files, +1 -1 lines", "train.py +1 -1",
                     "training s3://bucket/cifar/train (4 objects, 4.0 KB, sha256",
                     "instances 1 x ml.m5.xlarge", "packages 4 installed",
                     "loss 0.4 best 0.35", "model.keras 1.2 KB"):
        assert expected in squash(out), expected
    code, out, _ = run_cli(capsys, "show", "resnet-b", "--uri", store_uri, "--json")
    doc = json.loads(out)
    assert doc["id"] == "resnet-b" and doc["record"]["params"]["warmup"] == 2
    assert doc["code_diff"].startswith("diff --git") and doc["environment"]["python"]


def test_show_failed_and_corrupt_runs(store_uri, capsys):
    write_run(store_uri, "e", "crashed", status="failed",
              failure={"type": "ValueError", "message": "bad batch",
                       "traceback": "Traceback...\nValueError: bad batch"})
    backend = open_backend(store_uri)
    backend.put("e/torn/run.json", b'{"params": {"epochs": 3')
    backend.put("e/torn/metrics.jsonl", b'{"epoch": 1, "metrics": {"loss": 1}}\n{"epo')
    code, out, _ = run_cli(capsys, "show", "crashed", "--uri", store_uri)
    assert code == 0 and "ValueError: bad batch" in out and "Failure" in out
    code, out, _ = run_cli(capsys, "show", "torn", "--uri", store_uri)
    assert code == 0
    assert "Problems (records unreadable or partial)" in out
    assert "run.json: not valid JSON" in out and "metrics.jsonl line 2: truncated" in out
    code, out, _ = run_cli(capsys, "runs", "--uri", store_uri)
    assert code == 0 and "unknown!" in out and "records unreadable or partial" in out


def test_unknown_and_ambiguous_run_ids(store_uri, capsys):
    write_pair(store_uri)
    code, out, err = run_cli(capsys, "show", "resnet-c", "--uri", store_uri)
    assert code == 1 and out == ""
    assert "No run with id 'resnet-c' in the store. Did you mean: resnet-" in err
    code, _, err = run_cli(capsys, "show", "resnet", "--uri", store_uri)
    assert code == 1 and "'resnet' is the start of 2 run ids" in err
    write_run(store_uri, "resnet", "vgg-2024-1")
    assert run_cli(capsys, "show", "vgg", "--uri", store_uri)[0] == 0  # unique prefix
    code, _, err = run_cli(capsys, "diff", "resnet-a", "nope", "--uri", store_uri)
    assert code == 1 and "No run with id 'nope'" in err


# -- diff and plot -------------------------------------------------------------------------
def test_diff_text_and_json(store_uri, capsys):
    write_pair(store_uri)
    code, out, _ = run_cli(capsys, "diff", "resnet-a", "resnet-b", "--uri", store_uri)
    assert code == 0
    for expected in ("~ learning-rate 0.1 -> 0.05", "+ warmup", "user code differs",
                     "-+print('lr 0.1')", "~ objects 3 -> 4", "~ numpy 1.26.4 -> 2.0.0",
                     "loss (min)"):
        assert expected in squash(out), expected
    code, out, _ = run_cli(capsys, "diff", "resnet-a", "resnet-b", "--uri", store_uri,
                           "--json")
    doc = json.loads(out)
    assert doc["params"]["added"] == {"warmup": 2}
    assert doc["data"][0]["status"] == "changed"


def test_plot_writes_an_image(store_uri, tmp_path, capsys):
    write_pair(store_uri)
    write_run(store_uri, "resnet", "empty", losses=[])
    target = tmp_path / "curves.png"
    code, out, err = run_cli(capsys, "plot", "resnet-a", "resnet-b", "empty", "--uri",
                             store_uri, "-o", str(target))
    assert code == 0 and target.read_bytes()[:4] == b"\x89PNG"
    assert "metrics: loss, accuracy" in out and "run empty recorded no metrics" in err
    code, out, _ = run_cli(capsys, "plot", "resnet-a", "--uri", store_uri, "--metric",
                           "val_loss", "-o", str(tmp_path / "one.png"), "--json")
    assert json.loads(out)["metrics"] == ["loss"]
    code, _, err = run_cli(capsys, "plot", "resnet-a", "--uri", store_uri, "-m", "f1",
                           "-o", str(tmp_path / "x.png"))
    assert code == 1 and "No run has metric 'f1'" in err


# -- reproduce and checkout (launched for real under moto) --------------------------------
@pytest.fixture
def launched(store_uri, aws, git_repo):
    src = git_repo / "src"
    (src / "train.py").write_text("print('uncommitted change')\n")
    for i in range(3):
        aws.s3.put_object(Bucket=aws.bucket, Key=f"cifar/train/{i}.npz", Body=b"x" * (i + 1))
    est = TensorFlow(entry_point="train.py", source_dir=str(src), role=ROLE,
                     instance_type="ml.m5.xlarge", instance_count=1, framework_version="2.16",
                     py_version="py310", sagemaker_session=aws.sagemaker_session(),
                     hyperparameters={"epochs": 3, "learning-rate": 0.1},
                     tracking_uri=store_uri, experiment="resnet")
    est.fit({"training": f"s3://{aws.bucket}/cifar/train"}, wait=False)
    return aws, store_uri, est.latest_training_job.name


def test_reproduce_round_trip_and_checkout(launched, capsys, tmp_path, git_repo):
    _aws, uri, original_id = launched
    code, out, err = run_cli(capsys, "reproduce", original_id, "--uri", uri, "--dry-run")
    assert code == 0, err
    assert "Dry run" in out and "sagetrack.TensorFlow(" in out and "image_uri=" in out
    assert "training: same (3 objects, 6 bytes)" in out
    assert [rid for _e, rid in Store(uri).run_ids()] == [original_id]  # nothing launched

    code, out, err = run_cli(capsys, "reproduce", original_id, "--uri", uri, "--json")
    assert code == 0, err
    launched_doc = json.loads(out)
    store = Store(uri)
    original, new = store.run(original_id), store.run(launched_doc["run_id"])
    assert launched_doc["reproduces"] == original_id
    assert new.record["reproduces"]["run_id"] == original_id
    assert {k: v for k, v in new.params.items() if k != "model_dir"} == \
        {k: v for k, v in original.params.items() if k != "model_dir"} == \
        {"epochs": 3, "learning-rate": 0.1}
    assert new.code["tarball"]["content_sha256"] == original.code["tarball"]["content_sha256"]
    assert new.inputs["training"]["sha256"] == original.inputs["training"]["sha256"]
    assert original.problems == [] and new.problems == []  # the client's records fit the schema

    code, out, _ = run_cli(capsys, "diff", original_id, new.id, "--uri", uri)
    assert "Hyperparameters (identical)" in out and "(same user code)" in out
    code, out, _ = run_cli(capsys, "show", new.id, "--uri", uri)
    assert f"run {original_id} (experiment resnet)" in squash(out)
    assert git(git_repo, "rev-parse", "HEAD").strip() in out  # the original's commit

    target = tmp_path / "handover"
    code, out, err = run_cli(capsys, "checkout", original_id, str(target), "--uri", uri)
    assert code == 0, err
    assert (target / "code" / "train.py").read_text() == "print('uncommitted change')\n"
    assert not (target / "code" / "sitecustomize.py").exists()
    assert not (target / "code" / "sagetrack").exists()
    assert json.loads((target / "hyperparameters.json").read_text())["epochs"] == 3
    assert f"sagetrack reproduce {original_id}" in (target / "README.md").read_text()
    code, _, err = run_cli(capsys, "checkout", original_id, str(target), "--uri", uri)
    assert code == 1 and "is not empty" in err


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # data is on S3 either way
def test_reproduce_refuses_changed_data(launched, capsys):
    aws, uri, original_id = launched
    aws.s3.put_object(Bucket=aws.bucket, Key="cifar/train/extra.npz", Body=b"more")
    code, out, err = run_cli(capsys, "reproduce", original_id, "--uri", uri)
    assert code == 1 and out == ""
    assert "input data of run" in err and "training: changed: 3 -> 4 objects" in err
    assert "--allow-data-change" in err
    code, out, err = run_cli(capsys, "reproduce", original_id, "--uri", uri, "--dry-run",
                             "--instance-type", "ml.c5.xlarge", "-p", "epochs=5")
    assert code == 1 and "instance_type='ml.c5.xlarge'" in out and "'epochs': 5" in out
    assert "a real launch would be refused" in err
    assert [rid for _e, rid in Store(uri).run_ids()] == [original_id]


# -- index, errors, usage ------------------------------------------------------------------
def test_index_command(store_uri, capsys):
    write_pair(store_uri)
    write_run(store_uri, "vgg", "vgg-1", status="running", ended=None)
    code, out, _ = run_cli(capsys, "index", "--uri", store_uri)
    assert code == 0
    assert "resnet: 2 runs, 2 settled runs indexed, 2 read from their records" in out
    assert "vgg: 1 runs, 0 settled runs indexed, 1 read from their records" in out
    code, out, _ = run_cli(capsys, "index", "--uri", store_uri, "-e", "resnet", "--json")
    assert json.loads(out) == {"resnet": {"runs": 2, "from_index": 2, "read": 0, "indexed": 2}}


def test_store_errors_are_clear(aws, tmp_path, capsys):
    code, out, err = run_cli(capsys, "runs", "--uri", "s3://no-such-bucket-here/sagetrack")
    assert code == 1 and out == ""
    assert "access denied" in err and "NoSuchBucket" in err and "credentials" in err
    code, _, err = run_cli(capsys, "show", "r-1", "--uri", str(tmp_path / "missing"))
    assert code == 1 and "No store at" in err and "does not exist" in err
    code, _, err = run_cli(capsys, "runs", "--uri", "gs://bucket/x")
    assert code == 1 and "scheme 'gs' is not supported" in err


def test_default_uri_is_env_then_session_bucket(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGETRACK_URI", str(tmp_path))
    write_run(str(tmp_path), "e", "from-env")
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0 and "from-env" in out
    # without it, the SageMaker session's default bucket; here AWS is unreachable
    import botocore.endpoint
    from botocore.exceptions import EndpointConnectionError

    def offline(self, *args, **kwargs):
        raise EndpointConnectionError(endpoint_url=self.host)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", offline)
    monkeypatch.delenv("SAGETRACK_URI")
    code, out, err = run_cli(capsys, "runs", "--json")
    assert code == 1 and out == ""
    assert "Cannot find the default store (the SageMaker session's default bucket)" in err
    assert "Pass --uri or set SAGETRACK_URI." in err


def test_usage_errors_exit_2_and_help_exits_0(capsys):
    assert run_cli(capsys)[0] == 2
    assert run_cli(capsys, "frobnicate")[0] == 2
    assert run_cli(capsys, "runs", "--limit", "many")[0] == 2
    assert run_cli(capsys, "runs", "--status", "done")[0] == 2
    code, _, err = run_cli(capsys, "show", "not/a/job")
    assert code == 2 and "Invalid run id" in err
    assert run_cli(capsys, "reproduce", "r-1", "-p", "novalue")[0] == 2
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("runs", "show", "diff", "plot", "reproduce", "checkout", "index"):
        assert command in out
    code, out, _ = run_cli(capsys, "reproduce", "--help")
    assert code == 0 and "--allow-data-change" in out and "--dry-run" in out
    assert run_cli(capsys, "--version")[1].startswith("sagetrack ")


def test_console_script_prints_clean_json(tmp_path):
    write_run(str(tmp_path), "e", "r-1")
    env = {**os.environ, "SAGETRACK_URI": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "sagetrack.cli", "runs", "--json"],
                            capture_output=True, text=True, env=env, timeout=120,
                            cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in json.loads(result.stdout)] == ["r-1"]
