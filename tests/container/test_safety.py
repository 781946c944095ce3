"""Tracking never breaks training: every hook is wrapped, and errors become warnings."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

from sagetrack.container import bootstrap, exit_status, output
from sagetrack.container import keras as adapter
from sagetrack.container import recorder as recorder_mod
from sagetrack.container.recorder import Recorder, set_active_recorder
from sagetrack.container.safety import SAFE_ATTR
from sagetrack.errors import TrackingWarning

from .helpers import make_recorder
from .test_keras import data, tiny_model

keras = pytest.importorskip("keras")


def _own_hooks(cls: type) -> dict[str, object]:
    hooks = {}
    for klass in cls.__mro__:
        if klass.__module__ == "sagetrack":
            hooks.update({n: f for n, f in vars(klass).items()
                          if n.startswith("on_") and callable(f)})
    return hooks


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_every_callback_hook_goes_through_the_safe_wrapper(flavour):
    pytest.importorskip(flavour)
    base = adapter.callback_class(flavour)
    batches = adapter._classes[f"{flavour}:batches"]
    hooks = {**_own_hooks(base), **_own_hooks(batches)}
    assert {"on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_batch_end"} <= set(hooks)
    unsafe = [name for name, fn in hooks.items() if not getattr(fn, SAFE_ATTR, False)]
    assert unsafe == []


def test_every_recorder_and_container_entry_point_is_safe():
    public = [n for n, f in inspect.getmembers(Recorder, inspect.isfunction)
              if not n.startswith("_") and n != "close"]
    assert {"start", "log_epoch", "log_batch", "log_metrics", "finish"} <= set(public)
    entry_points = [getattr(Recorder, n) for n in public] + [
        recorder_mod.log_metrics, output.MetricScanner.scan, exit_status.finish,
        bootstrap._resume, bootstrap._record_from_template]
    assert [f.__qualname__ for f in entry_points if not getattr(f, SAFE_ATTR, False)] == []


FAULTS = ["begin_fit", "log_epoch", "log_batch", "_set_status"]


@pytest.mark.parametrize("method", FAULTS)
def test_an_error_in_each_hook_leaves_training_unchanged(method, tmp_path, monkeypatch,
                                                         fault_report):
    monkeypatch.delenv("SAGETRACK_STRICT")
    x, y = data()
    baseline = tiny_model(5)
    expected = baseline.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False).history

    def boom(*args, **kwargs):
        raise RuntimeError(f"injected fault in {method}")

    rec = make_recorder(tmp_path / "store")
    monkeypatch.setattr(Recorder, method, boom)
    set_active_recorder(rec)
    model = tiny_model(5)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False,
                                callbacks=[adapter.callback_class()(track_batches=1)]).history
    finally:
        set_active_recorder(None)
        rec.close(5)
    fault_report.injected(1)
    fault_report.training(ok=history == expected)
    assert history == expected
    for a, b in zip(baseline.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(issubclass(w.category, TrackingWarning) and method in str(w.message)
               for w in caught)


def test_strict_mode_makes_internal_errors_raise(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("internal")

    monkeypatch.setattr(adapter, "_learning_rate", boom)
    rec = make_recorder(tmp_path / "store")
    set_active_recorder(rec)
    x, y = data()
    try:
        with pytest.raises(RuntimeError, match="internal"):
            tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[adapter.callback_class()()])
    finally:
        set_active_recorder(None)
        rec.close(5)
