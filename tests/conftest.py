"""Shared fixtures: fake AWS credentials, a moto server on loopback, SDK sessions.

Every test runs with fake credentials, SDK telemetry off, and ``SAGETRACK_STRICT=1`` so
that internal tracking errors raise instead of being swallowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import (
    AWS,
    REGION,
    ROLE,
    moto_server,
    new_bucket,
    set_fake_aws,
    validate_sdk_config_once,
)
from tests.support.repo import git, make_repo

__all__ = ["AWS", "REGION", "ROLE", "git", "set_fake_aws"]


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Launch records are written before fit() returns unless capture outlasts the launch
    # budget; tests read records right after fit(wait=False), so on a loaded machine they
    # get a budget that tiny inputs never exceed. The background path has its own tests,
    # which set the budget low on purpose.
    os.environ.setdefault("SAGETRACK_LAUNCH_BUDGET", "60")
    # The SDK re-validates its JSON-schema config on every lookup (~0.3 s each); the
    # config never changes within a test run, so validate each distinct one once.
    validate_sdk_config_once()


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials only; nothing in a test can reach real AWS."""
    set_fake_aws(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """The test session's one moto server (S3, SageMaker, ...) on 127.0.0.1."""
    with moto_server(in_process=True) as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> AWS:
    """Point every AWS client (this process and subprocesses) at moto; a fresh bucket."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return new_bucket(moto_url)


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository with one commit and a remote URL carrying credentials."""
    return make_repo(tmp_path)


class FaultReport:
    """Counts for the fault-injection summary line printed at the end of the run."""

    faults = 0
    trainings = 0
    trainings_failed = 0
    records_checked = 0
    records_lost = 0

    def injected(self, n: int = 1) -> None:
        FaultReport.faults += n

    def training(self, *, ok: bool) -> None:
        FaultReport.trainings += 1
        FaultReport.trainings_failed += 0 if ok else 1

    def records(self, *, expected: int, found: int) -> None:
        FaultReport.records_checked += expected
        FaultReport.records_lost += max(0, expected - found)


@pytest.fixture
def fault_report() -> FaultReport:
    """Record what a fault-injection test injected and what survived."""
    return FaultReport()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _ATTACKS:
        terminalreporter.write_line("attack classes (tests passed / run): " + "; ".join(
            f"{name} {ok}/{run}" for name, (run, ok) in _ATTACKS.items()))
    if FaultReport.faults:
        r = FaultReport
        terminalreporter.write_line(
            f"fault injection: {r.faults} faults injected, {r.trainings} trainings run, "
            f"{r.trainings_failed} trainings failed, {r.records_checked} records checked, "
            f"{r.records_lost} records lost")


#: what a test module calls when it runs a training script or job in a subprocess
_JOB_MARKERS = ("run_script(", "make_session(", "LocalProcessSession(", "sys.executable")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test of a module that runs scripts or jobs in subprocesses, so
    that ``make check`` (``-m "not slow"``) keeps to the in-process tests."""
    seen: dict[str, bool] = {}
    for item in items:
        path = str(item.path)
        if path not in seen:
            try:
                text = item.path.read_text()
            except OSError:
                text = ""
            seen[path] = any(marker in text for marker in _JOB_MARKERS)
        if seen[path]:
            item.add_marker(pytest.mark.slow)


#: the attack classes of docs/reliability.md and the tests that try them
ATTACK_CLASSES = {
    "secrets": ("tests/redact/",),
    "launch never broken or held up": ("tests/client/test_launch_budget.py",
                                       "tests/client/test_provenance.py",
                                       "tests/client/test_attach.py"),
    "training outcome truthful": ("tests/container/test_exit_status.py",
                                  "tests/container/test_output.py",
                                  "tests/store/test_status.py"),
    "nothing lost or misfiled": ("tests/client/test_claim.py", "tests/client/test_identity.py"),
    "paths and inputs": ("tests/test_bad_inputs.py", "tests/store/test_containment.py",
                         "tests/local/test_contract.py", "tests/client/test_checkout.py"),
    "mocked sessions and odd records": ("tests/store/test_serialise.py",
                                        "tests/cli/test_record_shapes.py"),
}
_ATTACKS: dict[str, list[int]] = {}


def _attack_class(nodeid: str) -> str | None:
    for name, prefixes in ATTACK_CLASSES.items():
        if nodeid.startswith(prefixes):
            return name
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = _attack_class(report.nodeid)
    if name is None or not (report.when == "call" or report.outcome == "failed"):
        return
    counts = _ATTACKS.setdefault(name, [0, 0])
    counts[0] += 1
    counts[1] += report.outcome == "passed"
