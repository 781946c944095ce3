"""The Keras adapter on real tiny models: per-epoch rows, batches, the fit patch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from sagetrack.container import keras as adapter
from sagetrack.container.recorder import set_active_recorder
from sagetrack.store.reader import Store

from .helpers import make_recorder

keras = pytest.importorskip("keras")


def tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


@pytest.fixture
def recorder(tmp_path: Path):
    rec = make_recorder(tmp_path / "store")
    set_active_recorder(rec)
    yield rec
    set_active_recorder(None)


def test_explicit_callback_records_every_epoch_with_keras_values(recorder, tmp_path):
    x, y = data()
    model = tiny_model()
    history = model.fit(x, y, validation_split=0.25, epochs=3, batch_size=16, verbose=0,
                        callbacks=[adapter.callback_class()()])
    recorder.finish("completed")
    assert recorder.close(5)

    run = Store(str(tmp_path / "store")).run("job-1")
    frame = run.metrics
    assert list(frame.index) == [1, 2, 3]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(frame[name].to_numpy(), history.history[name], rtol=1e-6)
    np.testing.assert_allclose(frame["learning_rate"], 0.05, rtol=1e-6)
    assert (frame["duration_s"] > 0).all()
    assert run.status == "completed"
    assert run.status_record["model_params"] == model.count_params()
    assert run.final_metrics["val_loss"] == pytest.approx(history.history["val_loss"][-1])


def test_patched_fit_adds_one_callback_positional_or_keyword(recorder, tmp_path):
    assert adapter.patch_model_fit(keras, "keras")
    assert adapter.patch_model_fit(keras, "keras")  # idempotent
    x, y = data()
    model = tiny_model()
    # callbacks passed positionally (x, y, batch_size, epochs, verbose, callbacks)
    ends: list[int] = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(epoch)

    history = model.fit(x, y, 16, 2, 0, [Spy()])
    assert isinstance(history, keras.callbacks.History)
    assert ends == [0, 1]  # the user's callback still runs
    # an explicit TrackingCallback is not doubled
    model.fit(x, y, epochs=1, verbose=0, callbacks=[adapter.callback_class()()])
    recorder.close(5)
    rows = [json.loads(line) for line in
            (tmp_path / "store/exp/job-1/metrics.jsonl").read_text().splitlines()]
    assert [(r["fit"], r["epoch"]) for r in rows] == [(0, 1), (0, 2), (1, 1)]


def test_patched_fit_without_active_recorder_passes_the_call_through():
    class StubModel:
        def fit(self, x=None, y=None, epochs=1, callbacks=None):
            return callbacks

    adapter.patch_model_fit(types.SimpleNamespace(Model=StubModel), "keras")
    set_active_recorder(None)
    mine = [object()]
    assert StubModel().fit(1, 2, callbacks=mine) is mine  # the caller's very list
    assert StubModel().fit(1, 2) is None and StubModel().fit(1, 2, 3, None) is None


def test_patched_keras_fit_without_active_recorder_trains_as_the_original():
    adapter.patch_model_fit(keras, "keras")
    set_active_recorder(None)
    original = keras.Model.fit.__wrapped__
    x, y = data()
    plain, patched = tiny_model(1), tiny_model(1)
    baseline = original(plain, x, y, epochs=2, verbose=0, shuffle=False).history
    again = patched.fit(x, y, epochs=2, verbose=0, shuffle=False).history
    assert baseline == again
    for a, b in zip(plain.get_weights(), patched.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_training_result_identical_with_and_without_tracking(recorder):
    x, y = data()
    untracked = tiny_model(3)
    untracked.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    tracked = tiny_model(3)
    tracked.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False,
                callbacks=[adapter.callback_class()(track_batches=2)])
    for a, b in zip(untracked.get_weights(), tracked.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_n_batches(recorder, tmp_path):
    x, y = data(64)
    cb = adapter.callback_class()(track_batches=3)
    assert type(cb).__name__ == "BatchTrackingCallback"
    assert getattr(cb, "async_safe", False)
    tiny_model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb])
    recorder.close(5)
    batches = Store(str(tmp_path / "store")).run("job-1").batches
    # 8 batches per epoch, 16 in all: steps 3, 6, ..., 15
    assert list(batches.index) == [3, 6, 9, 12, 15]
    assert list(batches["epoch"]) == [1, 1, 2, 2, 2]
    assert batches["loss"].notna().all()


def test_epoch_only_callback_keeps_keras_async_dispatch():
    from keras.src import utils

    cb = adapter.callback_class()()
    assert utils.is_default(cb.on_train_batch_end)
    with pytest.raises(Exception, match="track_batches"):
        adapter.callback_class()(track_batches=-1)


def test_non_chief_records_no_metrics(tmp_path):
    rec = make_recorder(tmp_path / "store", chief=False, host="algo-2")
    set_active_recorder(rec)
    try:
        rec.start({"host": "algo-2"})
        x, y = data()
        tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[adapter.callback_class()()])
        rec.finish("completed")
        rec.close(5)
    finally:
        set_active_recorder(None)
    run_dir = tmp_path / "store/exp/job-1"
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.json*")) == [
        "hosts/algo-2.json"]


KERAS2_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, {tests!r})
    from container.helpers import make_recorder
    from pathlib import Path
    from sagetrack.container import keras as adapter
    from sagetrack.container.recorder import set_active_recorder
    import tf_keras
    assert adapter.keras_module_name() == "tf_keras"
    adapter.patch_model_fit(tf_keras, "tf_keras")
    rec = make_recorder(Path({root!r}))
    set_active_recorder(rec)
    model = tf.keras.Sequential([tf.keras.layers.Dense(2, activation="softmax")])
    assert type(model).__module__.startswith("tf_keras"), type(model)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    h = model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25)
    rec.finish("completed"); assert rec.close(5)
    print(json.dumps(h.history))
""")


def test_keras2_tf_keras_flavour(tmp_path):
    pytest.importorskip("tf_keras")
    root = tmp_path / "store"
    script = KERAS2_SCRIPT.format(tests=str(Path(__file__).parents[1]), root=str(root))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-3000:]
    history = json.loads(out.stdout.strip().splitlines()[-1])
    frame = Store(str(root)).run("job-1").metrics
    assert list(frame.index) == [1, 2]
    np.testing.assert_allclose(frame["val_accuracy"], history["val_accuracy"], rtol=1e-6)
    np.testing.assert_allclose(frame["loss"], history["loss"], rtol=1e-6)
