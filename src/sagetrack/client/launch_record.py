"""The launch record (``run.json``) of a job, as the estimator describes it at ``fit()``.

:func:`launch_record_base` is everything the record holds except the captures (git state,
tarball hashes, input fingerprints: capture.py fills them in); launch_writer.py claims
the run and writes it. :class:`Reproduction` is what a repeat of a recorded run gives its
estimator.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass
from typing import Any

from .._redact import redact_mapping
from .._version import __version__
from ..store.layout import FORMAT, now_iso
from .capture import input_channels
from .guard import attempt
from .validation import TrackingArguments

__all__ = ["Reproduction", "is_pipeline_session", "launch_record_base"]


@dataclass(frozen=True)
class Reproduction:
    """What a repeat of a recorded run gives its estimator (``_reproduces=``)."""

    source_dir: str  # the S3 URI of the recorded code tarball, reused as is
    origin: dict[str, Any]  # the new record's ``reproduces``: the run repeated, overrides


def is_pipeline_session(session: Any) -> bool:
    """Whether ``session`` builds pipeline steps instead of launching jobs."""
    try:
        from sagemaker.workflow.pipeline_context import PipelineSession
    except ImportError:  # pragma: no cover - old SDKs
        return False
    return isinstance(session, PipelineSession)


def launch_record_base(est: Any, args: TrackingArguments, tracking_uri: str, inputs: Any,
                       reproduces: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the launch record of ``est``'s job holds except the captures."""
    import sagemaker

    hps = est.hyperparameters() or {}
    decoded = {k: _decode(v) for k, v in hps.items()}
    params = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
    uploaded = getattr(est, "uploaded_code", None)
    code: dict[str, Any] = {
        "entry_point": est.entry_point if isinstance(est.entry_point, str) else None,
        "source_dir": est.source_dir if isinstance(est.source_dir, str) else None,
        "dependencies": [d for d in (est.dependencies or []) if isinstance(d, str)],
        "git_config": redact_mapping(est.git_config) if est.git_config else None,
        "tarball": {"uri": uploaded.s3_prefix} if uploaded is not None else None,
    }
    channels = {name: {"uri": uri, "data_type": data_type}
                for name, (uri, data_type) in input_channels(inputs).items()}
    job_name = est._current_job_name
    output_path = est.output_path if isinstance(est.output_path, str) else None
    artifacts = {"code": uploaded.s3_prefix if uploaded is not None else None}
    if output_path:
        base = output_path.rstrip("/") + f"/{job_name}/output"
        artifacts.update(model=f"{base}/model.tar.gz", output=f"{base}/output.tar.gz")
    return {
        "format": FORMAT,
        "run_id": job_name,
        "experiment": args.experiment,
        "created": now_iso(),
        "user": _user(),
        "client_host": socket.gethostname(),
        "sagetrack_version": __version__,
        "sagemaker_sdk_version": sagemaker.__version__,
        "params": redact_mapping(params),
        "sagemaker_params": {k: v for k, v in decoded.items() if k.startswith("sagemaker_")},
        "code": code,
        "inputs": channels,
        "job": {
            "image_uri": attempt("resolve the image URI", est.training_image_uri),
            "instance_type": _plain(est.instance_type),
            "instance_count": _plain(est.instance_count),
            "volume_size": _plain(getattr(est, "volume_size", None)),
            "max_run": _plain(getattr(est, "max_run", None)),
            "framework_version": est.framework_version,
            "py_version": est.py_version,
            "distribution": getattr(est, "distribution", None) or None,
            "use_spot_instances": bool(getattr(est, "use_spot_instances", False)),
            "max_wait": _plain(getattr(est, "max_wait", None)),
            "checkpoint_s3_uri": _plain(getattr(est, "checkpoint_s3_uri", None)),
            "checkpoint_local_path": _plain(getattr(est, "checkpoint_local_path", None)),
            "output_path": output_path,
            "role": _plain(getattr(est, "role", None)),
            "region": getattr(est.sagemaker_session, "boto_region_name", None),
            "enable_network_isolation": bool(est.enable_network_isolation()),
            "environment": redact_mapping(args.environment),
            "metric_definitions": est.metric_definitions,
            "base_job_name": est.base_job_name,
        },
        "artifacts": artifacts,
        "tracking": {"uri": tracking_uri, "track_batches": args.track_batches},
        "reproduces": reproduces,
    }


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _plain(value)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)  # pipeline variables and other objects


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
