"""How fit() ended, recorded: a failed CreateTrainingJob is recorded against its launch."""

from __future__ import annotations

import pytest

from sagetrack import TensorFlow
from sagetrack.store.reader import Store


def test_create_training_job_failure_is_recorded_and_raised(aws, tmp_path, sdk_args):
    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()

    def refuse(params, **_):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad role"}},
                          "CreateTrainingJob")

    session.sagemaker_client.meta.events.register(
        "before-call.sagemaker.CreateTrainingJob", refuse)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), **sdk_args)
    with pytest.raises(Exception, match="bad role"):
        est.fit(f"s3://{aws.bucket}/d", wait=False)
    (run,) = Store(str(tmp_path / "store")).list_runs()
    assert run.status == "failed"
    assert "bad role" in run.failure["message"]
