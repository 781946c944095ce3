"""The toolkit process of one host, started as ``python <this file>`` by the job's interpreter.

It starts the ``sagemaker-training`` toolkit exactly as the container's ``train`` command
does, with three changes for local processes:

1. with ``SAGETRACK_LOCAL_SKIP_INSTALL=1`` (``install_requirements=False``) the toolkit's
   ``pip install`` of the code's requirements or package only prints a notice;
2. the entry point runs with ``capture_error=True``, as in the TensorFlow and PyTorch
   images, so the script's error message becomes the job's ``FailureReason``;
3. on SIGTERM (``StopTrainingJob``) the toolkit exits at once while the user process does
   not exist yet; afterwards it keeps relaying that process's output until it exits.

The job's interpreter (the caller's, or a virtualenv made for ``requirements.txt``) need not
be able to import sagetrack, so this file runs by path and imports nothing from sagetrack.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

__all__ = ["SKIP_INSTALL_VAR", "main"]

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
