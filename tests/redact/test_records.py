"""No secret reaches a record: plant each kind, run the client, the container and one real
failing job, then grep every file sagetrack left (store, local mirror, output archive,
unsent copy)."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from sagetrack import TensorFlow
from sagetrack._redact import REDACTED
from sagetrack.api import Store
from tests.support.aws import REGION, ROLE
from tests.support.repo import git
from tests.support.scripts import run_script

SDK_ARGS = dict(entry_point="train.py", role=ROLE, instance_type="ml.m5.xlarge",
                instance_count=1, framework_version="2.16", py_version="py310")

AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEBYaDExampleSessionTokenValue1234567890abcdef"
GITHUB_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"
DB_PASSWORD = "correct-horse-battery-staple"
URL_PASSWORD = "urlpass-5f3a9"
REMOTE_TOKEN = "s3cretTok3n"  # in the git_repo fixture's remote URL
CAMEL_PASSWORD = "camelPass-77f1"
CLIENT_SECRET = "cl1ent-s3cret-9q"
NETRC_PASSWORD = "netrc-pw-4411"
PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAexamplekeymaterial\n"
               "-----END RSA PRIVATE KEY-----")
SECRETS = [AWS_KEY_ID, AWS_SECRET, SESSION_TOKEN, GITHUB_TOKEN, DB_PASSWORD, URL_PASSWORD,
           REMOTE_TOKEN, "examplekeymaterial", CAMEL_PASSWORD, CLIENT_SECRET, NETRC_PASSWORD]


def grep(root: Path, secrets: list[str] = SECRETS) -> list[tuple[str, str]]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path.relative_to(root)), s) for s in secrets if s.encode() in data]
    return found


def plant_in_source(src: Path) -> None:
    """Secrets in untracked files and in the uncommitted diff of a tracked one."""
    (src / ".env").write_text(f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n"
                              f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\nDB_PASSWORD={DB_PASSWORD}\n")
    (src / "key.pem").write_text(PRIVATE_KEY + "\n")
    (src / ".netrc").write_text(f"machine db.example.com login bob password {NETRC_PASSWORD}\n")
    (src / "settings.py").write_text(f'password: str = "{CAMEL_PASSWORD}"\n'
                                     f'CONFIG = {{"clientSecret": "{CLIENT_SECRET}"}}\n')
    (src / "train.py").write_text(f"TOKEN = '{GITHUB_TOKEN}'\n"  # a dirty, tracked file
                                  f'os.environ["DB_PASSWORD"] = "{DB_PASSWORD}"\n')


def test_client_records_hold_no_secrets(aws, git_repo: Path, tmp_path: Path, monkeypatch):
    src = git_repo / "src"
    plant_in_source(src)
    store = tmp_path / "store"
    hyperparameters = {"aws-key": AWS_KEY_ID, "db_password": DB_PASSWORD,
                       "dbPassword": CAMEL_PASSWORD, "clientSecret": CLIENT_SECRET,
                       "data-url": f"https://bob:{URL_PASSWORD}@db.example.com/x",
                       "nested": {"secret": AWS_SECRET, "epochs": 3}, "max_tokens": 512}
    environment = {"SESSION": SESSION_TOKEN, "API_TOKEN": GITHUB_TOKEN,
                   "githubToken": GITHUB_TOKEN}
    est = TensorFlow(source_dir=str(src), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(store), hyperparameters=hyperparameters,
                     environment=environment, **SDK_ARGS)
    est.fit(f"s3://{aws.bucket}/d", wait=False)
    assert grep(store) == []
    run = est.latest_run
    assert run.params["nested"]["epochs"] == 3 and run.params["max_tokens"] == 512
    assert run.params["dbPassword"] == REDACTED
    assert REDACTED in run.diff and "key.pem" in run.diff and ".netrc" in run.diff
    assert run.code["remote"] == "https://git.example.com/team/proj.git"
    git(git_repo, "status")  # the repository itself is untouched

    # a store that cannot be written: the local copy kept for later is redacted too
    monkeypatch.delenv("SAGETRACK_STRICT")
    home = tmp_path / "home"
    monkeypatch.setenv("SAGETRACK_HOME", str(home))
    est2 = TensorFlow(source_dir=str(src), sagemaker_session=aws.sagemaker_session(),
                      tracking_uri="s3://no-such-bucket-redact/track",
                      hyperparameters=hyperparameters, environment=environment, **SDK_ARGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est2.fit(f"s3://{aws.bucket}/d", wait=False)
    assert list(home.rglob("run.json")) and grep(home) == []


def test_container_records_hold_no_secrets(tmp_path: Path):
    out = run_script(tmp_path, f"""
        import sys
        raise RuntimeError(
            "cannot connect with password={DB_PASSWORD}; the token is {SESSION_TOKEN}")
    """, args=["--db-password", DB_PASSWORD, f"--token={GITHUB_TOKEN}",
               "--dbPassword", CAMEL_PASSWORD],
        env={"SM_HP_DB_PASSWORD": DB_PASSWORD, "TF_SECRET_KEY": AWS_SECRET,
             "SAGEMAKER_SESSION_TOKEN": SESSION_TOKEN, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
             "SM_CHANNEL_URL": f"https://u:{URL_PASSWORD}@host/data",
             "SM_HP_DBPASSWORD": CAMEL_PASSWORD, "SM_HP_CLIENTSECRET": CLIENT_SECRET,
             "SM_HPS": json.dumps({"dbPassword": CAMEL_PASSWORD, "epochs": 3}),
             "SM_USER_ARGS": json.dumps(["--dbPassword", CAMEL_PASSWORD])})
    assert out.returncode == 1
    assert grep(tmp_path / "store") == []
    assert grep(tmp_path / "opt_ml" / "output") == []
    env = json.loads((tmp_path / "store/exp/job-1/environment.json").read_text())
    variables = env["environment_variables"]
    assert variables["SM_HP_DB_PASSWORD"] == REDACTED and variables["SM_HP_DBPASSWORD"] == REDACTED
    assert "--dbPassword" in env["argv"] and REDACTED in env["argv"]


FAILING = """
    import argparse, os
    parser = argparse.ArgumentParser()
    parser.add_argument("--apiToken", required=True)
    parser.add_argument("--epochs", type=int)
    args, _ = parser.parse_known_args()
    print("training with", len(args.apiToken), "token characters", flush=True)
    raise RuntimeError(f"cannot reach the database: the password is {os.environ['DB_PASSWORD']}")
"""


@pytest.mark.slow
def test_a_failing_job_leaves_no_secret_in_any_file(aws, tmp_path: Path, monkeypatch):
    """A real job (the local process runner, moto for S3) whose argv, environment, exception
    and SageMaker FailureReason carry secrets, from a source dir with secrets everywhere."""
    import boto3

    from sagetrack.local import LocalProcessSession

    monkeypatch.setenv("SAGETRACK_HOME", str(tmp_path / "home"))
    repo = tmp_path / "repo"
    src = repo / "src"
    src.mkdir(parents=True)
    (src / "train.py").write_text(textwrap.dedent(FAILING))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    plant_in_source(src)
    (src / "train.py").write_text(textwrap.dedent(FAILING) + f"# GITHUB_TOKEN={GITHUB_TOKEN}\n")
    # a 40 KB one-line untracked file of the shape that once took minutes to redact
    (src / "blob.txt").write_text("-" * 8000 + "ab01" * 8000 + "\n")
    aws.s3.put_object(Bucket=aws.bucket, Key="data/train.txt", Body=b"x")
    store = tmp_path / "store"
    est = TensorFlow(entry_point="train.py", source_dir=str(src), role=ROLE,
                     instance_type="local", instance_count=1, framework_version="2.16",
                     py_version="py310", sagemaker_session=LocalProcessSession(
                         boto_session=boto3.Session(region_name=REGION),
                         default_bucket=aws.bucket, work_dir=str(tmp_path / "jobs"),
                         keep_work_dir=True),
                     tracking_uri=str(store), experiment="leak",
                     hyperparameters={"apiToken": GITHUB_TOKEN, "dbPassword": CAMEL_PASSWORD,
                                      "epochs": 1},
                     environment={"DB_PASSWORD": DB_PASSWORD, "clientSecret": CLIENT_SECRET})
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
        est.fit(f"s3://{aws.bucket}/data", wait=True, logs="All")
    assert time.monotonic() - started < 120
    desc = est.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Failed"
    # SageMaker's own record of the failure carries the secrets verbatim...
    assert GITHUB_TOKEN in desc["FailureReason"] and DB_PASSWORD in desc["FailureReason"]
    # ...sagetrack's records do not
    run = Store(str(store)).run(desc["TrainingJobName"])
    assert run.status == "failed" and run.job["status"] == "Failed"
    assert REDACTED in run.job["failure_reason"] and REDACTED in run.failure["message"]
    assert grep(store) == []
    mirrors = [p for p in (tmp_path / "jobs").rglob("sagetrack")  # the kept host folders
               if p.is_dir() and p.parent.name == "data"]
    assert mirrors and all(grep(m) == [] for m in mirrors)
    assert grep(tmp_path / "home") == []
    archives = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket)["Contents"]
                if o["Key"].endswith("output/output.tar.gz")]
    assert archives
    for key in archives:
        body = aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and "sagetrack/" in m.name]
            assert members
            for member in members:
                data = _read(tar, member)
                assert [s for s in SECRETS if s.encode() in data] == [], member.name


def _read(tar: tarfile.TarFile, member: Any) -> bytes:
    fh = tar.extractfile(member)
    return fh.read() if fh else b""
