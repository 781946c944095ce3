"""Run SageMaker training jobs as local processes, without Docker.

>>> from sagemaker.tensorflow import TensorFlow
>>> from sagetrack.local import LocalProcessSession
>>> est = TensorFlow(entry_point="train.py", source_dir="src", role=role,
...                  instance_type="local", instance_count=1, framework_version="2.16",
...                  py_version="py310", sagemaker_session=LocalProcessSession())
>>> est.fit({"training": "file:///data/cifar10/train"})  # doctest: +SKIP

Without AWS credentials the session is offline: code and output stay in a local folder
and nothing contacts AWS. See ``docs/local-mode.md``.
"""

from __future__ import annotations

from sagetrack.local.client import LocalProcessSagemakerClient, registered_jobs
from sagetrack.local.errors import (
    LocalJobApiError,
    LocalJobInterrupted,
    LocalModeError,
    UnsupportedLocalFeatureError,
)
from sagetrack.local.runner import LocalTrainingJob
from sagetrack.local.session import LocalProcessSession, default_work_dir

__all__ = [
    "LocalJobApiError",
    "LocalJobInterrupted",
    "LocalModeError",
    "LocalProcessSagemakerClient",
    "LocalProcessSession",
    "LocalTrainingJob",
    "UnsupportedLocalFeatureError",
    "default_work_dir",
    "registered_jobs",
]
