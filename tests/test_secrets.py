"""No secret reaches a record: plant each kind, run the client and the container, grep."""

from __future__ import annotations

from pathlib import Path

from sagetrack import TensorFlow

from .client.test_estimator import COMMON
from .conftest import git
from tests.support.scripts import run_script

AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEBYaDExampleSessionTokenValue1234567890abcdef"
GITHUB_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"
DB_PASSWORD = "correct-horse-battery-staple"
URL_PASSWORD = "urlpass-5f3a9"
REMOTE_TOKEN = "s3cretTok3n"  # in the git_repo fixture's remote URL
PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAexamplekeymaterial\n"
               "-----END RSA PRIVATE KEY-----")
SECRETS = [AWS_KEY_ID, AWS_SECRET, SESSION_TOKEN, GITHUB_TOKEN, DB_PASSWORD, URL_PASSWORD,
           REMOTE_TOKEN, "examplekeymaterial"]


def grep(root: Path) -> list[tuple[str, str]]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            found += [(str(path.relative_to(root)), s) for s in SECRETS if s in text]
    return found


def test_client_records_hold_no_secrets(aws, git_repo: Path, tmp_path: Path):
    src = git_repo / "src"
    (src / ".env").write_text(f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n"
                              f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\nDB_PASSWORD={DB_PASSWORD}\n")
    (src / "key.pem").write_text(PRIVATE_KEY + "\n")
    (src / "train.py").write_text(f"TOKEN = '{GITHUB_TOKEN}'\n")  # a dirty, tracked file
    store = tmp_path / "store"
    est = TensorFlow(source_dir=str(src), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(store),
                     hyperparameters={"aws-key": AWS_KEY_ID, "db_password": DB_PASSWORD,
                                      "data-url": f"https://bob:{URL_PASSWORD}@db.example.com/x",
                                      "nested": {"secret": AWS_SECRET, "epochs": 3}},
                     environment={"SESSION": SESSION_TOKEN, "API_TOKEN": GITHUB_TOKEN},
                     **COMMON)
    est.fit(f"s3://{aws.bucket}/d", wait=False)
    assert grep(store) == []
    run = est.latest_run
    assert run.params["nested"]["epochs"] == 3  # only secrets are touched
    assert "[REDACTED]" in run.diff and "key.pem" in run.diff
    assert run.code["remote"] == "https://git.example.com/team/proj.git"
    git(git_repo, "status")  # the repository itself is untouched


def test_container_records_hold_no_secrets(tmp_path: Path):
    out = run_script(tmp_path, f"""
        import sys
        raise RuntimeError("cannot connect with password={DB_PASSWORD}")
    """, args=["--db-password", DB_PASSWORD, f"--token={GITHUB_TOKEN}"],
        env={"SM_HP_DB_PASSWORD": DB_PASSWORD, "TF_SECRET_KEY": AWS_SECRET,
             "SAGEMAKER_SESSION_TOKEN": SESSION_TOKEN, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
             "SM_CHANNEL_URL": f"https://u:{URL_PASSWORD}@host/data"})
    assert out.returncode == 1
    assert grep(tmp_path / "store") == []
    assert grep(tmp_path / "opt_ml" / "output") == []
    env = (tmp_path / "store/exp/job-1/environment.json").read_text()
    assert "SM_HP_DB_PASSWORD" in env and "[REDACTED]" in env
