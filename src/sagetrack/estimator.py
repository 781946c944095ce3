"""``sagetrack.TensorFlow``: the tracked estimator as users import it.

It is :class:`sagetrack.client.estimator.TensorFlow` (the SDK hooks, the launch capture and
records) whose ``latest_run`` is a :class:`sagetrack.Run`, with plots and reproduction (the
client layer below cannot know that class), and whose ``attach`` finds the run of a tracked
job (:mod:`sagetrack.client.attach`).
"""

from __future__ import annotations

from typing import Any

from .api import Store
from .client import estimator
from .client.attach import tracked_init_params

__all__ = ["TensorFlow"]


class TensorFlow(estimator.TensorFlow):
    __doc__ = estimator.TensorFlow.__doc__

    _run_store = Store

    @classmethod
    def _prepare_init_params_from_job_description(cls, job_details: Any,
                                                  model_channel_name: Any = None) -> Any:
        """SDK hook used by ``attach``: the job's tracking settings come back with it."""
        params = super()._prepare_init_params_from_job_description(job_details,
                                                                   model_channel_name)
        return tracked_init_params(params, job_details)
