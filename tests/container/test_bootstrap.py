"""The bootstrap in a real Python process started the way the toolkit starts the script.

These tests run ``python train.py`` with the bootstrap on ``PYTHONPATH`` and the
environment the toolkit gives the user process; the full SageMaker path (SDK -> code
tarball -> toolkit) is covered by ``tests/e2e``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from sagetrack.client.staging import bootstrap_paths
from sagetrack.client.validation import console_metric_definitions
from sagetrack.store.reader import Store
from tests.support.aws import blackhole
from tests.support.scripts import run_script


def run_of(tmp_path: Path):
    return Store(str(tmp_path / "store")).run("job-1")


KERAS_SCRIPT = """
    import argparse, os
    import numpy as np
    import keras
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, required=True)
    a = p.parse_args()
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32"); y = (x[:, 0] > 0) * 1
    m.fit(x, y, epochs=a.epochs, verbose=0, validation_split=0.2)
    m.save(os.path.join(os.environ["SM_MODEL_DIR"], "model.keras"))
"""


def test_unchanged_keras_script_is_tracked_to_completion(tmp_path):
    out = run_script(tmp_path, KERAS_SCRIPT, args=["--epochs", "3"])
    assert out.returncode == 0, out.stderr[-3000:]
    run = run_of(tmp_path)
    assert run.status == "completed"
    assert list(run.metrics.index) == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(run.metrics.columns)
    assert run.environment["argv"][1:] == ["--epochs", "3"]
    assert run.environment["keras_flavour"] == "keras" and run.environment["packages"]
    (model_file,) = run.model["files"]
    assert model_file["path"] == "model.keras" and len(model_file["sha256"]) == 64
    # SageMaker applies the estimator's metric_definitions to this output: same values
    for definition in console_metric_definitions(["loss", "val_accuracy", "accuracy"]):
        found = [float(m) for m in re.findall(definition["Regex"], out.stdout)]
        assert found == pytest.approx(list(run.metrics[definition["Name"]]), rel=1e-6)
    # the local copy under SM_OUTPUT_DATA_DIR has the same records
    mirror = Store(str(tmp_path / "opt_ml/output/data/sagetrack")).run("job-1")
    assert mirror.metrics.equals(run.metrics) and mirror.status == "completed"


def test_uncaught_exception_is_a_failed_run_with_traceback(tmp_path):
    out = run_script(tmp_path, """
        def step():
            raise ValueError("loss is NaN at step 7")
        step()
    """)
    assert out.returncode == 1 and "loss is NaN" in out.stderr  # the user still sees it
    run = run_of(tmp_path)
    assert run.status == "failed"
    assert run.failure["type"] == "ValueError"
    assert run.failure["message"] == "loss is NaN at step 7"
    assert "in step" in run.failure["traceback"]


def test_nonzero_exit_is_failed_and_exit_code_unchanged(tmp_path):
    out = run_script(tmp_path, "import sys; sys.exit(3)\n")
    assert out.returncode == 3
    assert run_of(tmp_path).status == "failed"
    assert "status 3" in run_of(tmp_path).failure["message"]


# SLEEP_NOTE: CPython runs a Python signal handler at the next bytecode; a signal that
# lands just before a long time.sleep() starts (the main thread between its last check
# and the syscall) waits for that sleep to end, with or without sagetrack. A training
# loop keeps running bytecode, so the test scripts sleep in short steps, as it would.
def test_sigterm_records_stopped_and_keeps_default_exit(tmp_path):
    proc = run_script(tmp_path, """
        import time
        print("ready", flush=True)
        for _ in range(600):  # short sleeps: see SLEEP_NOTE
            time.sleep(0.1)
    """, wait=False)
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == -signal.SIGTERM  # killed by the signal, as without sagetrack
    assert time.monotonic() - start < 10
    assert run_of(tmp_path).status == "stopped"


def test_sigterm_runs_the_scripts_own_handler_too(tmp_path):
    proc = run_script(tmp_path, """
        import signal, sys, time
        def handler(signum, frame):
            print("user handler ran", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, handler)
        print("ready", flush=True)
        for _ in range(600):  # short sleeps: see SLEEP_NOTE
            time.sleep(0.1)
    """, wait=False)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "user handler ran" in proc.stdout.read()
    assert run_of(tmp_path).status == "stopped"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux /proc")
def test_stop_signals_reach_the_main_thread_not_sagetracks(tmp_path):
    """The kernel gives SIGTERM to any thread that does not block it; one of sagetrack's
    threads taking it would leave the script's sleep or I/O uninterrupted for minutes."""
    out = run_script(tmp_path, """
        import signal, threading, time
        time.sleep(0.5)  # the writer threads are running by now
        for t in threading.enumerate():
            blocked = 0
            for line in open(f"/proc/self/task/{t.native_id}/status"):
                if line.startswith("SigBlk:"):
                    blocked = int(line.split()[1], 16)
            term = bool(blocked & (1 << (signal.SIGTERM - 1)))
            intr = bool(blocked & (1 << (signal.SIGINT - 1)))
            print(f"THREAD {t.name} {term} {intr}", flush=True)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    threads = {name: (term, intr) for name, term, intr in
               (line[len("THREAD "):].rsplit(" ", 2) for line in out.stdout.splitlines()
                if line.startswith("THREAD "))}
    assert threads.pop("MainThread") == ("False", "False")
    assert threads and all(name.startswith("sagetrack") for name in threads), threads
    assert set(threads.values()) == {("True", "True")}, threads


def test_custom_loop_metrics_from_log_metrics_and_declared_output(tmp_path):
    metrics = json.dumps([["train:loss", "train_loss=([0-9.]+)"]])
    out = run_script(tmp_path, """
        import sagetrack
        for step in range(4):
            loss = 1.0 / (step + 1)
            print(f"step {step} train_loss={loss:.4f}")
            sagetrack.log_metrics(step=step, accuracy=step / 4)
    """, env={"SAGETRACK_METRICS": metrics})
    assert out.returncode == 0, out.stderr[-2000:]
    steps = run_of(tmp_path).steps
    assert list(steps["accuracy"]) == [0.0, 0.25, 0.5, 0.75]
    assert list(steps["train:loss"]) == [1.0, 0.5, 0.3333, 0.25]
    assert run_of(tmp_path).status == "completed"


def test_tracking_is_inert_without_the_switch_or_outside_the_entry_point(tmp_path):
    out = run_script(tmp_path, "import sys; print(sorted(m for m in sys.modules "
                     "if m.startswith('sagetrack')))\n", env={"SAGETRACK": "0"})
    assert out.stdout.strip() == "[]"
    out = run_script(tmp_path, "print('helper')\n", entry="helper.py",
                     env={"SM_USER_ENTRY_POINT": "train.py"})
    assert out.returncode == 0 and not (tmp_path / "store").exists()


def test_shadowed_sitecustomize_still_runs(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os; os.environ['SHADOWED_RAN'] = 'yes'\n")
    out = run_script(tmp_path, "import os; print(os.environ.get('SHADOWED_RAN'))\n",
                     env={"PYTHONPATH": os.pathsep.join(
                         [str(Path(bootstrap_paths()[0]).parent), str(other)])})
    assert out.stdout.strip() == "yes", out.stderr


@pytest.mark.parametrize("hosts,current,extra,chief", [
    ('["algo-1","algo-2"]', "algo-2", {}, False),
    ('["algo-1","algo-2"]', "algo-1", {"OMPI_COMM_WORLD_RANK": "1"}, False),
])
def test_only_the_chief_writes_run_records(tmp_path, hosts, current, extra, chief):
    out = run_script(tmp_path, KERAS_SCRIPT, args=["--epochs", "1"],
                     env={"SM_HOSTS": hosts, "SM_CURRENT_HOST": current, **extra})
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / "store/exp/job-1"
    assert sorted(p.name for p in run_dir.iterdir()) == ["hosts"]
    assert [p.name for p in (run_dir / "hosts").iterdir()] == [f"{current}.json"]


def test_a_hanging_store_never_hangs_the_jobs_exit(tmp_path, fault_report):
    """S3 accepts connections and never answers: the job still exits within the bound."""
    contacted = tmp_path / "contacted"
    # the script ends once the store has been contacted (however long the writer thread
    # takes to start on a loaded machine), so the exit is what is timed
    script = f"""
        import os, time
        deadline = time.monotonic() + 120
        while not os.path.exists({str(contacted)!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
        print('trained', flush=True)
    """
    with blackhole(on_accept=contacted.touch) as url:
        proc = run_script(tmp_path, script, wait=False, env={
            "SAGETRACK_URI": "s3://bucket/track", "SAGETRACK_EXIT_TIMEOUT": "3",
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"})
        assert proc.stdout.readline().strip() == "trained", proc.stderr.read()[-2000:]
        ending = time.monotonic()
        proc.wait(60)
        elapsed = time.monotonic() - ending
    fault_report.injected(1)
    assert contacted.exists(), "the store was never contacted"
    assert proc.returncode == 0
    assert elapsed < 3 + 5  # the exit bound plus interpreter teardown
    # everything is in the local copy, ready to be ingested
    mirror = Store(str(tmp_path / "opt_ml/output/data/sagetrack")).run("job-1")
    assert mirror.status == "completed"


def test_four_simulated_hosts_give_one_writer(tmp_path):
    hosts = json.dumps([f"algo-{i}" for i in range(1, 5)])
    procs = [run_script(tmp_path / f"h{i}", KERAS_SCRIPT, args=["--epochs", "2"], wait=False,
                        env={"SM_HOSTS": hosts, "SM_CURRENT_HOST": f"algo-{i}",
                             "SAGETRACK_URI": str(tmp_path / "store")})
             for i in range(1, 5)]
    for proc in procs:
        assert proc.wait(300) == 0, proc.stderr.read()[-2000:]
    run_dir = tmp_path / "store/exp/job-1"
    assert sorted(p.name for p in (run_dir / "hosts").iterdir()) == [
        f"algo-{i}.json" for i in range(1, 5)]
    run = Store(str(tmp_path / "store")).run("job-1")
    assert list(run.metrics.index) == [1, 2] and len(run.epochs) == 2
    assert run.environment["host"] == "algo-1" and run.status == "completed"


@pytest.mark.parametrize("sagemaker_api", ["refuses", "hangs"])
def test_tuner_job_turns_the_launch_template_into_its_run_record(tmp_path, sagemaker_api):
    """A script that ends at once still gets its run.json, even if DescribeTrainingJob hangs."""
    store = tmp_path / "store"
    (store / "_launch" / "exp").mkdir(parents=True)
    (store / "_launch" / "exp" / "tune-1.json").write_text(json.dumps({
        "format": "sagetrack/1", "run_id": None, "experiment": "exp",
        "params": {"epochs": 2}, "code": {"commit": "abc123", "dirty": True},
        "job": {"instance_type": "ml.m5.xlarge"}}))
    (store / "_launch" / "exp" / "tune-1.diff").write_text("+tuned line\n")
    with contextlib.ExitStack() as stack:
        url = ("http://127.0.0.1:9" if sagemaker_api == "refuses"
               else stack.enter_context(blackhole()))
        out = run_script(tmp_path, "print('ok')\n", args=["--epochs", "2", "--lr", "0.3"], env={
            "SAGETRACK_LAUNCH": "_launch/exp/tune-1",
            "SM_HPS": json.dumps({"epochs": 2, "lr": 0.3}),
            "AWS_ENDPOINT_URL": url,  # no SageMaker API here: inputs unknown
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"})
    assert out.returncode == 0, out.stderr[-2000:]
    run = run_of(tmp_path)
    assert run.params == {"epochs": 2, "lr": 0.3}  # the values this job was tuned with
    assert run.code["commit"] == "abc123" and run.diff == "+tuned line\n"
    assert run.record["run_id"] == "job-1" and run.status == "completed"
    assert run.record["launch_template"] == "_launch/exp/tune-1"


def test_a_user_package_named_sagetrack_is_left_alone(tmp_path):
    """The runtime ships as ``_sagetrack_runtime``: the script's own ``sagetrack`` wins."""
    own = tmp_path / "code" / "sagetrack"
    own.mkdir(parents=True)
    (own / "__init__.py").write_text("VALUE = 42\n")
    out = run_script(tmp_path, """
        import sagetrack
        assert sagetrack.VALUE == 42, sagetrack
        print("own package", sagetrack.VALUE)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "own package 42" in out.stdout
    assert run_of(tmp_path).status == "completed"


def test_import_sagetrack_in_a_script_gives_the_runtime_itself(tmp_path):
    out = run_script(tmp_path, """
        import sagetrack, sagetrack.container.recorder as rec
        import _sagetrack_runtime
        assert sagetrack is _sagetrack_runtime
        assert rec is _sagetrack_runtime.container.recorder
        assert rec.active_recorder() is not None
        sagetrack.log_metrics(step=0, accuracy=0.5)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(run_of(tmp_path).steps["accuracy"]) == [0.5]
