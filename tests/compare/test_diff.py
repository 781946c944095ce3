"""sagetrack.diff and duplicate detection on runs written in the record layout."""

from __future__ import annotations

import json

from sagetrack.client.identity import find_duplicate, launch_identity
from sagetrack.compare import diff
from sagetrack.formatting import diffstat
from sagetrack.store.backends import open_backend
from sagetrack.store.reader import metric_goal

from ..support.records import DIFF_A, open_store, write_pair, write_run


def test_diff_reports_every_section(store_uri):
    a_id, b_id = write_pair(store_uri)
    store = open_store(store_uri)
    result = diff(store.run(a_id), store.run(b_id))

    assert result.params.changed == {"learning-rate": (0.1, 0.05)}
    assert result.params.added == {"warmup": 2} and result.params.removed == {}
    assert set(result.params.same) == {"epochs", "batch-size", "model_dir"}  # run id normalised

    fields = {f.name: f for f in result.code.fields}
    assert fields["commit"].same and not fields["content hash"].same
    assert result.code.same_content is False
    assert result.code.files_added == ["aug.py"] and result.code.files_removed == []
    dod = result.code.diff_of_diffs()
    assert "-+print('lr 0.1')" in dod and "++print('lr 0.05')" in dod

    (channel,) = result.data
    assert channel.name == "training" and channel.status == "changed"
    assert (channel.objects.a, channel.objects.b) == (3, 4)

    env = result.environment
    assert env.packages_changed == {"numpy": ("1.26.4", "2.0.0")}
    assert env.packages_added == ["rich==13.0"] and env.packages_removed == []
    assert all(f.same for f in env.fields)

    metrics = {m.name: m for m in result.metrics}
    assert [m.name for m in result.metrics][:2] == ["loss", "val_loss"]
    loss = metrics["loss"]
    assert (loss.goal, loss.final_a, loss.final_b, loss.best_a, loss.best_b) == (
        "min", 0.45, 0.4, 0.45, 0.35)
    assert round(loss.delta_best, 6) == -0.1
    acc = metrics["val_accuracy"]
    assert acc.goal == "max" and round(acc.best_b, 6) == 0.55

    text = str(result)
    for expected in ("~ learning-rate", "0.1 -> 0.05", "+ warmup", "user code differs",
                     "~ training", "numpy 1.26.4 -> 2.0.0", "loss (min)", "-0.1"):
        assert expected in text, expected
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["params"]["changed"]["learning-rate"] == [0.1, 0.05]
    assert doc["code"]["same_content"] is False and doc["code"]["diff_of_diffs"] == dod


def test_identical_runs_diff_as_identical(store_uri):
    write_run(store_uri, "e", "run-1", diff=DIFF_A)
    write_run(store_uri, "e", "run-2", diff=DIFF_A)
    store = open_store(store_uri)
    result = diff(store.run("run-1"), store.run("run-2"))
    assert result.params.identical and result.code.same_content is True
    assert result.code.diff_of_diffs() == "" and result.data[0].status == "same"
    assert all(m.delta_final == 0 for m in result.metrics)
    assert "Hyperparameters (identical)" in str(result)
    assert "uncommitted changes: identical" in str(result)


def test_diff_of_partial_and_corrupt_records_does_not_crash(store_uri):
    write_run(store_uri, "e", "good")
    backend = open_backend(store_uri)
    backend.put("e/broken/run.json", b'{"params": {"epochs": ')
    backend.put("e/broken/status.json", b'{"status": "running"}')
    store = open_store(store_uri)
    broken = store.run("broken")
    result = diff(store.run("good"), broken)
    assert broken.problems and "not valid JSON" in broken.problems[0]
    assert result.params.removed["epochs"] == 3
    assert result.data[0].status == "removed"
    assert "Metrics" in str(result)


def test_metric_goal_and_diffstat():
    assert [metric_goal(n) for n in ("loss", "val_mae", "mse", "top_error", "accuracy",
                                     "val_auc", "learning_rate", "lr")] == [
        "min", "min", "min", "min", "max", "max", None, None]
    assert diffstat(DIFF_A) == [("train.py", 1, 1)]
    assert diffstat("") == []


def test_find_duplicate_matches_code_params_data_and_image(store_uri):
    write_run(store_uri, "resnet", "done-1")
    write_run(store_uri, "resnet", "failed-1", status="failed")
    write_run(store_uri, "other", "done-2", started="2024-06-01T00:00:00.000+00:00")
    store = open_store(store_uri)
    record = dict(store.run("done-1").record)
    record.update(run_id="new-job", params={**record["params"],
                                            "model_dir": "s3://bucket/new-job/model"})
    found = find_duplicate(store, record)
    assert found is not None and found.id == "done-2"  # newest completed, any experiment
    assert find_duplicate(store, record, experiment="resnet").id == "done-1"
    assert find_duplicate(store, {**record, "params": {**record["params"], "epochs": 4}}) is None
    assert find_duplicate(store, {**record, "job": {**record["job"], "image_uri": "x"}}) is None
    changed_data = json.loads(json.dumps(record))
    changed_data["inputs"]["training"]["sha256"] = "0" * 64
    assert find_duplicate(store, changed_data) is None
    no_hash = json.loads(json.dumps(record))
    no_hash["code"]["tarball"].pop("content_sha256")
    assert launch_identity(no_hash) is None and find_duplicate(store, no_hash) is None
