"""Tracking survives HyperparameterTuner and PipelineSession/TrainingStep."""

from __future__ import annotations

import json
from pathlib import Path

from sagetrack import TensorFlow


def test_tuner_jobs_carry_tracking_and_a_launch_template(aws, tmp_path: Path, sdk_args,
                                                         sent_requests):
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner

    (tmp_path / "train.py").write_text("pass\n")
    session = aws.sagemaker_session()
    requests = sent_requests(session, "CreateHyperParameterTuningJob")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     hyperparameters={"epochs": 2}, tracking_uri=f"s3://{aws.bucket}/t",
                     experiment="hpo", **sdk_args)
    tuner = HyperparameterTuner(est, "val_accuracy",
                                {"learning-rate": ContinuousParameter(0.01, 0.2)},
                                metric_definitions=[{"Name": "val_accuracy",
                                                     "Regex": "val_accuracy=(\\S+)"}],
                                max_jobs=2, max_parallel_jobs=1)
    tuner.fit(f"s3://{aws.bucket}/data", wait=False)
    (request,) = requests
    definition = request["TrainingJobDefinition"]
    env = definition["Environment"]
    assert env["SAGETRACK"] == "1" and env["SAGETRACK_EXPERIMENT"] == "hpo"
    template_key = env["SAGETRACK_LAUNCH"]
    assert template_key.startswith("_launch/hpo/")
    static = definition["StaticHyperParameters"]
    assert {k for k in static if not k.startswith("sagemaker_")} == {"epochs", "model_dir"}
    template = json.loads(aws.read(f"t/{template_key}.json"))
    assert template["run_id"] is None and template["params"]["epochs"] == 2
    assert template["code"]["tarball"]["sha256"]
    # no per-run record yet: each training job the tuner starts creates its own run
    assert not [k for k in aws.list_keys("t/hpo/")]


def test_pipeline_training_step_carries_tracking(aws, tmp_path: Path, sdk_args):
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.steps import TrainingStep

    (tmp_path / "train.py").write_text("pass\n")
    import boto3

    session = PipelineSession(boto_session=boto3.Session(region_name="us-east-1"),
                              default_bucket=aws.bucket)
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=f"s3://{aws.bucket}/t", experiment="pipe", **sdk_args)
    step = TrainingStep(name="train", step_args=est.fit(f"s3://{aws.bucket}/data"))
    definition = json.loads(Pipeline(name="p", steps=[step],
                                     sagemaker_session=session).definition())
    args = definition["Steps"][0]["Arguments"]
    assert args["Environment"]["SAGETRACK"] == "1"
    assert args["Environment"]["SAGETRACK_LAUNCH"].startswith("_launch/pipe/")
    names = [d["Name"] for d in args["AlgorithmSpecification"]["MetricDefinitions"]]
    assert "loss" in names
    assert any(k.startswith("t/_launch/pipe/") for k in aws.list_keys("t/"))
