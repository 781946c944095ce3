"""Describe the process the training runs in: versions, packages, hardware, settings."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

from .._redact import redact_argv, redact_mapping
from .config import JobConfig

__all__ = ["describe_environment"]

_ENV_PREFIXES = ("SM_", "SAGEMAKER_", "TF_", "CUDA", "NCCL_", "OMP_", "KMP_", "PYTHON",
                 "HOROVOD_", "OMPI_", "TRAINING_JOB_", "SAGETRACK", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "NVIDIA_", "LD_LIBRARY_PATH")
# large JSON blobs already recorded elsewhere in structured form
_ENV_SKIP = {"SM_TRAINING_ENV", "SM_HPS", "SM_USER_ARGS", "SM_INPUT_DATA_CONFIG",
             "SM_FRAMEWORK_PARAMS", "SM_RESOURCE_CONFIG"}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _gpu_count() -> int:
    value = os.environ.get("SM_NUM_GPUS")
    if value and value.isdigit():
        return int(value)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            return len(tf.config.list_physical_devices("GPU"))
        except Exception:
            return 0
    return 0


def describe_environment(config: JobConfig, *, packages: bool = True) -> dict[str, Any]:
    """A JSON-ready description of this process's environment (secrets redacted)."""
    keras_flavour = ("tf_keras" if os.environ.get("TF_USE_LEGACY_KERAS", "").lower()
                     in ("1", "true") else "keras")
    env = {k: v for k, v in os.environ.items()
           if k.startswith(_ENV_PREFIXES) and k not in _ENV_SKIP}
    info: dict[str, Any] = {
        "host": config.host,
        "hosts": config.hosts,
        "host_count": len(config.hosts),
        "chief": config.chief,
        "rank": config.rank,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "argv": redact_argv(list(sys.argv)),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu")
        or _version("tensorflow-gpu"),
        "keras": _version("tf-keras" if keras_flavour == "tf_keras" else "keras"),
        "keras_flavour": keras_flavour,
        "cpu_count": os.cpu_count(),
        "gpu_count": _gpu_count(),
        "environment_variables": redact_mapping(dict(sorted(env.items()))),
    }
    if packages:
        seen: dict[str, str] = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name and name.lower() not in seen:
                seen[name.lower()] = f"{name}=={dist.version}"
        info["packages"] = sorted(seen.values(), key=str.lower)
    return info
