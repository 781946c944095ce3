"""The example notebook and the demo driver run offline, end to end (small data)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.no_network import attempts, offline_env

from sagetrack.store.reader import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "resnet_cifar10"
pytestmark = pytest.mark.slow


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SAGEMAKER_", "SAGETRACK"))}
    env.update(SAGETRACK_URI=str(tmp_path / "runs"), SAGETRACK_NOTEBOOK_QUICK="1",
               SAGETRACK_EXAMPLE_DIR=str(EXAMPLE), TF_CPP_MIN_LOG_LEVEL="3",
               SAGETRACK_STRICT="1")
    return env


def test_notebook_executes_offline(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLE / "notebook.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean_env(tmp_path))  # the kernel inherits this environment
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    outputs = "\n".join(o.get("text", "") for cell in notebook.cells
                        for o in cell.get("outputs", []))
    assert outputs.count(" completed") == 2
    assert "data training: s3://sagetrack-demo/cifar10/train objects=1" in outputs
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for cell in notebook.cells for o in cell.get("outputs", []))
    runs = Store(str(tmp_path / "runs")).list_runs("resnet-cifar10-notebook")
    assert sorted(r.params["learning-rate"] for r in runs) == [0.02, 0.1]
    assert all(r.status == "completed" and len(r.metrics) == 1 for r in runs)
    report = tmp_path / "notebook-report" / "index.html"  # the notebook links its report
    assert report.is_file() and f"file://{report}" in outputs


def test_demo_script_runs_offline(tmp_path):
    # no AWS set-up, no network: every connection outside loopback would be refused and logged
    base = clean_env(tmp_path)
    env = offline_env(tmp_path, base)
    env.update({k: v for k, v in base.items() if k.startswith("SAGETRACK")})
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "run_demo.py"), "--store", str(tmp_path / "runs"),
         "--output", str(tmp_path / "out"), "--quick", "--quiet"],
        env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert attempts(env) == ""
    assert "[4/4] Comparing the runs" in out.stdout
    assert re.search(r"~ learning-rate +0\.1 -> 0\.02", out.stdout)
    data = tmp_path / "out" / "data"
    assert re.search(rf"training +same +file://{re.escape(str(data))}/train", out.stdout)
    assert (tmp_path / "out" / "curves.png").stat().st_size > 10_000
    runs = Store(str(tmp_path / "runs")).list_runs("resnet-cifar10")
    assert len(runs) == 2 and all(r.status == "completed" for r in runs)
    bucket = f"file://{tmp_path / 'out' / 'jobs' / 'bucket'}/"
    assert all(r.code["tarball"]["uri"].startswith(bucket) for r in runs)
