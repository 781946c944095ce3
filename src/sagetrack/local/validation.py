"""Checks that a ``CreateTrainingJob`` request can run as local processes, before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagetrack.local import contract
from sagetrack.local.errors import UnsupportedLocalFeatureError

__all__ = ["check_request"]


def check_request(request: Mapping[str, Any]) -> str | None:
    """Validate ``request``; return its TF distribution (``contract.DIST_*`` or ``None``).

    Raises :class:`UnsupportedLocalFeatureError` naming the SageMaker feature local
    processes cannot reproduce and what to use instead.
    """
    algo = request.get("AlgorithmSpecification") or {}
    if algo.get("AlgorithmName"):
        raise UnsupportedLocalFeatureError(
            f"AlgorithmSpecification.AlgorithmName={algo['AlgorithmName']!r}: marketplace "
            "algorithms cannot run as local processes. Use a framework estimator "
            "(e.g. sagemaker.tensorflow.TensorFlow) with an entry_point."
        )
    if algo.get("ContainerEntrypoint") or algo.get("ContainerArguments"):
        raise UnsupportedLocalFeatureError(
            "container_entry_point / container_arguments replace the container's own "
            "entry point, which local processes cannot reproduce; remove them to run "
            "the sagemaker-training toolkit as the SageMaker framework images do."
        )
    resource = request.get("ResourceConfig") or {}
    if resource.get("InstanceGroups"):
        raise UnsupportedLocalFeatureError(
            "Heterogeneous clusters (instance_groups) are not supported locally; "
            "use instance_count and instance_type instead."
        )
    count = int(resource.get("InstanceCount", 1))
    if count < 1:
        raise UnsupportedLocalFeatureError(f"InstanceCount must be >= 1, received {count}.")
    hps = request.get("HyperParameters") or {}
    distribution = contract.distribution_kind(hps, count)
    if "sagemaker_program" not in hps:
        raise UnsupportedLocalFeatureError(
            "The request has no 'sagemaker_program' hyperparameter, so the toolkit would "
            "have no entry point to run. Pass entry_point=... to the estimator."
        )
    default_mode = algo.get("TrainingInputMode", "File")
    for channel in request.get("InputDataConfig") or []:
        _check_channel(channel, default_mode)
    return distribution


def _check_channel(channel: Mapping[str, Any], default_mode: str) -> None:
    name = channel.get("ChannelName")
    mode = channel.get("InputMode") or default_mode
    if mode == "Pipe":
        raise UnsupportedLocalFeatureError(
            f"Channel {name!r} uses input_mode='Pipe', which local processes do not "
            "support. Use 'File' (or 'FastFile', which is served as File)."
        )
    source = channel.get("DataSource") or {}
    if "S3DataSource" in source:
        s3_type = source["S3DataSource"].get("S3DataType", "S3Prefix")
        if s3_type != "S3Prefix":
            raise UnsupportedLocalFeatureError(
                f"Channel {name!r} has S3DataType={s3_type!r}; only 'S3Prefix' is "
                "supported locally. Pass the data's prefix instead of a manifest."
            )
        uri = source["S3DataSource"].get("S3Uri", "")
        if not (uri.startswith("s3://") or uri.startswith("file://")):
            raise UnsupportedLocalFeatureError(
                f"Channel {name!r} has S3Uri={uri!r}; expected s3:// or file://."
            )
    elif "FileDataSource" not in source:
        raise UnsupportedLocalFeatureError(
            f"Channel {name!r} uses {sorted(source)}; only S3 (s3://) and local "
            "(file://) data sources are supported locally (no EFS/FSx)."
        )
