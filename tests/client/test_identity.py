"""Same work at fit(): a warning naming the completed run, or that run with skip_if_done."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import sagetrack
from sagetrack import TensorFlow, TrackingWarning


@pytest.mark.parametrize("budget", [60.0, 0.0], ids=["record-before-launch", "record-after"])
def test_duplicate_work_warns_and_skip_if_done_returns_the_completed_run(
        aws, tmp_path, monkeypatch, budget, sdk_args, sent_requests):
    from sagetrack import TrackingWarning

    monkeypatch.setenv("SAGETRACK_LAUNCH_BUDGET", str(budget))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("pass\n")
    aws.s3.put_object(Bucket=aws.bucket, Key="data/x", Body=b"x")
    store = tmp_path / "store"
    session = aws.sagemaker_session()
    requests = sent_requests(session)

    def estimator(**hps):
        return TensorFlow(source_dir=str(tmp_path / "src"), sagemaker_session=session,
                          hyperparameters={"epochs": 2, **hps}, tracking_uri=str(store),
                          experiment="dup", **sdk_args)

    def launch(est, **kwargs):
        # with no budget the record (and its same-work check) completes in the background
        result = est.fit(f"s3://{aws.bucket}/data", wait=False, **kwargs)
        est.wait_for_launch_record()
        return result

    first = estimator()
    launch(first)
    done = first.latest_training_job.name
    status = store / "dup" / done / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "status": "completed"}))

    with pytest.warns(TrackingWarning, match=done):
        launch(estimator())  # warned, still launched
    assert len(requests) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        launch(estimator(epochs=3))  # other work: silent
    assert len(requests) == 3
    with pytest.warns(TrackingWarning):
        run = launch(estimator(), skip_if_done=True)
    assert run.id == done and len(requests) == 3  # nothing launched
    aws.s3.put_object(Bucket=aws.bucket, Key="data/y", Body=b"new data")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        launch(estimator(), skip_if_done=True)
    assert len(requests) == 4  # the data changed: not the same work


def complete(store: Path, experiment: str, run_id: str) -> None:
    """Mark a run completed, as its container would."""
    status = store / experiment / run_id / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "status": "completed"}))


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_everything_that_changes_what_a_job_computes_is_other_work(
        aws, tmp_path, sdk_args, sent_requests):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("pass\n")
    (tmp_path / "src" / "train2.py").write_text("pass\n")
    aws.s3.put_object(Bucket=aws.bucket, Key="data/x", Body=b"x")
    store = tmp_path / "store"
    session = aws.sagemaker_session()
    requests = sent_requests(session)

    def fit(**changes: Any) -> Any:
        est = TensorFlow(**{**sdk_args, "source_dir": str(tmp_path / "src"),
                            "sagemaker_session": session, "tracking_uri": str(store),
                            "hyperparameters": {"epochs": 2}, **changes})
        return est, est.fit(f"s3://{aws.bucket}/data", wait=False, skip_if_done=True)

    first, _ = fit()
    complete(store, "default", first.latest_training_job.name)
    variants = {"entry point": {"entry_point": "train2.py"},
                "environment": {"environment": {"MODE": "fast"}},
                "instance type": {"instance_type": "ml.m5.2xlarge"},
                "instance count": {"instance_count": 2},
                "distribution": {"distribution": {"parameter_server": {"enabled": True}}}}
    for name, changes in variants.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", TrackingWarning)
            _, result = fit(**changes)
        assert result is None, f"{name}: a different job was skipped"
    assert len(requests) == 1 + len(variants)
    with pytest.warns(TrackingWarning, match=first.latest_training_job.name):
        _, run = fit()  # the same work again: skipped
    assert run.id == first.latest_training_job.name and len(requests) == 1 + len(variants)


def test_vcs_internals_and_caches_are_not_the_code(aws, git_repo, tmp_path, sdk_args,
                                                  sent_requests):
    """The code tarball holds .git/ when source_dir is a repository: a commit, a refreshed
    index or a __pycache__ folder change it, but not the code."""
    from tests.support.repo import git

    store = tmp_path / "store"
    session = aws.sagemaker_session()
    requests = sent_requests(session)

    def fit() -> Any:
        est = TensorFlow(source_dir=str(git_repo), sagemaker_session=session,
                         tracking_uri=str(store), entry_point="src/train.py",
                         **{k: v for k, v in sdk_args.items() if k != "entry_point"})
        return est, est.fit(f"s3://{aws.bucket}/data", wait=False, skip_if_done=True)

    first, _ = fit()
    done = first.latest_training_job.name
    assert ".git/HEAD" not in first.latest_run.code["tarball"]["files"]
    complete(store, "default", done)
    git(git_repo, "commit", "-q", "--allow-empty", "-m", "nothing changes")
    (git_repo / "src" / "__pycache__").mkdir()
    (git_repo / "src" / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0cache")
    with pytest.warns(TrackingWarning, match=done):
        _, run = fit()
    assert run is not None and run.id == done and len(requests) == 1
    (git_repo / "src" / "train.py").write_text("print('training v2')\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        assert fit()[1] is None  # the code changed: launched
    assert len(requests) == 2


def test_a_skipped_launch_writes_nothing_and_latest_run_is_the_run_returned(
        aws, tmp_path, sdk_args, sent_requests):
    from sagetrack.store.reader import Store

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("pass\n")
    store = tmp_path / "store"
    session = aws.sagemaker_session()
    requests = sent_requests(session)

    def estimator() -> TensorFlow:
        return TensorFlow(source_dir=str(tmp_path / "code"), sagemaker_session=session,
                          tracking_uri=str(store), **sdk_args)

    first = estimator()
    first.fit(f"s3://{aws.bucket}/data", wait=False)
    done = first.latest_training_job.name
    complete(store, "default", done)
    before = files_of(store)
    second = estimator()
    with pytest.warns(TrackingWarning, match=f"{done}.*returns it instead of launching"):
        run = second.fit(f"s3://{aws.bucket}/data", wait=False, skip_if_done=True)
    second.wait_for_launch_record()
    assert run.id == done and len(requests) == 1
    assert files_of(store) == before  # no status, no record, no marker
    assert second.latest_run.id == done and second.latest_training_job is None
    # the user-facing run, with its conveniences, for a launched job and for a skip alike
    assert isinstance(second.latest_run, sagetrack.Run) and callable(second.latest_run.plot)
    assert isinstance(first.latest_run, sagetrack.Run)
    assert callable(first.latest_run.estimator) and callable(first.latest_run.training_inputs)
    assert [r.id for r in Store(str(store)).list_runs()] == [done]
