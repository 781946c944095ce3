"""A run's status takes SageMaker's outcome of the job where both exist, and says when the
container's own final status disagrees with it."""

from __future__ import annotations

import json

import pytest

from sagetrack.store.reader import Store
from tests.support.records import write_run

CASES = [  # recorded by the container, SageMaker's status, status read, disagreement
    ("completed", None, "completed", False),
    ("completed", "Completed", "completed", False),
    ("completed", "Failed", "failed", True),
    ("failed", "Completed", "completed", True),
    ("stopped", "Stopped", "stopped", False),
    ("running", "Failed", "failed", False),
    ("running", None, "running", False),
]


@pytest.mark.parametrize(("recorded", "job_status", "expected", "flagged"), CASES)
def test_status_reconciles_with_sagemaker(tmp_path, recorded, job_status, expected, flagged):
    write_run(str(tmp_path), "exp", "job-1", status=recorded)
    if job_status:
        (tmp_path / "exp" / "job-1" / "job.json").write_text(json.dumps(
            {"status": job_status, "failure_reason": "AlgorithmError: ExitCode 3"}))
    run = Store(str(tmp_path)).run("job-1")
    assert run.status == expected
    disagreement = [p for p in run.problems if "SageMaker reports" in p]
    assert bool(disagreement) == flagged, run.problems
    if flagged:
        assert repr(recorded) in disagreement[0] and repr(job_status) in disagreement[0]
