"""Hand the exact code a run ran to a colleague: :func:`checkout` writes it to a folder.

The folder holds ``code/`` (the recorded code tarball, extracted safely, without
sagetrack's bootstrap), ``hyperparameters.json``, ``run.json``, ``code.diff`` (the
uncommitted changes) and a ``README.md`` saying how to run it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shlex
import tarfile
from pathlib import Path
from typing import Any

from .._tar import extract
from ..errors import ConfigurationError
from ..store.backends import open_backend
from ..store.reader import Run
from .reproduce import ReproductionError, tarball_uri
from .staging import BOOTSTRAP_NAMES

__all__ = ["checkout"]


def _fetch(uri: str) -> bytes:
    parent, _sep, name = uri.rstrip("/").rpartition("/")
    if uri.startswith("file://"):
        parent = parent[len("file://"):]
    return open_backend(parent or ".").get(name)


def _cmd_args(params: dict[str, Any]) -> str:
    """Hyperparameters as the SageMaker training toolkit passes them to the script."""
    out = []
    for key in sorted(params):
        value = params[key]
        text = ",".join(f"{k}={v}" for k, v in sorted(value.items())) \
            if isinstance(value, dict) else str(value)
        out += [f"--{key}" if len(key) > 1 else f"-{key}", shlex.quote(text)]
    return " ".join(out)


def _readme(run: Run, files: list[str], skipped: list[str], diff: bool) -> str:
    code, job, tarball = run.code, run.job_config, run.code.get("tarball") or {}
    params = {k: v for k, v in run.params.items() if k != "model_dir"}
    entry = (run.record.get("sagemaker_params") or {}).get("sagemaker_program") or \
        posixpath.basename(str(code.get("entry_point") or "train.py"))
    env = " ".join(f"SM_CHANNEL_{name.upper()}=<local copy of {info.get('uri')}>"
                   for name, info in run.inputs.items())
    lines = [
        f"# Code of run {run.id}", "",
        f"Checked out by sagetrack from `{run.backend.uri}` (experiment `{run.experiment}`).",
        "", f"- status: {run.status}; started {run.status_record.get('started') or '-'}, "
        f"ended {run.status_record.get('ended') or '-'}",
    ]
    if code.get("commit"):
        lines.append(f"- git: commit `{code['commit']}` on branch `{code.get('branch') or '-'}`"
                     f" of {code.get('remote') or 'a repository without remote'}; uncommitted "
                     f"changes: {'yes (see code.diff)' if code.get('dirty') else 'no'}")
    lines += [
        f"- code tarball: `{tarball.get('uri') or '-'}` (sha256 `{tarball.get('sha256') or '-'}`,"
        f" content hash `{tarball.get('content_sha256') or '-'}`)",
        f"- image: `{job.get('image_uri') or '-'}`; instances: {job.get('instance_count')} x "
        f"{job.get('instance_type')}",
    ]
    for name, info in sorted(run.inputs.items()):
        lines.append(f"- input `{name}`: `{info.get('uri')}` ({info.get('objects')} objects, "
                     f"{info.get('bytes')} bytes, sha256 `{str(info.get('sha256'))[:16]}`)")
    lines += ["", "## Files", "",
              f"- `code/` - the exact code that ran ({len(files)} files; sagetrack's "
              "bootstrap left out)",
              "- `hyperparameters.json` - the hyperparameters the script received",
              "- `run.json` - the full launch record"]
    if diff:
        lines.append("- `code.diff` - uncommitted changes on top of the commit above")
    if skipped:
        lines.append(f"- not extracted (links or unsafe paths): {', '.join(skipped[:20])}")
    lines += ["", "## Re-run", "", "Same code, data and settings, as a new tracked job:", "",
              f"    sagetrack reproduce {run.id} --uri {run.backend.uri}", "",
              "From Python, with changes:", "",
              "    from sagetrack import Store",
              f"    run = Store({run.backend.uri!r}).run({run.id!r})",
              "    est = run.estimator(instance_type='ml.g5.xlarge')  # any overrides",
              "    est.fit(run.training_inputs())", "",
              "As a plain process (script mode passes hyperparameters as arguments):", "",
              f"    cd code && {env + ' ' if env else ''}python {entry} {_cmd_args(params)}"
              .rstrip()]
    if code.get("commit"):
        lines += ["", "Back in the repository:", "", f"    git checkout {code['commit']}"]
        if diff:
            lines.append("    git apply path/to/code.diff")
    return "\n".join(lines) + "\n"


def checkout(run: Run, directory: str | os.PathLike[str] | None = None, *,
             force: bool = False) -> Path:
    """Write the code that ran (``code/``), ``hyperparameters.json``, ``run.json``,
    ``code.diff`` and a ``README.md`` into ``directory`` (default: the run id).

    Refuses a non-empty directory, and a tarball whose sha256 no longer matches the
    record, unless ``force``.
    """
    target = Path(directory if directory is not None else run.id)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise ConfigurationError(
            f"{target} exists and is not empty: choose a new folder or pass --force "
            f"(force=True). Received: directory={str(target)!r}")
    uri = tarball_uri(run)
    data = _fetch(uri)
    recorded = (run.code.get("tarball") or {}).get("sha256")
    if recorded and hashlib.sha256(data).hexdigest() != recorded and not force:
        raise ReproductionError(
            f"The code tarball {uri} changed since run {run.id} (sha256 differs from the "
            "record): it is not the code that ran. Pass --force to extract it anyway.")
    code_dir = target / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    try:
        extracted = extract(data, code_dir, skip_top=BOOTSTRAP_NAMES)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReproductionError(f"Cannot extract the code tarball {uri}: {exc}") from exc
    files, skipped = sorted(extracted.written), extracted.skipped
    (target / "hyperparameters.json").write_text(json.dumps(run.params, indent=2) + "\n")
    (target / "run.json").write_text(json.dumps(run.record, indent=2, default=str) + "\n")
    diff = run.diff
    if diff:
        (target / "code.diff").write_text(diff)
    (target / "README.md").write_text(_readme(run, files, skipped, bool(diff)))
    return target
