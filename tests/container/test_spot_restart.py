"""A spot-interrupted job restarted from its checkpoints continues the same run."""

from __future__ import annotations

import json
import shutil

from sagetrack.store.reader import Store
from tests.support.scripts import run_script

RESUMABLE = """
    import json, os, signal
    import numpy as np
    import keras
    ck = json.load(open(os.path.join(os.environ["SAGEMAKER_BASE_DIR"], "input", "config",
                                     "checkpointconfig.json")))["LocalPath"]
    os.makedirs(ck, exist_ok=True)
    state = os.path.join(ck, "state.json")
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32"); y = (x[:, 0] > 0) * 1
    if os.path.exists(state):
        start = json.load(open(state))["epoch"]
        model = keras.models.load_model(os.path.join(ck, "model.keras"))
    else:
        start = 0
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model.save(os.path.join(ck, "model.keras"))
            json.dump({"epoch": epoch + 1}, open(state, "w"))
            if epoch + 1 == int(os.environ.get("INTERRUPT_AFTER", "0")):
                os.kill(os.getpid(), signal.SIGTERM)  # what a spot interruption sends
    model.fit(x, y, epochs=6, initial_epoch=start, verbose=0, callbacks=[Checkpoint()])
"""


def test_restart_continues_the_run_without_duplicates(tmp_path, fault_report):
    base = tmp_path / "opt_ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "checkpointconfig.json").write_text(json.dumps(
        {"LocalPath": str(tmp_path / "checkpoints"), "S3Path": "s3://bucket/ckpt"}))
    first = run_script(tmp_path, RESUMABLE, env={"INTERRUPT_AFTER": "3"})
    assert first.returncode == -15, first.stderr[-2000:]
    run = Store(str(tmp_path / "store")).run("job-1")
    assert run.status == "stopped" and list(run.metrics.index) == [1, 2, 3]

    shutil.rmtree(base / "output")  # a new attempt starts with an empty output dir
    second = run_script(tmp_path, RESUMABLE)
    assert second.returncode == 0, second.stderr[-2000:]
    run = Store(str(tmp_path / "store")).run("job-1")
    assert run.status == "completed"
    assert run.status_record["attempt"] == 2 and len(run.status_record["restarts"]) == 1
    assert list(run.metrics.index) == [1, 2, 3, 4, 5, 6]
    attempts = [row["attempt"] for row in run.epochs]
    assert attempts == [1, 1, 1, 2, 2, 2]  # each epoch once
    fault_report.injected(1)
    fault_report.training(ok=True)
    fault_report.records(expected=6, found=len(run.metrics))
    # the records the next attempt continues from travel with the checkpoints
    assert (tmp_path / "checkpoints/.sagetrack/exp/job-1/metrics.jsonl").exists()


def test_restart_from_scratch_replaces_the_unfinished_epochs(tmp_path):
    base = tmp_path / "opt_ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "checkpointconfig.json").write_text(json.dumps(
        {"LocalPath": str(tmp_path / "checkpoints")}))
    run_script(tmp_path, RESUMABLE, env={"INTERRUPT_AFTER": "2"})
    (tmp_path / "checkpoints" / "state.json").unlink()  # the script starts over
    assert run_script(tmp_path, RESUMABLE).returncode == 0
    run = Store(str(tmp_path / "store")).run("job-1")
    assert list(run.metrics.index) == [1, 2, 3, 4, 5, 6]
    assert len(run.epochs) == 8  # both attempts kept; readers show the latest per epoch
