"""``sagetrack.Store`` and ``sagetrack.Run``: recorded runs, with plots and reproduction.

These extend the store's record reader (:mod:`sagetrack.store.reader`) with what needs
the layers above it: ``Store()`` finds the default store (``$SAGETRACK_URI``, else the
SageMaker session's default bucket), and a :class:`Run` plots its learning curves and
builds an estimator that repeats it.
"""

from __future__ import annotations

from typing import Any

from . import settings
from .store import reader
from .store.backends import validate_uri

__all__ = ["Run", "Store", "default_uri"]


class Run(reader.Run):
    """One recorded training job. Records are loaded lazily and cached.

    Properties: ``params``, ``code``, ``inputs``, ``job_config``, ``environment``,
    ``status``, ``failure``, ``metrics``, ``steps``, ``batches``, ``model``, ``diff``;
    ``problems`` lists what could not be read.
    """

    def plot(self, metric: str | None = None, path: str | None = None, **kwargs: Any) -> Any:
        """Learning curves of this run (see :func:`sagetrack.plot`)."""
        from .plotting import plot

        return plot([self], metric=metric, path=path, **kwargs)

    def estimator(self, **overrides: Any) -> Any:
        """A ready ``sagetrack.TensorFlow`` repeating this run: same image, code tarball,
        hyperparameters and settings, recorded as reproducing it. ``overrides`` replace
        recorded arguments (``hyperparameters`` are merged); fit it with
        :meth:`training_inputs`. See :func:`sagetrack.reproduce`."""
        from . import TensorFlow  # the user-facing class, by the package's public name
        from .client.reproduce import estimator_for

        return estimator_for(self, estimator_class=TensorFlow, **overrides)

    def training_inputs(self) -> dict[str, Any]:
        """The recorded input channels, ready for ``estimator.fit(...)``."""
        from .client.reproduce import training_inputs

        return training_inputs(self)


def default_uri() -> str:
    """``$SAGETRACK_URI``, else ``s3://<SageMaker session default bucket>/sagetrack``."""
    uri = settings.URI.get()
    if uri:
        return validate_uri(uri)
    from .client.store_access import default_tracking_uri

    return default_tracking_uri()


class Store(reader.StoreBase[Run]):
    """A tracking store: a local folder or ``s3://bucket/prefix``.

    ``Store()`` uses the estimator's default (``$SAGETRACK_URI``, else the SageMaker
    session's default bucket).
    """

    run_class = Run

    def __init__(self, uri: str | None = None, *, s3_client: Any = None) -> None:
        super().__init__(default_uri() if uri is None else uri, s3_client=s3_client)
