"""Every AWS call in sagetrack's source is covered by the policies in docs/iam.md."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import boto3
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sagetrack"

# API operation -> IAM action (HeadObject is authorised by s3:GetObject, etc.)
IAM_ACTION = {
    ("s3", "PutObject"): "s3:PutObject",
    ("s3", "GetObject"): "s3:GetObject",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3", "GetBucketVersioning"): "s3:GetBucketVersioning",
    ("sagemaker", "DescribeTrainingJob"): "sagemaker:DescribeTrainingJob",
}
# calls made through the SageMaker SDK on the user's behalf (launching is the SDK's job)
SDK_OWNED = {"create_training_job", "create_hyper_parameter_tuning_job"}
# method names shared with the standard library (re.Pattern.search)
NOT_AWS = {"search"}


def operations() -> dict[str, tuple[str, str]]:
    ops = {}
    for service in ("s3", "sagemaker"):
        model = boto3.client(service, region_name="us-east-1").meta.service_model
        for name in model.operation_names:
            ops[xform_name(name)] = (service, name)
    return ops


def aws_calls() -> set[tuple[str, str]]:
    ops = operations()
    found: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if name == "get_paginator" and node.args and isinstance(node.args[0],
                                                                        ast.Constant):
                    name = str(node.args[0].value)
                if name in ops and name not in SDK_OWNED | NOT_AWS:
                    found.add(ops[name])
    return found


def policy_actions() -> set[str]:
    text = (ROOT / "docs" / "iam.md").read_text()
    actions: set[str] = set()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        for statement in json.loads(block)["Statement"]:
            actions.update(statement["Action"])
    return actions


def test_every_call_is_in_the_documented_policies():
    calls = aws_calls()
    assert ("s3", "PutObject") in calls and ("s3", "ListObjectsV2") in calls  # scan works
    unmapped = sorted(c for c in calls if c not in IAM_ACTION)
    assert unmapped == [], f"add these operations to IAM_ACTION and docs/iam.md: {unmapped}"
    missing = sorted({IAM_ACTION[c] for c in calls} - policy_actions())
    assert missing == [], f"docs/iam.md lacks {missing}"


def test_nothing_is_written_with_an_acl():
    for path in SRC.rglob("*.py"):
        assert "ACL=" not in path.read_text(), path
