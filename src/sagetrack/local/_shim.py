"""The toolkit process of one host, started as ``python <this file>`` by the job's interpreter.

It starts the ``sagemaker-training`` toolkit exactly as the container's ``train`` command
does, with four changes for local processes:

1. with ``SAGETRACK_LOCAL_SKIP_INSTALL=1`` (``install_requirements=False``) the toolkit's
   ``pip install`` of the code's requirements or package only prints a notice;
2. the entry point runs with ``capture_error=True``, as in the TensorFlow and PyTorch
   images, so the script's error message becomes the job's ``FailureReason``;
3. on SIGTERM (``StopTrainingJob``) the toolkit exits at once while the user process does
   not exist yet; afterwards it keeps relaying that process's output until it exits;
4. once the code is in place, a text scan of its top-level ``.py`` files prints a notice
   for each line that needs Keras 2 (or ``tf.estimator``) when this interpreter has
   Keras 3 (or TensorFlow >= 2.16): the script would fail there, later and less clearly.

The job's interpreter (the caller's, or a virtualenv made for ``requirements.txt``) need not
be able to import sagetrack, so this file runs by path and imports nothing from sagetrack.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from importlib import metadata
from types import FrameType
from typing import Any

__all__ = ["SKIP_INSTALL_VAR", "main", "version_notes"]

#: "1" skips the installs. The runner sets it under ``settings.LOCAL_SKIP_INSTALL.name``,
#: which this file cannot import; the test suite holds the two names equal.
SKIP_INSTALL_VAR = "SAGETRACK_LOCAL_SKIP_INSTALL"

_user_started: list[int] = []  # pids of the user processes the toolkit started


def main() -> None:
    """Patch the toolkit as described above, then run it."""
    _restore_sys_path()
    if os.environ.get(SKIP_INSTALL_VAR) == "1":
        _skip_installs()
    _capture_entry_point_errors()
    _check_versions_on_install()
    _handle_sigterm()
    from sagemaker_training.cli.train import main as train

    train()


def _restore_sys_path() -> None:
    """Put the working directory first on ``sys.path``, as ``python -c`` does.

    Run by path, Python puts this file's folder there instead, whose module names
    (``client``, ``errors``, ...) must not shadow anything the toolkit imports.
    """
    here = os.path.dirname(os.path.realpath(__file__))
    if sys.path and sys.path[0] and os.path.realpath(sys.path[0]) == here:
        sys.path[0] = ""


def _skip_installs() -> None:
    from sagemaker_training import modules

    def skip_requirements(path: str, capture_error: bool = False) -> None:
        print(
            f"[sagetrack.local] NOT installing {path}/requirements.txt: "
            "install_requirements=False keeps the caller's Python environment unchanged. "
            "Pass LocalProcessSession(install_requirements=True) to install it into an "
            "isolated virtualenv for the job.",
            flush=True,
        )

    def skip_install(path: str, capture_error: bool = False) -> None:
        print(
            f"[sagetrack.local] NOT running 'pip install .' for the package in {path} "
            "(install_requirements=False); the code directory is on PYTHONPATH instead.",
            flush=True,
        )

    modules.install_requirements = skip_requirements
    modules.install = skip_install


def _capture_entry_point_errors() -> None:
    from sagemaker_training import entry_point

    run = entry_point.run

    def run_capturing_errors(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("capture_error", True)
        return run(*args, **kwargs)

    entry_point.run = run_capturing_errors


# (pattern, what it is) of lines that run with Keras 2 only
_KERAS2_ONLY = (
    (r"\.reset_states\(\s*\)", "reset_states(), which Keras 3 metrics name reset_state()"),
    (r"save_format\s*=", "save_format=, which Keras 3 refuses (.keras or .h5 files only)"),
    (r"\.save\(\s*[\w.]*model_dir\s*\)",
     "model.save(<folder>), a SavedModel in Keras 2; Keras 3 needs a .keras file "
     "(model.export(<folder>) for a SavedModel)"),
    (r"\b(?:fit|evaluate|predict)_generator\(", "*_generator(), removed in Keras 3"),
    (r"keras\.layers\.experimental", "keras.layers.experimental, removed in Keras 3"),
    (r"keras\.optimizers\.legacy", "keras.optimizers.legacy, not in Keras 3"),
    (r"keras\.wrappers\.scikit_learn", "keras.wrappers.scikit_learn, removed in Keras 3"),
    (r"\bkeras\.engine\b", "keras.engine, not in Keras 3"),
)
_TF_ESTIMATOR = (r"\btf\.estimator\b|tensorflow[._]estimator", "tf.estimator")
_MAX_FILES = 50
_MAX_BYTES = 512 * 1024
_MAX_NOTES = 8


def _check_versions_on_install() -> None:
    """Scan the code for version-bound lines when the toolkit installs the entry point."""
    from sagemaker_training import entry_point

    install = getattr(entry_point, "install", None)
    if install is None:
        return

    def install_after_check(*args: Any, **kwargs: Any) -> Any:
        try:
            name = kwargs.get("name", args[0] if args else "")
            path = kwargs.get("path", args[1] if len(args) > 1 else None)
            if path is None:
                from sagemaker_training import environment

                path = environment.code_dir
            for line in version_notes(str(path), str(name)):
                print(f"[sagetrack.local] {line}", flush=True)
        except Exception as exc:  # a notice only: never in the way of the job
            print(f"[sagetrack.local] (version check skipped: {exc})", flush=True)
        return install(*args, **kwargs)

    entry_point.install = install_after_check


def version_notes(code_dir: str, entry_point: str) -> list[str]:
    """Notices for lines of the code in ``code_dir`` this interpreter's versions reject."""
    keras = _version("keras")
    tensorflow = _version("tensorflow") or _version("tensorflow-cpu")
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true")
    patterns: list[tuple[str, str]] = []
    if keras and keras[0] >= 3 and not legacy:
        patterns += _KERAS2_ONLY
    estimator = bool(tensorflow and tensorflow[:2] >= (2, 16))
    if estimator:
        patterns.append(_TF_ESTIMATOR)
    if not patterns:
        return []
    compiled = [(re.compile(pattern), what) for pattern, what in patterns]
    hits: list[tuple[str, int, str]] = []
    for path in _top_level_sources(code_dir, entry_point):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                code = line.split("#", 1)[0]
                for pattern, what in compiled:
                    if pattern.search(code):
                        hits.append((os.path.relpath(path, code_dir), number, what))
    if not hits:
        return []
    notes = [f"{name}:{number} uses {what}." for name, number, what in hits[:_MAX_NOTES]]
    if len(hits) > _MAX_NOTES:
        notes.append(f"... and {len(hits) - _MAX_NOTES} more such lines.")
    here = ", ".join(f"{n} {'.'.join(map(str, v))}" for n, v in
                     (("TensorFlow", tensorflow), ("Keras", keras)) if v)
    if any(what != _TF_ESTIMATOR[1] for _name, _number, what in hits):
        fix = ("tf-keras is installed: pass" if _version("tf-keras") or _version("tf_keras")
               else "pip install tf-keras and pass")
        notes.append(
            f"This code is written for Keras 2, as in the TensorFlow <= 2.15 images; here "
            f"{here} runs, where these lines fail. To run it with Keras 2, {fix} "
            "environment={'TF_USE_LEGACY_KERAS': '1'} to the estimator."
        )
    if any(what == _TF_ESTIMATOR[1] for _name, _number, what in hits):
        notes.append(
            f"tf.estimator was removed in TensorFlow 2.16 ({here} here): this code runs "
            "only with TensorFlow <= 2.15."
        )
    return notes


def _version(distribution: str) -> tuple[int, ...] | None:
    try:
        text = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    numbers = re.findall(r"\d+", text)[:3]
    return tuple(int(n) for n in numbers) if numbers else None


def _top_level_sources(code_dir: str, entry_point: str) -> Iterator[str]:
    """The entry point (a ``.py`` file) first, then the other ``.py`` files beside it."""
    try:
        names = sorted(os.listdir(code_dir))
    except OSError:
        return
    first = [entry_point] if entry_point in names else []
    others = [n for n in names if n.endswith(".py") and n not in first
              and n != "sitecustomize.py"]
    for name in (first + others)[:_MAX_FILES]:
        path = os.path.join(code_dir, name)
        if name.endswith(".py") and os.path.isfile(path) and os.path.getsize(path) <= _MAX_BYTES:
            yield path


def _handle_sigterm() -> None:
    """Remember the user processes the toolkit starts; install the SIGTERM handler.

    The supervisor sends SIGTERM to the whole process group, so the user process gets it
    too; SIGKILL follows after the grace period.
    """
    import asyncio

    create = asyncio.create_subprocess_exec

    async def create_and_remember(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await create(*args, **kwargs)
        _user_started.append(proc.pid)
        return proc

    asyncio.create_subprocess_exec = create_and_remember
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if not _user_started:
        os._exit(128 + signum)
    print("[sagetrack.local] SIGTERM: waiting for the training process to exit", flush=True)


if __name__ == "__main__":
    main()
