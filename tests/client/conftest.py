"""Fixtures of the client tests: the SDK arguments of a small job, and the requests the SDK
sends to SageMaker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.aws import ROLE

Requests = list[dict[str, Any]]


@pytest.fixture
def sdk_args() -> dict[str, Any]:
    """SDK arguments of a script-mode TensorFlow 2.16 job on one ml.m5.xlarge."""
    return dict(entry_point="train.py", role=ROLE, instance_type="ml.m5.xlarge",
                instance_count=1, framework_version="2.16", py_version="py310")


@pytest.fixture
def sent_requests() -> Callable[..., Requests]:
    """``sent_requests(session, operation="CreateTrainingJob")``: a list that collects the
    requests the SDK sends for ``operation``, exactly as botocore receives them."""

    def collect(session: Any, operation: str = "CreateTrainingJob") -> Requests:
        requests: Requests = []
        session.sagemaker_client.meta.events.register(
            f"provide-client-params.sagemaker.{operation}",
            lambda params, **_: requests.append(json.loads(json.dumps(params, default=str))))
        return requests

    return collect
