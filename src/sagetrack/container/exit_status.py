"""The run's final status follows how the training process really ends.

=====================================  ==========================================
the script ...                         recorded status
=====================================  ==========================================
returns from its last line             completed
``sys.exit(0)``, ``raise SystemExit``  completed
``sys.exit(n)``, ``raise SystemExit``  failed: "the script exited with status n"
(n != 0, or a message)
raises an uncaught exception           failed, with the exception and traceback
receives SIGTERM (StopTrainingJob,     stopped (the previous handler still runs)
spot interruption)
calls ``os._exit(n)``                  completed (n = 0) or failed (n != 0)
=====================================  ==========================================

An exit status is only known once the interpreter decides to exit with it: a
``SystemExit`` that the script catches and handles changes nothing. Python hands a
``SystemExit`` that reaches the top level to its exit handling, which drops the exception
before ``atexit`` functions run, with no Python frame left on the stack; sagetrack's
``SystemExit`` (a subclass installed as ``builtins.SystemExit``, named and pickled as the
built-in one, raised by ``sys.exit`` too) notes its code at that moment only. A process
killed outright (SIGKILL, out of memory) records nothing; ``Run.status`` then takes
SageMaker's own status.
"""

from __future__ import annotations

import atexit
import builtins
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from .. import settings
from ..store.schema import COMPLETED, FAILED, STOPPED
from .config import strict_mode
from .recorder import Recorder
from .safety import safe

__all__ = ["ExitState", "finish", "install"]

_UNSET: Any = object()
_BUILTIN_SYSTEM_EXIT = builtins.SystemExit


class ExitState:
    """What the process's end looked like, for the final status."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.exc: BaseException | None = None
        self.exit_code: Any = _UNSET
        self.stopped = False
        self.finished = False
        self.launch: threading.Event | None = None  # set once run.json is handed over
        #: called with a time bound before the final status (output scanners drain)
        self.before_finish: list[Callable[[float], None]] = []

    def wait_for_launch(self, timeout: float) -> float:
        """Let a short script's run.json (from a template) reach the writer before the
        final flush; return the seconds left of ``timeout`` for that flush."""
        if self.launch is None:
            return timeout
        start = time.monotonic()
        self.launch.wait(timeout / 2)
        return max(0.0, timeout - (time.monotonic() - start))

    @property
    def failed_exit(self) -> bool:
        """Whether the process exits with a non-zero status (a code other than 0/None)."""
        return self.exit_code is not _UNSET and self.exit_code not in (None, 0)


def _tracking_system_exit(state: ExitState) -> type[SystemExit]:
    class SystemExit(_BUILTIN_SYSTEM_EXIT):
        """The built-in ``SystemExit``, noting its code when the interpreter exits with it."""

        def __del__(self) -> None:
            # Dropped with no Python frame below this one: Python's top-level exit handling
            # has taken the code and discards the exception. A caught SystemExit is dropped
            # inside the script's frames and changes nothing.
            try:
                if sys._getframe().f_back is None and os.getpid() == state.pid:
                    state.exit_code = self.code
            except Exception:  # never in the way of exiting
                pass

    SystemExit.__module__ = "builtins"
    SystemExit.__qualname__ = "SystemExit"
    return SystemExit


def _exit_timeout() -> float:
    return settings.EXIT_TIMEOUT.get()


@safe
def finish(recorder: Recorder, state: ExitState) -> None:
    """Record the final status (once) and the files under ``SM_MODEL_DIR``."""
    if state.finished:
        return
    state.finished = True
    for drain in state.before_finish:
        drain(min(2.0, _exit_timeout() / 4))
    recorder.record_model_dir()
    if state.stopped:
        recorder.finish(STOPPED)
    elif state.exc is not None:
        recorder.finish(FAILED, state.exc)
    elif state.failed_exit:
        code = state.exit_code
        recorder.finish(FAILED, RuntimeError(f"the script exited with status {code}")
                        if isinstance(code, int) else _BUILTIN_SYSTEM_EXIT(code))
    else:
        recorder.finish(COMPLETED)


def install(recorder: Recorder, state: ExitState) -> None:
    """Hook every way the process can end (see the module docstring)."""
    previous_hook = sys.excepthook

    def excepthook(etype: Any, value: BaseException, tb: Any) -> None:
        state.exc = value
        previous_hook(etype, value, tb)

    sys.excepthook = excepthook

    tracked = _tracking_system_exit(state)
    builtins.SystemExit = tracked  # type: ignore[misc, assignment]

    def exit(code: Any = None) -> NoReturn:
        raise tracked(code)

    sys.exit = exit

    real_os_exit = os._exit

    def os_exit(status: int) -> NoReturn:
        # forked workers (data loaders) inherit this: only the tracked process records
        if os.getpid() == state.pid and not state.finished:
            try:
                state.exit_code = status
                left = state.wait_for_launch(_exit_timeout())
                finish(recorder, state)
                recorder.close(left)
            except Exception:  # os._exit must exit whatever happens
                pass
        real_os_exit(status)

    os._exit = os_exit

    @safe
    def at_exit() -> None:
        if os.getpid() != state.pid:
            return
        left = _exit_timeout()
        if not state.stopped:  # else the SIGTERM handler has recorded the end
            left = state.wait_for_launch(left)
            finish(recorder, state)
        recorder.close(left)

    atexit.register(at_exit)
    _install_sigterm(recorder, state)


def _install_sigterm(recorder: Recorder, state: ExitState) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    chained: list[Any] = [signal.getsignal(signal.SIGTERM)]
    original_signal = signal.signal

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        try:
            state.stopped = True
            left = state.wait_for_launch(_exit_timeout())
            finish(recorder, state)
            recorder.close(left)
        except Exception:
            if strict_mode():
                raise
        previous = chained[0]
        if callable(previous):
            return previous(signum, frame)
        if previous == signal.SIG_IGN:
            return None
        # default action: terminate by the same signal, as without sagetrack
        original_signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return None

    def signal_wrapper(signum: Any, handler: Any) -> Any:
        # keep sagetrack first in line when the script installs its own SIGTERM handler
        if signum == signal.SIGTERM and handler is not on_sigterm:
            old = chained[0]
            chained[0] = handler
            return old
        return original_signal(signum, handler)

    original_signal(signal.SIGTERM, on_sigterm)
    signal.signal = signal_wrapper  # type: ignore[assignment]
