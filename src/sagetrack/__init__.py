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
    "TensorFlow": (".estimator", "TensorFlow"),
    "Store": (".api", "Store"),
    "Run": (".api", "Run"),
    "TrackingCallback": (".container.keras", "TrackingCallback"),
    "log_metrics": (".container.recorder", "log_metrics"),
    "TrackingWarning": (".errors", "TrackingWarning"),
    "SagetrackError": (".errors", "SagetrackError"),
    "ConfigurationError": (".errors", "ConfigurationError"),
    "StoreError": (".errors", "StoreError"),
    "RunNotFound": (".errors", "RunNotFound"),
    "diff": (".compare", "diff"),
    "RunDiff": (".compare", "RunDiff"),
    "plot": (".plotting", "plot"),
    "reproduce": (".estimator", "reproduce"),
    "checkout": (".client.checkout", "checkout"),
    "DataChanged": (".client.reproduce", "DataChanged"),
    "ReproductionError": (".client.reproduce", "ReproductionError"),
}

if TYPE_CHECKING:
    from .api import Run, Store
    from .client.checkout import checkout
    from .client.reproduce import DataChanged, ReproductionError
    from .compare import RunDiff, diff
    from .container.recorder import log_metrics
    from .errors import (
        ConfigurationError,
        RunNotFound,
        SagetrackError,
        StoreError,
        TrackingWarning,
    )
    from .estimator import TensorFlow, reproduce
    from .plotting import plot

    TrackingCallback: Any


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'sagetrack' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name, __name__), attr)  # relative: the
    # container side ships under a private package name
    if name != "TrackingCallback":  # depends on the Keras flavour chosen at call time
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
