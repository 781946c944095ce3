"""Bad arguments fail in the estimator's constructor, before any AWS call, saying what was
received."""

from __future__ import annotations

import pytest

from sagetrack import TensorFlow
from sagetrack.client.staging import RUNTIME_PACKAGE
from sagetrack.errors import ConfigurationError

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
    ({"hyperparameters": {"when": object()}}, "'when'"),
    ({"hyperparameters": {"s": {1, 2}}}, "not JSON-serialisable"),
    ({"metric_definitions": [{"Name": "x", "Regex": "("}]}, "Invalid regex"),
    ({"metric_definitions": "loss"}, "metric_definitions"),
    ({"metric_definitions": [{"Name": f"m{i}", "Regex": "x"} for i in range(41)]}, "at most 40"),
    ({"environment": {f"K{i}": "v" for i in range(95)}}, "SageMaker allows 100"),
    ({"environment": ["A=1"]}, "environment"),
    ({"dependencies": [f"/tmp/somewhere/{RUNTIME_PACKAGE}"]}, "clashes"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS,
                         ids=[f"{next(iter(k))}-{i}" for i, (k, _) in enumerate(BAD_ARGUMENTS)])
def test_bad_arguments_fail_in_the_constructor_before_any_aws_call(kwargs, message, tmp_path,
                                                                   monkeypatch, sdk_args):
    import botocore.endpoint

    def no_network(*args, **kw):
        raise AssertionError("an AWS call was made")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", no_network)
    (tmp_path / "train.py").write_text("pass\n")
    args = {**sdk_args, "source_dir": str(tmp_path), **kwargs}
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        TensorFlow(**args)
    assert not (tmp_path / "store").exists()


def test_sitecustomize_clash_is_refused(tmp_path, sdk_args):
    (tmp_path / "train.py").write_text("pass\n")
    (tmp_path / "sitecustomize.py").write_text("")
    with pytest.raises(ConfigurationError, match=r"sitecustomize\.py"):
        TensorFlow(source_dir=str(tmp_path), **sdk_args)


def test_missing_credentials_for_an_s3_store_fail_early(tmp_path, monkeypatch, sdk_args):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / "train.py").write_text("pass\n")
    with pytest.raises(ConfigurationError, match="No AWS credentials"):
        TensorFlow(source_dir=str(tmp_path), tracking_uri="s3://bucket/track", **sdk_args)


def test_relative_and_file_url_stores_are_made_absolute_and_recorded_so(
        aws, tmp_path, monkeypatch, sdk_args, sent_requests):
    """A relative folder means the notebook's folder, not the container's code folder."""
    import json

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("pass\n")
    monkeypatch.chdir(tmp_path)
    session = aws.sagemaker_session()
    requests = sent_requests(session)
    for uri, folder in (("runs", tmp_path / "runs"), ("./a/../runs2/", tmp_path / "runs2"),
                        (f"file://{tmp_path}/runs3", tmp_path / "runs3")):
        est = TensorFlow(source_dir="code", sagemaker_session=session, tracking_uri=uri,
                         **sdk_args)
        assert est.tracking_uri == str(folder)
        est.fit(f"s3://{aws.bucket}/data", wait=False)
        assert requests[-1]["Environment"]["SAGETRACK_URI"] == str(folder)
        record = json.loads((folder / "default" / est.latest_training_job.name / "run.json")
                            .read_text())
        assert record["tracking"]["uri"] == str(folder)
    monkeypatch.setenv("SAGETRACK_URI", "env-runs")
    est = TensorFlow(source_dir="code", sagemaker_session=session, **sdk_args)
    assert est.tracking_uri == str(tmp_path / "env-runs")


def test_integer_like_values_are_accepted_where_ints_are(aws, tmp_path, sdk_args,
                                                         sent_requests):
    import numpy as np

    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()
    requests = sent_requests(session)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), track_batches=np.int64(5),
                     **sdk_args)
    est.fit(f"s3://{aws.bucket}/data", wait=False)
    assert requests[0]["Environment"]["SAGETRACK_TRACK_BATCHES"] == "5"
    tracking = est.latest_run.record["tracking"]
    assert tracking["track_batches"] == 5 and type(tracking["track_batches"]) is int
