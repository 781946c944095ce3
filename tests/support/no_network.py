"""A machine with no AWS set-up and no network, for subprocesses: an empty ``HOME``, no AWS
or SageMaker variables, and a ``sitecustomize`` that refuses every connection or name
look-up outside loopback in every Python process started with that environment, and
writes each attempt (with its stack) to a log the test reads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["GUARD", "attempts", "offline_env"]

GUARD = '''
"""Refuse and record every network access outside loopback (a test's guard)."""
import os
import socket
import traceback

_LOG = os.environ.get("NO_NETWORK_LOG")
_LOOPBACK = ("localhost", "127.", "::1", "0.0.0.0")


def _refuse(what):
    if _LOG:
        with open(_LOG, "a") as fh:
            stack = "".join(traceback.format_stack(limit=25))
            fh.write(f"pid {os.getpid()}: {what}\\n{stack}\\n")
    raise ConnectionRefusedError(111, f"network access refused by the test: {what}")


def _loopback(host):
    host = host.decode() if isinstance(host, bytes) else str(host or "")
    return host == "" or host.startswith(_LOOPBACK)


def _guard(method):
    def guarded(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _refuse(f"connect to {address!r}")
        return method(self, address, *args)
    return guarded


_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        _refuse(f"look up {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
socket.getaddrinfo = getaddrinfo
'''


def offline_env(tmp: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) without AWS, SageMaker, sagetrack, ``SM_*`` and
    ``PYTHON*`` variables; ``HOME`` an empty folder under ``tmp``; this interpreter's
    folder first on ``PATH``; the guard imported by every Python process (its log is
    :func:`attempts`)."""
    guard = tmp / "no-network"
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    (tmp / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(("AWS_", "SAGEMAKER_", "SAGETRACK", "SM_", "PYTHON"))
           and k not in ("TF_CONFIG", "HOME")}
    env.update(HOME=str(tmp / "home"), PYTHONPATH=str(guard),
               NO_NETWORK_LOG=str(guard / "attempts.log"), TF_CPP_MIN_LOG_LEVEL="2",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def attempts(env: dict[str, str]) -> str:
    """What the processes run with ``env`` tried to reach ('' when nothing)."""
    log = Path(env["NO_NETWORK_LOG"])
    return log.read_text() if log.exists() else ""
