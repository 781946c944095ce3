"""Records survive kill -9 and torn or corrupt files; local writes are atomic."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from sagetrack.store.backends import LocalBackend
from sagetrack.store.reader import Store
from tests.support.scripts import run_script

SLOW_KERAS = """
    import time
    import numpy as np
    import keras
    class Slow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print(f"epoch {epoch + 1} done", flush=True)
            time.sleep(0.3)
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    x = np.zeros((16, 3), "float32"); y = np.zeros(16, "int32")
    m.fit(x, y, epochs=1000, verbose=0, callbacks=[Slow()])
"""


def _has_epoch(root, epoch: int) -> bool:
    path = root / "exp" / "job-1" / "metrics.jsonl"
    try:
        return any(json.loads(line).get("epoch") == epoch
                   for line in path.read_text().splitlines() if line.strip())
    except (OSError, ValueError):
        return False


def test_kill_9_keeps_every_complete_epoch_and_reads_as_incomplete(tmp_path, fault_report):
    proc = run_script(tmp_path, SLOW_KERAS, wait=False)
    epochs_done = 0
    while epochs_done < 5:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-2000:]
        if line.startswith("epoch"):
            epochs_done = int(line.split()[1])
    deadline = time.monotonic() + 30  # let the background writer catch up with epoch 5
    while time.monotonic() < deadline and not _has_epoch(tmp_path / "store", 5):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    store = Store(str(tmp_path / "store"))
    run = store.run("job-1")
    assert run.status == "running"  # nobody could record the end
    recorded = list(run.metrics.index)
    assert recorded[:5] == [1, 2, 3, 4, 5] and recorded == list(range(1, len(recorded) + 1))
    fault_report.injected(1)
    fault_report.records(expected=5, found=len(set(recorded) & {1, 2, 3, 4, 5}))
    # the client learns the job ended (as fit(wait=True) records it): incomplete run
    LocalBackend(tmp_path / "store").put("exp/job-1/job.json", json.dumps(
        {"status": "Failed", "failure_reason": "AlgorithmError: killed"}).encode())
    run = store.run("job-1")
    assert run.status == "failed" and run.incomplete
    assert run.failure["message"] == "AlgorithmError: killed"


def test_torn_and_corrupt_files_are_reported_not_fatal(tmp_path):
    root = tmp_path / "store"
    run_dir = root / "exp" / "job-1"
    run_dir.mkdir(parents=True)
    rows = [{"epoch": i, "metrics": {"loss": 1 / i}} for i in (1, 2, 3)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (run_dir / "metrics.jsonl").write_text(text + '{"epoch": 4, "metr')  # torn last line
    (run_dir / "status.json").write_text('{"status": "runn')               # truncated
    (run_dir / "run.json").write_text(json.dumps({"params": {"lr": 0.1}}))
    store = Store(str(root))
    run = store.run("job-1")
    assert list(run.metrics.index) == [1, 2, 3]
    assert run.params == {"lr": 0.1}
    assert run.status == "launched"  # status unreadable: falls back to the launch record
    assert any("status.json" in p for p in run.problems)
    assert any("truncated last line" in p for p in run.problems)
    table = store.runs()
    assert "status.json" in table.loc[0, "problems"]
    # a corrupt line in the middle is skipped and reported too
    (run_dir / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\nnot json\n"
                                           + json.dumps(rows[2]) + "\n")
    run = store.run("job-1")
    assert list(run.metrics.index) == [1, 3]
    assert any("line 2: invalid JSON" in p for p in run.problems)


def test_local_snapshots_are_replaced_atomically(tmp_path):
    backend = LocalBackend(tmp_path)
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(backend.get("e/r/status.json"))
            except FileNotFoundError:
                continue
            except Exception as exc:
                if "No record" not in str(exc):
                    bad.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            backend.put("e/r/status.json", json.dumps({"i": i, "pad": "x" * 200_000}).encode())
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert not [p for p in os.listdir(tmp_path / "e" / "r") if p.endswith(".tmp")]


def test_unknown_run_suggests_close_matches(tmp_path):
    backend = LocalBackend(tmp_path)
    for name in ("resnet-2026-11-28-05-00-01-123", "resnet-2026-11-28-05-00-02-456"):
        backend.put(f"exp/{name}/run.json", b"{}")
    import pytest

    from sagetrack.errors import RunNotFound

    with pytest.raises(RunNotFound) as err:  # a typo, not the start of an id
        Store(str(tmp_path)).run("resnet-2026-11-28-05-00-01-124")
    assert err.value.suggestions[0] == "resnet-2026-11-28-05-00-01-123"
    assert "Did you mean" in str(err.value)
