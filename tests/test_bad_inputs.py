"""Bad input to a tracked estimator fails early: in the constructor (or at the start of
``fit()`` for its own arguments), before any AWS call, with a ConfigurationError whose
message names the value received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sagetrack import TensorFlow
from sagetrack.client.staging import RUNTIME_PACKAGE
from sagetrack.errors import ConfigurationError
from tests.support.aws import REGION, ROLE

SDK_ARGS = dict(entry_point="train.py", role=ROLE, instance_type="ml.m5.xlarge",
                instance_count=1, framework_version="2.16", py_version="py310")
LONG_PATH = "/tmp/" + "/".join(["d" * 200] * 25)  # beyond PATH_MAX
FORTY_ONE = [{"Name": f"m{i}", "Regex": "x"} for i in range(41)]

# (id, constructor arguments or {"fit": fit arguments}, text the message must contain);
# "{source}" in a value stands for the test's code folder
BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    # tracking_uri
    ("uri-scheme-gs", {"tracking_uri": "gs://bucket/x"}, "'gs://bucket/x'"),
    ("uri-scheme-http", {"tracking_uri": "http://example.com/x"}, "'http://example.com/x'"),
    ("uri-scheme-ftp", {"tracking_uri": "ftp://host/x"}, "'ftp://host/x'"),
    ("uri-s3-empty", {"tracking_uri": "s3://"}, "tracking_uri='s3://'"),
    ("uri-s3-one-slash", {"tracking_uri": "s3:/bucket/x"}, "'s3:/bucket/x'"),
    ("uri-s3-uppercase-bucket", {"tracking_uri": "s3://Bad_Bucket/x"}, "'s3://Bad_Bucket/x'"),
    ("uri-s3-short-bucket", {"tracking_uri": "s3://ab/x"}, "'s3://ab/x'"),
    ("uri-s3-ip-bucket", {"tracking_uri": "s3://192.168.0.1/x"}, "'s3://192.168.0.1/x'"),
    ("uri-s3-double-dot-bucket", {"tracking_uri": "s3://my..bucket/x"}, "'s3://my..bucket/x'"),
    ("uri-s3-dotdot", {"tracking_uri": "s3://bucket/../x"}, "'s3://bucket/../x'"),
    ("uri-s3-dot", {"tracking_uri": "s3://bucket/./x"}, "'s3://bucket/./x'"),
    ("uri-s3-empty-segment", {"tracking_uri": "s3://bucket//x"}, "'s3://bucket//x'"),
    ("uri-s3-query", {"tracking_uri": "s3://bucket/x?versionId=1"}, "versionId=1"),
    ("uri-s3-long-prefix", {"tracking_uri": "s3://bucket/" + "p" * 800}, "'s3://bucket/ppp"),
    ("uri-file-relative", {"tracking_uri": "file://relative/x"}, "'file://relative/x'"),
    ("uri-file-bare", {"tracking_uri": "file://"}, "tracking_uri='file://'"),
    ("uri-file-no-slash", {"tracking_uri": "file:relative"}, "'file:relative'"),
    ("uri-file-host", {"tracking_uri": "file://host.example.com/x"}, "host.example.com"),
    ("uri-file-encoded-nul", {"tracking_uri": "file:///tmp/%00x"}, "'file:///tmp/%00x'"),
    ("uri-nul", {"tracking_uri": "/tmp/a\x00b"}, "'/tmp/a\\x00b'"),
    ("uri-newline", {"tracking_uri": "/tmp/a\nb"}, "'/tmp/a\\nb'"),
    ("uri-carriage-return", {"tracking_uri": "runs\r"}, "'runs\\r'"),
    ("uri-tab", {"tracking_uri": "s3://bucket/a\tb"}, "'s3://bucket/a\\tb'"),
    ("uri-long-name", {"tracking_uri": "/tmp/" + "a" * 300}, "'/tmp/aaaa"),
    ("uri-beyond-path-max", {"tracking_uri": LONG_PATH}, "'/tmp/dddd"),
    ("uri-beyond-env-limit", {"tracking_uri": "/tmp/" + "ab/" * 200}, "'/tmp/ab/ab/"),
    ("uri-empty", {"tracking_uri": ""}, "tracking_uri=''"),
    ("uri-blank", {"tracking_uri": "   "}, "tracking_uri='   '"),
    ("uri-int", {"tracking_uri": 42}, "tracking_uri=42"),
    ("uri-bytes", {"tracking_uri": b"/tmp/x"}, "tracking_uri=b'/tmp/x'"),
    ("uri-list", {"tracking_uri": ["s3://bucket"]}, "['s3://bucket']"),
    # experiment
    ("experiment-slash", {"experiment": "a/b"}, "experiment='a/b'"),
    ("experiment-dotdot", {"experiment": ".."}, "experiment='..'"),
    ("experiment-empty", {"experiment": ""}, "experiment=''"),
    ("experiment-long", {"experiment": "x" * 129}, "experiment='xxxx"),
    ("experiment-reserved", {"experiment": "_index"}, "experiment='_index'"),
    ("experiment-space", {"experiment": "my exp"}, "experiment='my exp'"),
    ("experiment-newline", {"experiment": "exp\n"}, "experiment='exp\\n'"),
    ("experiment-dash", {"experiment": "-exp"}, "experiment='-exp'"),
    ("experiment-int", {"experiment": 7}, "experiment=7"),
    # track_batches
    ("track-batches-negative", {"track_batches": -1}, "track_batches=-1"),
    ("track-batches-bool", {"track_batches": True}, "track_batches=True"),
    ("track-batches-str", {"track_batches": "10"}, "track_batches='10'"),
    ("track-batches-float", {"track_batches": 2.5}, "track_batches=2.5"),
    ("track-batches-numpy-float", {"track_batches": np.float64(5.0)}, "track_batches=np.float"),
    ("track-batches-numpy-bool", {"track_batches": np.True_}, "track_batches=np.True_"),
    ("track-batches-numpy-negative", {"track_batches": np.int64(-3)}, "track_batches=np.int64(-3)"),
    ("track-batches-none", {"track_batches": None}, "track_batches=None"),
    # tracking
    ("tracking-str", {"tracking": "yes"}, "tracking='yes'"),
    ("tracking-int", {"tracking": 1}, "tracking=1"),
    ("tracking-none", {"tracking": None}, "tracking=None"),
    ("tracking-false-str", {"tracking": "false"}, "tracking='false'"),
    # environment
    ("environment-list", {"environment": ["A=1"]}, "['A=1']"),
    ("environment-str", {"environment": "A=1"}, "'A=1'"),
    ("environment-too-many", {"environment": {f"K{i}": "v" for i in range(95)}}, "95 entries"),
    ("environment-digit-name", {"environment": {"1BAD": "v"}}, "'1BAD'"),
    ("environment-dash-name", {"environment": {"BAD-NAME": "v"}}, "'BAD-NAME'"),
    ("environment-int-name", {"environment": {5: "v"}}, "Received: 5"),
    ("environment-int-value", {"environment": {"A": 1}}, "A=1"),
    ("environment-long-value", {"environment": {"A": "x" * 513}}, "A='xxxx"),
    ("environment-ours", {"environment": {"SAGETRACK_URI": "/tmp/other"}}, "'/tmp/other'"),
    ("environment-ours-metrics", {"environment": {"SAGETRACK_METRICS_0": "[]"}},
     "SAGETRACK_METRICS_0='[]'"),
    # hyperparameters
    ("hyperparameters-object", {"hyperparameters": {"when": object()}}, "when=<object"),
    ("hyperparameters-set", {"hyperparameters": {"s": {1, 2}}}, "s={1, 2}"),
    ("hyperparameters-numpy-int", {"hyperparameters": {"n": np.int64(3)}}, "n=np.int64(3)"),
    ("hyperparameters-str", {"hyperparameters": "epochs=3"}, "hyperparameters='epochs=3'"),
    ("hyperparameters-long-value", {"hyperparameters": {"big": "x" * 2600}}, "big=\"xxxx"),
    ("hyperparameters-too-many", {"hyperparameters": {f"h{i}": i for i in range(101)}},
     "101 entries"),
    # metric_definitions
    ("metrics-bad-regex", {"metric_definitions": [{"Name": "x", "Regex": "("}]}, "'('"),
    ("metrics-str", {"metric_definitions": "loss"}, "'loss'"),
    ("metrics-too-many", {"metric_definitions": FORTY_ONE}, "Received 41"),
    ("metrics-empty-name", {"metric_definitions": [{"Name": "", "Regex": "x"}]}, "''"),
    ("metrics-empty-regex", {"metric_definitions": [{"Name": "x", "Regex": ""}]}, "''"),
    ("metrics-no-regex", {"metric_definitions": [{"Name": "x"}]}, "[{'Name': 'x'}]"),
    ("metrics-long-name", {"metric_definitions": [{"Name": "n" * 256, "Regex": "x"}]}, "'nnnn"),
    ("metrics-long-regex", {"metric_definitions": [{"Name": "x", "Regex": "y" * 501}]},
     "'yyyy"),
    ("metrics-int-name", {"metric_definitions": [{"Name": 1, "Regex": "x"}]},
     "[{'Name': 1, 'Regex': 'x'}]"),
    # source_dir and dependencies clashes
    ("source-dir-sitecustomize", {"source_dir": "{source}", "_files": ["sitecustomize.py"]},
     "source_dir='"),
    ("source-dir-runtime-package",
     {"source_dir": "{source}", "_files": [f"{RUNTIME_PACKAGE}/__init__.py"]}, "source_dir='"),
    ("dependencies-runtime-package", {"dependencies": [f"/tmp/lib/{RUNTIME_PACKAGE}"]},
     f"'/tmp/lib/{RUNTIME_PACKAGE}'"),
    ("dependencies-sitecustomize", {"dependencies": ["/tmp/lib/sitecustomize.py"]},
     "'/tmp/lib/sitecustomize.py'"),
    ("dependencies-str", {"dependencies": "lib"}, "dependencies='lib'"),
    ("dependencies-int-entry", {"dependencies": ["lib", 3]}, "dependencies=['lib', 3]"),
    # fit(): job_name, skip_if_done
    ("job-name-int", {"fit": {"job_name": 123}}, "job_name=123"),
    ("job-name-bytes", {"fit": {"job_name": b"job"}}, "job_name=b'job'"),
    ("job-name-list", {"fit": {"job_name": ["job"]}}, "job_name=['job']"),
    ("job-name-newline", {"fit": {"job_name": "job\nname"}}, "job_name='job\\nname'"),
    ("job-name-nul", {"fit": {"job_name": "job\x00"}}, "job_name='job\\x00'"),
    ("job-name-tab", {"fit": {"job_name": "job\tx"}}, "job_name='job\\tx'"),
    ("skip-if-done-str", {"fit": {"skip_if_done": "yes"}}, "skip_if_done='yes'"),
    ("skip-if-done-int", {"fit": {"skip_if_done": 1}}, "skip_if_done=1"),
]


def test_the_table_is_large_and_its_ids_unique():
    assert len(BAD_INPUTS) >= 60
    assert len({case_id for case_id, _, _ in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize(("kwargs", "received"), [(k, r) for _, k, r in BAD_INPUTS],
                         ids=[case_id for case_id, _, _ in BAD_INPUTS])
def test_bad_input_fails_before_any_aws_call_naming_the_value(kwargs, received, tmp_path,
                                                             monkeypatch):
    import boto3
    import botocore.endpoint
    import sagemaker

    calls: list[Any] = []

    def no_network(*args: Any, **kw: Any) -> Any:
        calls.append(args)
        raise AssertionError("an AWS call was made")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", no_network)
    source = tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text("pass\n")
    kwargs = dict(kwargs)
    for name in kwargs.pop("_files", []):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("")
    fit_args = kwargs.pop("fit", None)
    args = {**SDK_ARGS, "source_dir": str(source), "tracking_uri": str(tmp_path / "store"),
            **{k: str(source) if v == "{source}" else v for k, v in kwargs.items()}}
    with pytest.raises(ConfigurationError) as raised:
        if fit_args is None:
            TensorFlow(**args)
        else:  # the constructor makes no AWS call either
            session = sagemaker.Session(boto_session=boto3.Session(region_name=REGION),
                                        default_bucket="some-bucket")
            TensorFlow(sagemaker_session=session, **args).fit("s3://some-bucket/data",
                                                              wait=False, **fit_args)
    assert received in str(raised.value)
    assert calls == []
    assert not (tmp_path / "store").exists()
    assert not list(Path(tmp_path).glob("**/unsent/**/*.json"))
