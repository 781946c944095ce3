"""Run a script the way the SageMaker toolkit starts the user's entry point, with the
tracking bootstrap on ``PYTHONPATH`` and a local folder as the store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from sagetrack.client.staging import bootstrap_paths


def run_script(tmp_path: Path, body: str, *, args: list[str] | None = None,
               env: dict[str, str] | None = None, wait: bool = True,
               entry: str = "train.py") -> Any:
    """Run ``body`` (dedented) as ``python train.py`` under the container contract; the
    completed process, or the running ``Popen`` when ``wait`` is False."""
    code = tmp_path / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / entry).write_text(textwrap.dedent(body))
    boot = str(Path(bootstrap_paths()[0]).parent)
    base = tmp_path / "opt_ml"
    for sub in ("model", "output/data"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([boot, str(code)]),
        "SAGETRACK": "1", "SAGETRACK_URI": str(tmp_path / "store"),
        "SAGETRACK_EXPERIMENT": "exp", "SAGETRACK_TRACK_BATCHES": "0",
        "SAGETRACK_EXIT_TIMEOUT": "5",
        "TRAINING_JOB_NAME": "job-1", "SM_USER_ENTRY_POINT": entry,
        "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1",
        "SM_MODEL_DIR": str(base / "model"), "SM_OUTPUT_DATA_DIR": str(base / "output/data"),
        "SAGEMAKER_BASE_DIR": str(base), "TF_CPP_MIN_LOG_LEVEL": "3",
        **(env or {}),
    }
    cmd = [sys.executable, entry, *(args or [])]
    if not wait:
        return subprocess.Popen(cmd, cwd=code, env=environ, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, cwd=code, env=environ, capture_output=True, text=True,
                          timeout=300)


def store_of(tmp_path: Path) -> str:
    """The store folder :func:`run_script` writes to."""
    return str(tmp_path / "store")
