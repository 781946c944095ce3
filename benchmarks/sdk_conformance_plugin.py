"""pytest plugin for ``sdk_conformance.py``: the SDK's tests against ``sagetrack.TensorFlow``.

Loaded with ``-p sdk_conformance_plugin`` (``benchmarks/`` on ``PYTHONPATH``). At configure
time, before any test module is imported, it replaces ``sagemaker.tensorflow.TensorFlow``
(where the SDK's tests import the class from) with:

* ``--sagetrack-tracking=on``: ``sagetrack.TensorFlow`` as is (tracking on by default);
* ``--sagetrack-tracking=off``: a subclass whose ``tracking`` defaults to ``False``;
* ``--sagetrack-tracking=sdk``: nothing (the SDK's own class, a baseline).

``sagemaker.tensorflow.estimator.TensorFlow`` stays the SDK's class: the SDK's methods call
``super(TensorFlow, self)`` through that module-level name, which a subclass in its place
would turn into endless recursion. Tests that patch a method there
(``patch("sagemaker.tensorflow.estimator.TensorFlow.create_model")``) patch the base class,
which the substitute inherits.

It then checks that every collected test module that names ``TensorFlow`` got the
substitute (a usage error otherwise), and writes one JSON line per test to
``--sagetrack-report``: node id, outcome, duration, the crash line of a failure, and the
number of :class:`sagetrack.TrackingWarning` the test issued.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

MODES = ("on", "off", "sdk")
_STATE: dict[str, Any] = {"substitute": None, "records": {}, "warnings": {}}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sagetrack conformance")
    group.addoption("--sagetrack-tracking", choices=MODES, default="on",
                    help="which TensorFlow estimator the SDK's tests get (default: on)")
    group.addoption("--sagetrack-report", default=None,
                    help="write one JSON line per test to this file")


def _substitute(mode: str) -> type | None:
    if mode == "sdk":
        return None
    import sagemaker.tensorflow

    import sagetrack

    tracked: type = sagetrack.TensorFlow
    if mode == "on":
        cls = tracked
    else:
        class TensorFlow(tracked):  # type: ignore[misc]
            def __init__(self, *args: Any, tracking: bool = False, **kwargs: Any) -> None:
                super().__init__(*args, tracking=tracking, **kwargs)

        TensorFlow.__module__ = tracked.__module__
        TensorFlow.__qualname__ = tracked.__qualname__
        cls = TensorFlow
    sagemaker.tensorflow.TensorFlow = cls
    return cls


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _STATE["substitute"] = _substitute(config.getoption("--sagetrack-tracking"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    expected = _STATE["substitute"]
    if expected is None:
        return
    wrong = sorted({
        item.module.__name__ for item in items
        if isinstance(item, pytest.Function) and item.module is not None
        and isinstance(getattr(item.module, "TensorFlow", None), type)
        and item.module.TensorFlow is not expected})
    if wrong:
        raise pytest.UsageError(
            f"sagetrack's TensorFlow was not substituted in {wrong}: these modules imported "
            "the SDK's class before the plugin ran. Load the plugin with -p.")


def pytest_warning_recorded(warning_message: Any, nodeid: str) -> None:
    from sagetrack import TrackingWarning

    if nodeid and issubclass(warning_message.category, TrackingWarning):
        messages = _STATE["warnings"].setdefault(nodeid, [])
        messages.append(str(warning_message.message)[:300])


def _crash(report: pytest.TestReport | pytest.CollectReport) -> tuple[str, str]:
    """The exception line and where it was raised, from a failed report."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message), f"{crash.path}:{crash.lineno}"
    text = str(report.longrepr)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else text), ""


def _entry(nodeid: str) -> dict[str, Any]:
    records: dict[str, dict[str, Any]] = _STATE["records"]
    return records.setdefault(nodeid, {"nodeid": nodeid, "outcome": "passed",
                                       "duration": 0.0})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _entry(report.nodeid)
    entry["duration"] += report.duration
    if report.passed or entry["outcome"] in ("failed", "error"):
        return
    if report.skipped:
        if report.when == "call" or entry["outcome"] == "passed":
            entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        return
    message, where = _crash(report)
    entry.update(outcome="failed" if report.when == "call" else "error",
                 phase=report.when, message=message, where=where)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        message, where = _crash(report)
        _entry(report.nodeid).update(outcome="error", phase="collect", message=message,
                                     where=where)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--sagetrack-report")
    if not path:
        return
    substitute = _STATE["substitute"]
    header = {"mode": session.config.getoption("--sagetrack-tracking"),
              "estimator": None if substitute is None
              else f"{substitute.__module__}.{substitute.__qualname__}",
              "python": sys.version.split()[0]}
    with Path(path).open("w") as out:
        out.write(json.dumps({"header": header}) + "\n")
        for nodeid, entry in _STATE["records"].items():
            warned = _STATE["warnings"].get(nodeid, [])
            out.write(json.dumps({**entry, "tracking_warnings": len(warned),
                                  "first_warning": warned[0] if warned else None}) + "\n")
