"""The run index: settled runs served from one object, everything else read directly."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sagetrack.store import index
from sagetrack.store.backends import open_backend
from sagetrack.store.schema import RunsIndexLine

from ..support.records import open_store, write_pair, write_run


def delete_run(uri: str, experiment: str, run_id: str, request: Any, name: str = "") -> None:
    """Delete a run (or one of its files) behind the reader's back."""
    if uri.startswith("s3://"):
        aws = request.getfixturevalue("aws")
        prefix = f"sagetrack/{experiment}/{run_id}/{name}"
        for key in aws.list_keys(prefix):
            aws.s3.delete_object(Bucket=aws.bucket, Key=key)
    else:
        path = Path(uri, experiment, run_id, name)
        path.unlink() if path.is_file() else shutil.rmtree(path)


def test_listing_without_an_index_reads_records_and_writes_nothing(store_uri):
    write_pair(store_uri)
    store = open_store(store_uri)
    assert [r.id for r in store.list_runs()] == ["resnet-b", "resnet-a"]
    assert list(store.backend.list("_index")) == []
    assert store.experiments() == ["resnet"]


def test_refresh_indexes_settled_runs_only(store_uri, request):
    write_pair(store_uri)
    write_run(store_uri, "resnet", "resnet-live", status="running", ended=None,
              started="2024-05-03T00:00:00.000+00:00")
    store = open_store(store_uri)
    stats = store.refresh_index()
    assert stats == {"resnet": {"runs": 3, "from_index": 0, "read": 3, "indexed": 2}}
    assert sorted(store.backend.list("_index")) == ["_index/resnet/metrics.jsonl.gz",
                                                    "_index/resnet/runs.jsonl.gz"]
    assert store.experiments() == ["resnet"]  # the index is not an experiment

    # settled runs now come from the index: even a deleted launch record is still listed
    delete_run(store_uri, "resnet", "resnet-a", request, "run.json")
    runs = {r.id: r for r in open_store(store_uri).list_runs()}
    assert runs["resnet-a"].params["learning-rate"] == 0.1
    assert runs["resnet-a"].best_metrics["loss"] == 0.45
    assert runs["resnet-live"].status == "running"  # unsettled: read directly

    again = store.refresh_index()
    assert again["resnet"] == {"runs": 3, "from_index": 2, "read": 1, "indexed": 2}


def test_new_and_removed_runs_are_seen_through_the_index(store_uri, request):
    write_pair(store_uri)
    store = open_store(store_uri)
    store.refresh_index()
    write_run(store_uri, "resnet", "resnet-c", started="2024-05-05T00:00:00.000+00:00")
    delete_run(store_uri, "resnet", "resnet-a", request)
    assert [r.id for r in store.list_runs(update_index=True)] == ["resnet-c", "resnet-b"]
    entries = index._read(store.backend, index.runs_key("resnet"), RunsIndexLine)
    assert sorted(e["id"] for e in entries) == ["resnet-b", "resnet-c"]


def test_a_corrupt_index_is_ignored(store_uri):
    write_pair(store_uri)
    store = open_store(store_uri)
    store.backend.put(index.runs_key("resnet"), b"not gzip")
    store.backend.put(index.metrics_key("resnet"), gzip.compress(b'{"format": "other"}\n'))
    assert [r.id for r in store.list_runs()] == ["resnet-b", "resnet-a"]
    assert len(store.metrics()) == 6
    store.refresh_index(rebuild=True)
    assert len(index._read(store.backend, index.runs_key("resnet"), RunsIndexLine)) == 2


def test_metrics_of_many_runs_load_concurrently_and_from_the_index(store_uri, request,
                                                                   monkeypatch):
    write_pair(store_uri)
    write_run(store_uri, "other", "other-1", losses=[0.3])
    store = open_store(store_uri)
    frame = store.metrics()
    assert len(frame) == 7 and set(frame["run"]) == {"resnet-a", "resnet-b", "other-1"}
    assert {"epoch", "loss", "val_loss", "accuracy", "duration_s"} <= set(frame.columns)
    b = frame[frame["run"] == "resnet-b"].sort_values("epoch")
    assert list(b["loss"]) == [0.8, 0.35, 0.4]

    store.refresh_index()
    monkeypatch.setattr(index, "METRICS_INDEX_MIN_RUNS", 1)
    delete_run(store_uri, "resnet", "resnet-b", request, "metrics.jsonl")
    again = open_store(store_uri).metrics(experiment="resnet")
    assert list(again[again["run"] == "resnet-b"]["loss"]) == [0.8, 0.35, 0.4]


def test_settled_needs_a_final_status_that_is_old_or_a_job_outcome(store_uri):
    write_run(store_uri, "e", "old")
    write_run(store_uri, "e", "fresh", ended=index.now_iso())
    write_run(store_uri, "e", "fresh-waited", ended=index.now_iso(),
              job_doc={"status": "Completed"})
    write_run(store_uri, "e", "live", status="running", ended=None)
    runs = {r.id: r for r in open_store(store_uri).list_runs()}
    assert {rid: index.settled(r) for rid, r in runs.items()} == {
        "old": True, "fresh": False, "fresh-waited": True, "live": False}


@pytest.mark.parametrize("experiment", ["../x", "a/b"])
def test_index_keys_validate_the_experiment(experiment):
    with pytest.raises(Exception, match="Invalid experiment"):
        index.runs_key(experiment)


def test_store_without_runs(store_uri):
    store = open_store(store_uri)
    assert store.list_runs() == [] and store.refresh_index() == {}
    assert store.metrics().empty
    open_backend(store_uri)  # still a valid, empty store


def test_an_index_entry_of_another_shape_is_not_used(store_uri):
    write_pair(store_uri)
    store = open_store(store_uri)
    store.refresh_index()
    raw = gzip.decompress(store.backend.get(index.runs_key("resnet"))).decode().splitlines()
    entries = [json.loads(line) for line in raw]
    for entry in entries[1:]:
        if entry["id"] == "resnet-a":
            entry["record"]["params"] = ["not", "a", "mapping"]
            entry["best"] = {"loss": "low"}
    store.backend.put(index.runs_key("resnet"), gzip.compress(
        "".join(json.dumps(e) + "\n" for e in entries).encode()))
    assert [e["id"] for e in index._read(store.backend, index.runs_key("resnet"),
                                         RunsIndexLine)] == ["resnet-b"]
    runs = {r.id: r for r in open_store(store_uri).list_runs()}
    assert runs["resnet-a"].params["learning-rate"] == 0.1  # read from its own records
    assert runs["resnet-a"].best_metrics["loss"] == 0.45 and not runs["resnet-a"].problems
