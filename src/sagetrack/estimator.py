"""``sagetrack.TensorFlow``: the tracked estimator as users import it.

It is :class:`sagetrack.client.estimator.TensorFlow` (the SDK hooks, the launch capture and
records) whose ``latest_run`` is a :class:`sagetrack.Run`, with plots and reproduction; the
client layer below cannot know that class.
"""

from __future__ import annotations

from .api import Store
from .client import estimator

__all__ = ["TensorFlow"]


class TensorFlow(estimator.TensorFlow):
    __doc__ = estimator.TensorFlow.__doc__

    _run_store = Store
