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
from .client import reproduce as _reproduce
from .client.attach import tracked_init_params

__all__ = ["TensorFlow", "reproduce"]


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


def reproduce(run: Any, **kwargs: Any) -> TensorFlow:
    """Launch a tracked job repeating ``run``; its estimator (a :class:`TensorFlow`) is
    returned and ``.latest_run`` is the new run. Keyword arguments as
    :func:`sagetrack.client.reproduce.reproduce` (``allow_data_change``, ``wait``,
    ``logs``, ``sagemaker_session``, overrides of the recorded arguments); DataChanged when
    the data changed since."""
    est: TensorFlow = _reproduce.reproduce(run, estimator_class=TensorFlow, **kwargs)
    return est
