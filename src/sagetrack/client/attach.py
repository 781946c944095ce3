"""``TensorFlow.attach(job_name)``: an estimator for a job launched earlier, tracked or not.

The SDK rebuilds the estimator's arguments from DescribeTrainingJob. sagetrack adds the
tracking settings the job ran with (``SAGETRACK_URI`` and ``SAGETRACK_EXPERIMENT`` in its
``Environment``), so that ``latest_run`` finds the job's run and a later ``fit()`` records
to the same place. The code is the job's ``sourcedir.tar.gz`` on S3: a later ``fit()``
reruns it as it is (see :func:`sagetrack.client.validation.s3_source_note`).
"""

from __future__ import annotations

from typing import Any

from .. import settings

__all__ = ["tracked_init_params"]


def tracked_init_params(init_params: dict[str, Any], job_details: Any) -> dict[str, Any]:
    """``init_params`` (the SDK's, for ``cls(**init_params)``) with the job's tracking
    settings, when it was tracked."""
    environment = job_details.get("Environment") if isinstance(job_details, dict) else None
    if not isinstance(environment, dict) or not environment.get(settings.URI.name):
        return init_params  # not tracked, or not described: the estimator's defaults
    out = dict(init_params)
    out.setdefault("tracking_uri", str(environment[settings.URI.name]))
    experiment = environment.get(settings.EXPERIMENT.name)
    if isinstance(experiment, str) and experiment:
        out.setdefault("experiment", experiment)
    return out
