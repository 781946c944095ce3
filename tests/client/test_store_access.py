"""The tracking store from the client: the default URI, the KMS key, keys that cannot escape
the store, and the local copy of records that could not be written."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from sagetrack import TensorFlow
from sagetrack.errors import ConfigurationError
from sagetrack.store.reader import Store


def test_default_tracking_uri_is_env_then_session_bucket(aws, tmp_path, monkeypatch, sdk_args):
    (tmp_path / "train.py").write_text("pass\n")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     **sdk_args)
    assert est.tracking_uri == f"s3://{aws.bucket}/sagetrack"
    monkeypatch.setenv("SAGETRACK_URI", str(tmp_path / "env-store"))
    est2 = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                      **sdk_args)
    assert est2.tracking_uri == str(tmp_path / "env-store")


def test_store_failure_at_fit_warns_keeps_a_local_copy_and_launches(
        aws, tmp_path, monkeypatch, sdk_args, sent_requests):
    monkeypatch.delenv("SAGETRACK_STRICT")
    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()
    requests = sent_requests(session)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri="s3://no-such-bucket-xyz/track", **sdk_args)
    home = tmp_path / "home"
    monkeypatch.setenv("SAGETRACK_HOME", str(home))  # read when the copy is written
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(f"s3://{aws.bucket}/d", wait=False)
    assert len(requests) == 1  # the job was launched
    messages = [str(w.message) for w in caught
                if "could not write the launch record" in str(w.message)]
    assert messages and str(home / "unsent") in messages[0]
    job = est.latest_training_job.name
    saved = [p.relative_to(home / "unsent").as_posix() for p in home.rglob("*.json")]
    assert saved and saved[0] in (f"s3_no-such-bucket-xyz_track/default/{job}/run.json",
                                  f"s3_no-such-bucket-xyz_track/default/{job}/status.json")


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


def test_kms_key_setting_is_read_when_the_store_is_opened(aws, monkeypatch):
    from sagetrack.client.store_access import TrackingStore

    sent: list[dict[str, Any]] = []
    aws.s3.meta.events.register("provide-client-params.s3.PutObject",
                                lambda params, **_: sent.append(dict(params)))
    uri = f"s3://{aws.bucket}/t"
    TrackingStore.open(uri, aws.s3).put("e/r/a.json", b"{}")
    monkeypatch.setenv("SAGETRACK_KMS_KEY_ID", "arn:aws:kms:us-east-1:123456789012:key/k2")
    TrackingStore.open(uri, aws.s3).put("e/r/b.json", b"{}")
    assert "SSEKMSKeyId" not in sent[0]
    assert sent[1]["SSEKMSKeyId"].endswith("key/k2")
