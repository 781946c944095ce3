"""The Keras adapter: a thin callback over the recorder, and the ``Model.fit`` patch.

Works with Keras 3 (``keras``) and Keras 2 (``tf.keras`` on TF <= 2.15, or ``tf_keras``
with ``TF_USE_LEGACY_KERAS=1``): the callback class is built per Keras flavour from that
flavour's ``Callback`` base. Batch hooks exist only on the every-N-batches variant, so
epoch-level tracking never turns off Keras' asynchronous batch dispatch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

from .config import strict_mode
from .recorder import Recorder, active_recorder
from .safety import safe

__all__ = ["callback_class", "keras_module_name", "patch_model_fit"]  # + TrackingCallback

PATCHED_ATTR = "__sagetrack_patched__"


class _TrackingMixin:
    """Marker shared by the callback classes of every Keras flavour."""


def keras_module_name() -> str:
    """The Keras package ``tf.keras`` resolves to in this process."""
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
    return "tf_keras" if legacy else "keras"


def _learning_rate(model: Any) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    lr = getattr(optimizer, "learning_rate", None)
    if lr is None:
        lr = getattr(optimizer, "lr", None)
    if lr is None:
        return None
    if callable(lr) and hasattr(optimizer, "iterations"):  # a schedule (Keras 2)
        lr = lr(optimizer.iterations)
    try:
        return float(lr)  # a variable or a Python number; half the cost of np.asarray
    except Exception:
        try:
            import numpy as np

            return float(np.asarray(lr))
        except Exception:
            return None


_classes: dict[str, type] = {}


def callback_class(module_name: str | None = None) -> type:
    """The ``TrackingCallback`` class for a Keras flavour (``keras`` or ``tf_keras``)."""
    name = module_name or keras_module_name()
    if name in _classes:
        return _classes[name]
    base = importlib.import_module(name).callbacks.Callback

    class TrackingCallback(base, _TrackingMixin):  # type: ignore[misc, valid-type]
        """Record every epoch's logs (and every N batches) into the tracked run.

        ``model.fit(..., callbacks=[sagetrack.TrackingCallback(track_batches=50)])``.
        In a tracked job sagetrack adds one automatically; pass one yourself for explicit
        control. Outside a tracked job it records nothing.
        """

        def __new__(cls, track_batches: int | None = None, recorder: Recorder | None = None,
                    ) -> Any:
            n = _batches(track_batches, recorder)
            target = _classes[f"{name}:batches"] if n and cls is _classes[name] else cls
            return super().__new__(target)

        def __init__(self, track_batches: int | None = None,
                     recorder: Recorder | None = None) -> None:
            super().__init__()
            self._recorder = recorder
            self.track_batches = _batches(track_batches, recorder)
            self._fit = 0
            self._epoch_start = 0.0
            self._epoch = 0
            self._seen = 0

        @property
        def recorder(self) -> Recorder | None:
            return self._recorder or active_recorder()

        @safe
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            rec = self.recorder
            if rec is None:
                return
            params = getattr(self, "params", None) or {}
            model = self.model
            count = None
            with contextlib.suppress(Exception):
                count = int(model.count_params())
            self._fit = rec.begin_fit({
                "epochs": params.get("epochs"), "steps": params.get("steps"),
                "params": count, "model": getattr(model, "name", None),
                "optimizer": type(getattr(model, "optimizer", None)).__name__,
            }) or 0

        @safe
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._epoch = epoch + 1
            self._epoch_start = time.perf_counter()

        @safe
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            rec = self.recorder
            if rec is None:
                return
            duration = time.perf_counter() - self._epoch_start if self._epoch_start else None
            logs = logs or {}
            # reading the optimizer's rate is a TensorFlow op: skip it when Keras logged it
            rate = None if "learning_rate" in logs or "lr" in logs else \
                _learning_rate(self.model)
            rec.log_epoch(epoch + 1, logs, duration_s=duration, fit=self._fit,
                          learning_rate=rate)

    class BatchTrackingCallback(TrackingCallback):  # type: ignore[misc, valid-type]
        """TrackingCallback that also records every ``track_batches`` training batches."""

        async_safe = True        # Keras 3: the hook only hands values to the recorder
        _supports_tf_logs = True  # Keras 2: no per-batch conversion of logs to numpy

        @safe
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self._seen += 1
            if self._seen % self.track_batches:
                return
            rec = self.recorder
            if rec is not None:
                rec.log_batch(self._epoch, batch, self._seen, logs or {})

    TrackingCallback.__module__ = BatchTrackingCallback.__module__ = "sagetrack"
    _classes[name] = TrackingCallback
    _classes[f"{name}:batches"] = BatchTrackingCallback
    return TrackingCallback


def _batches(track_batches: int | None, recorder: Recorder | None) -> int:
    if track_batches is not None:
        if not isinstance(track_batches, int) or isinstance(track_batches, bool) \
                or track_batches < 0:
            from ..errors import ConfigurationError

            raise ConfigurationError(
                "Invalid argument `track_batches`: expected an int >= 0 (0 = epochs only). "
                f"Received: track_batches={track_batches!r}")
        return track_batches
    rec = recorder or active_recorder()
    return rec.config.track_batches if rec is not None else 0


def __getattr__(name: str) -> Any:
    if name == "TrackingCallback":
        return callback_class()
    raise AttributeError(name)


def patch_model_fit(module: Any, module_name: str) -> bool:
    """Wrap ``module.Model.fit`` to add a TrackingCallback unless one is passed."""
    model_cls = getattr(module, "Model", None)
    if model_cls is None:
        return False
    original: Callable[..., Any] = model_cls.fit
    if getattr(original, PATCHED_ATTR, False):
        return True
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            args, kwargs = _with_callback(signature, module_name, self, args, kwargs)
        except Exception:
            if strict_mode():
                raise
        return original(self, *args, **kwargs)

    setattr(fit, PATCHED_ATTR, True)
    model_cls.fit = fit
    return True


def _with_callback(signature: inspect.Signature, module_name: str, model: Any,
                   args: tuple[Any, ...], kwargs: dict[str, Any],
                   ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if active_recorder() is None:
        return args, kwargs
    bound = signature.bind_partial(model, *args, **kwargs)
    callbacks = bound.arguments.get("callbacks")
    if callbacks is None:
        callbacks = []
    elif not isinstance(callbacks, (list, tuple)):
        return args, kwargs  # a CallbackList or something else we should not touch
    if any(isinstance(cb, _TrackingMixin) for cb in callbacks):
        return args, kwargs
    # first in line: an epoch is recorded before user callbacks (checkpointing, LR
    # schedules) act on it, so an interruption right after a checkpoint loses nothing
    bound.arguments["callbacks"] = [callback_class(module_name)(), *callbacks]
    return bound.args[1:], bound.kwargs
