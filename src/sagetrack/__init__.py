"""sagetrack: reproducible, comparable SageMaker TensorFlow training jobs.

Client side::

    from sagetrack import TensorFlow          # drop-in for sagemaker.tensorflow.TensorFlow
    from sagetrack import Store               # list, load and compare recorded runs

Inside a training script (optional; tracking needs no change to the script)::

    import sagetrack
    sagetrack.log_metrics(step=epoch, loss=loss)          # custom training loops
    model.fit(..., callbacks=[sagetrack.TrackingCallback(track_batches=100)])

Names are imported lazily so that the training container, which has TensorFlow but not
necessarily the SageMaker SDK or pandas, can import the container-side names cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = [
    "ConfigurationError",
    "DataChanged",
    "ReproductionError",
    "Run",
    "RunDiff",
    "RunNotFound",
    "SagetrackError",
    "Store",
    "StoreError",
    "TensorFlow",
    "TrackingCallback",
    "TrackingWarning",
    "__version__",
    "checkout",
    "diff",
    "log_metrics",
    "plot",
    "reproduce",
]

_LAZY = {
    "TensorFlow": ("sagetrack.client.estimator", "TensorFlow"),
    "Store": ("sagetrack.store.reader", "Store"),
    "Run": ("sagetrack.store.reader", "Run"),
    "TrackingCallback": ("sagetrack.container.keras", "TrackingCallback"),
    "log_metrics": ("sagetrack.container.recorder", "log_metrics"),
    "TrackingWarning": ("sagetrack.errors", "TrackingWarning"),
    "SagetrackError": ("sagetrack.errors", "SagetrackError"),
    "ConfigurationError": ("sagetrack.errors", "ConfigurationError"),
    "StoreError": ("sagetrack.errors", "StoreError"),
    "RunNotFound": ("sagetrack.errors", "RunNotFound"),
    "diff": ("sagetrack.compare", "diff"),
    "RunDiff": ("sagetrack.compare", "RunDiff"),
    "plot": ("sagetrack.plotting", "plot"),
    "reproduce": ("sagetrack.client.reproduce", "reproduce"),
    "checkout": ("sagetrack.client.reproduce", "checkout"),
    "DataChanged": ("sagetrack.client.reproduce", "DataChanged"),
    "ReproductionError": ("sagetrack.client.reproduce", "ReproductionError"),
}

if TYPE_CHECKING:
    from .client.estimator import TensorFlow
    from .client.reproduce import DataChanged, ReproductionError, checkout, reproduce
    from .compare import RunDiff, diff
    from .container.recorder import log_metrics
    from .errors import (
        ConfigurationError,
        RunNotFound,
        SagetrackError,
        StoreError,
        TrackingWarning,
    )
    from .plotting import plot
    from .store.reader import Run, Store

    TrackingCallback: Any


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'sagetrack' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), attr)
    if name != "TrackingCallback":  # depends on the Keras flavour chosen at call time
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
