"""The SDK's own TensorFlow unit tests pass against ``sagetrack.TensorFlow``.

Runs ``benchmarks/sdk_conformance.py`` (tracking off and on) when ``SDK_CHECKOUT`` points at
an aws/sagemaker-python-sdk checkout at the tag of the installed ``sagemaker``; skipped
otherwise. Tracking off must pass every test; tracking on may fail only the tests listed,
with a reason, in ``tests/conformance/expected_failures.txt`` (see docs/compatibility.md).
The run takes several minutes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "sdk_conformance.py"
EXPECTED = Path(__file__).with_name("expected_failures.txt")
HOW = ("set SDK_CHECKOUT to a checkout of aws/sagemaker-python-sdk at the tag of the "
       "installed sagemaker (git clone -b v<version> "
       "https://github.com/aws/sagemaker-python-sdk), e.g. "
       "SDK_CHECKOUT=../sagemaker-python-sdk .venv/bin/python -m pytest tests/conformance")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sdk_conformance", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    checkout = os.environ.get("SDK_CHECKOUT")
    if not checkout:
        pytest.skip(f"SDK conformance not run: {HOW}")
    out = tmp_path_factory.mktemp("conformance")
    cmd = [sys.executable, str(SCRIPT), "--sdk", checkout, "--tracking", "both",
           "--expected", str(EXPECTED), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "sdk_conformance.json").read_text())
    return data


def _listing(mode: dict[str, Any], nodeids: list[str] | None = None) -> str:
    """Up to 40 failing tests of ``mode`` (those in ``nodeids``), each with its error."""
    chosen = [f"{nodeid}: {group['first_message'].splitlines()[0][:200]}"
              for group in mode["failure_groups"] for nodeid in group["nodeids"]
              if nodeids is None or nodeid in nodeids]
    return "\n".join(chosen[:40])


def test_the_expected_failures_file_is_well_formed() -> None:
    expected = _script().load_expected(EXPECTED)
    assert all(reason for reason in expected.values())
    assert all(p.startswith("tests/unit/sagemaker/tensorflow/") for p in expected)
    assert "tests/conformance/expected_failures.txt" in (
        ROOT / "docs" / "compatibility.md").read_text()


def test_tracking_off_passes_every_test(results: dict[str, Any]) -> None:
    off = results["modes"]["off"]
    totals = off["totals"]
    assert totals["collected"] > 1000
    assert totals["failed"] == totals["error"] == 0, _listing(off)
    assert totals["passed"] + totals["skipped"] + totals["xfailed"] == totals["collected"]


def test_tracking_on_fails_only_the_expected_tests(results: dict[str, Any]) -> None:
    on = results["modes"]["on"]
    assert on["totals"]["collected"] == results["modes"]["off"]["totals"]["collected"]
    assert on["totals"]["passed"] > 0
    unexpected = results["expected"]["unexpected"]
    assert unexpected == [], (f"{len(unexpected)} failures not in {EXPECTED.name}:\n"
                              + _listing(on, unexpected))


def test_every_expected_failure_still_fails(results: dict[str, Any]) -> None:
    assert results["expected"]["stale"] == [], (
        f"entries of {EXPECTED.name} that match no failing test: remove them")
