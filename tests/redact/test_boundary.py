"""The one redactor at the write boundary: every backend write, whatever the record, and the
lines the container prints. Records without secrets are written byte for byte."""

from __future__ import annotations

import gzip
import io
import json
import threading
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from sagetrack._redact import REDACTED, redact_bytes
from sagetrack.client.store_access import TrackingStore
from sagetrack.container.config import JobConfig
from sagetrack.container.recorder import Recorder
from sagetrack.container.writer import RecordWriter
from sagetrack.errors import StoreError
from sagetrack.store.backends import LocalBackend, S3Backend
from sagetrack.store.layout import dumps, dumps_row

V = "hunter2-Xq9"


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*"))
            if p.is_file() and secret.encode() in p.read_bytes()]


def test_json_records_are_redacted_by_key_and_value_in_their_own_style() -> None:
    doc = {"format": "sagetrack/1", "params": {"dbPassword": V, "epochs": 3, "note": "café"},
           "argv": ["train.py", "--api_token", V],
           "environment_variables": {"SM_HP_DBPASSWORD": V,
                                     "SM_HPS": json.dumps({"dbPassword": V, "lr": 0.1}),
                                     "SM_USER_ARGS": json.dumps(["--dbPassword", V])},
           "tags": [{"Key": "GITHUB_TOKEN", "Value": V}, {"Key": "team", "Value": "ml"}],
           "failure_reason": f"AlgorithmError: the password is {V}"}
    out = redact_bytes("exp/run/environment.json", dumps(doc))
    assert V.encode() not in out
    back = json.loads(out)
    assert back["params"] == {"dbPassword": REDACTED, "epochs": 3, "note": "café"}
    assert back["argv"] == ["train.py", "--api_token", REDACTED]
    assert json.loads(back["environment_variables"]["SM_HPS"]) == {"dbPassword": REDACTED,
                                                                    "lr": 0.1}
    assert back["tags"][1] == {"Key": "team", "Value": "ml"}
    assert out == dumps(back)  # written back exactly as the record writer writes it


def test_series_lines_without_secrets_are_kept_byte_for_byte() -> None:
    rows = [{"epoch": 1, "metrics": {"loss": 0.5, "tokens_per_sec": 1e3}},
            {"epoch": 2, "note": f"token={V}"}, {"epoch": 3, "metrics": {"loss": float("nan")}}]
    data = "".join(dumps_row(r) for r in rows).encode()
    out = redact_bytes("exp/run/metrics.jsonl", data).decode().splitlines(keepends=True)
    assert out[0] == dumps_row(rows[0]) and out[2] == dumps_row(rows[2])
    assert out[1] == dumps_row({"epoch": 2, "note": f"token={REDACTED}"})


def test_clean_records_come_back_as_the_same_bytes() -> None:
    for key, data in [("a/run.json", dumps({"params": {"max_tokens": 512}})),
                      ("a/metrics.jsonl", dumps_row({"epoch": 1}).encode()),
                      ("a/code.diff", b"+print('token count', n)\n"),
                      ("_index/a/runs.jsonl.gz", gzip.compress(b'{"id": "x"}\n')),
                      ("a/binary.bin", bytes(range(256)))]:
        assert redact_bytes(key, data) is data


def test_compressed_index_and_unparsable_records_are_redacted_too() -> None:
    index = gzip.compress(dumps_row({"id": "r1", "record": {"params": {"apiKey": V}}}).encode())
    assert V.encode() not in gzip.decompress(redact_bytes("_index/e/runs.jsonl.gz", index))
    torn = f'{{"params": {{"db_password": "{V}", "epochs'.encode()
    assert V.encode() not in redact_bytes("e/r/run.json", torn)
    not_gzip = f"password={V}".encode()
    assert V.encode() not in redact_bytes("e/r/x.gz", not_gzip)
    latin1 = f"caf\xe9 password={V}\n".encode("latin-1")  # not UTF-8: other bytes kept
    assert redact_bytes("e/r/code.diff", latin1) == f"caf\xe9 password={REDACTED}\n".encode(
        "latin-1")


def test_local_backend_writes_no_secret_whichever_way_it_writes(tmp_path: Path) -> None:
    store = LocalBackend(tmp_path)
    store.put("e/r/run.json", dumps({"params": {"githubToken": V}}))
    assert store.put_if_absent("e/r/job.json", dumps({"failure_reason": f"--api_token {V}"}))
    store.put("e/r/code.diff", f'+os.environ["DB_PASSWORD"] = "{V}"\n'.encode())
    assert files_holding(tmp_path, V) == []
    assert json.loads(store.get("e/r/run.json"))["params"]["githubToken"] == REDACTED


def test_s3_backend_writes_no_secret(aws) -> None:
    store = S3Backend(aws.bucket, "track", client=aws.s3)
    store.put("e/r/run.json", dumps({"params": {"clientSecret": V}}))
    assert store.put_if_absent("e/r/code.diff", f"export GITHUB_TOKEN={V}\n".encode())
    for key in ("track/e/r/run.json", "track/e/r/code.diff"):
        body = aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()
        assert V.encode() not in body and REDACTED.encode() in body


def test_unsent_copy_of_a_failed_write_holds_no_secret(tmp_path: Path, monkeypatch) -> None:
    class Down(LocalBackend):
        def put(self, key: str, data: bytes) -> None:
            raise StoreError("store unavailable")

    monkeypatch.setenv("SAGETRACK_HOME", str(tmp_path / "home"))
    store = TrackingStore(str(tmp_path / "store"), Down(tmp_path / "store"))
    with pytest.raises(StoreError):
        store.put("e/r/run.json", dumps({"params": {"dbPassword": V}}))
    assert list((tmp_path / "home").rglob("run.json"))  # the copy was kept...
    assert files_holding(tmp_path / "home", V) == []  # ...without the secret


def test_container_writer_and_printed_metric_lines_hold_no_secret(tmp_path: Path) -> None:
    config = JobConfig(uri=str(tmp_path / "store"), experiment="e", run_id="r", host="algo-1",
                       hosts=["algo-1"], chief=True, output_data_dir=str(tmp_path / "out"),
                       model_dir=str(tmp_path / "model"), checkpoint_dir=str(tmp_path / "ckpt"))
    writer = RecordWriter(LocalBackend(tmp_path / "store"), "e/r",
                          mirror=LocalBackend(tmp_path / "mirror"),
                          checkpoint=LocalBackend(tmp_path / "ckpt"), min_interval=0.01)
    recorder = Recorder(config, writer, print_metrics=True)
    printed = io.StringIO()
    with redirect_stdout(printed):
        recorder.start({"argv": ["train.py", "--dbPassword", V],
                        "environment_variables": {"SM_HP_DBPASSWORD": V}})
        recorder.log_epoch(1, {"loss": 0.5, f"password={V}": 1.0})
        recorder.log_metrics(0, {"acc": 0.9})
        # a field nobody redacts explicitly: the boundary still does
        writer.set("extra.json", {"note": f"connect with token {V!r}", "apiKey": V})
        recorder.finish("failed", RuntimeError(f"the password is {V}"))
        assert recorder.close(10.0)
    assert V not in printed.getvalue() and "#sagetrack epoch=1 loss=0.5" in printed.getvalue()
    for folder in ("store", "mirror", "ckpt"):
        assert list((tmp_path / folder).rglob("*.json")), folder
        assert files_holding(tmp_path / folder, V) == [], folder
    status = json.loads((tmp_path / "store/e/r/status.json").read_text())
    assert status["failure"]["message"] == f"the password is {REDACTED}"
    assert status["metrics"]["loss"] == 0.5


def test_concurrent_writers_share_the_redactor_safely(tmp_path: Path) -> None:
    store = LocalBackend(tmp_path)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(50):
                rows = "".join(dumps_row({"step": k, "note": f"token=t{i}-{k}-secret"})
                               for k in range(j + 1))
                store.put(f"e/r{i}/steps.jsonl", rows.encode())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(4):
        lines = (tmp_path / f"e/r{i}/steps.jsonl").read_text().splitlines()
        assert len(lines) == 50 and all(json.loads(x)["note"] == f"token={REDACTED}"
                                        for x in lines)


def test_records_written_without_redaction_show_no_secret_when_read(tmp_path: Path) -> None:
    """A record written past sagetrack's writer (another tool, an older version) is read
    through the same redactor: no view (Run, show, diff, report) shows its secrets."""
    from sagetrack.api import Store
    from sagetrack.cli import main

    from ..support.records import write_pair

    uri = str(tmp_path / "store")
    write_pair(uri)
    run_json = tmp_path / "store/resnet/resnet-b/run.json"
    record = json.loads(run_json.read_text())
    record["params"] |= {"db_password": "hunter2-db-pass",
                         "env": "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    run_json.write_text(json.dumps(record))  # past the writer's redactor
    (tmp_path / "store/resnet/resnet-b/code.diff").write_text(
        "+token = 'ghp_" + "a1B2" * 9 + "'\n")
    run = Store(uri).run("resnet-b", experiment="resnet")
    assert run.params["db_password"] == REDACTED
    assert "wJalrXUtnFEMI" not in run.params["env"] and "ghp_" not in run.diff
    out = io.StringIO()
    with redirect_stdout(out):
        for argv in (["show", "resnet-b"], ["diff", "resnet-a", "resnet-b"]):
            main([*argv, "--uri", uri, "-e", "resnet"])
    assert "hunter2" not in out.getvalue() and "wJalrXUtnFEMI" not in out.getvalue()
