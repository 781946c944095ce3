"""Record metrics the user declared in ``metric_definitions`` from the script's output.

SageMaker applies ``metric_definitions`` regexes to the job's log; sagetrack applies the
same regexes to the process's ``sys.stdout``/``sys.stderr`` so custom training loops that
only print their metrics are tracked too. The stream proxy passes every write through
unchanged and hands complete lines (sagetrack's own ``#sagetrack`` lines excepted) to a
queue; the regexes run in a separate process (:mod:`._scan_worker`) with a time bound per
line, so a slow regex never delays the script's output or its training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import warnings
from typing import IO, Any, TextIO

from .._threads import signals_blocked
from ..errors import TrackingWarning
from .recorder import METRIC_LINE_PREFIX, Recorder
from .safety import safe

__all__ = ["MetricScanner", "install_scanner"]

log = logging.getLogger("sagetrack")

_MAX_PENDING = 64 * 1024
#: lines waiting for the scanner; past this, lines are skipped rather than held
_MAX_QUEUED = 10_000
#: longest one regex may search one line before it is dropped
REGEX_TIMEOUT_S = 0.2
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_scan_worker.py")


class MetricScanner:
    """Match (name, regex) pairs against output lines in a worker process and record the
    first group of each match as a value."""

    def __init__(self, recorder: Recorder, pairs: list[tuple[str, str]], *,
                 timeout: float = REGEX_TIMEOUT_S) -> None:
        self.recorder = recorder
        self.pairs = [(str(n), str(r)) for n, r in pairs]
        self.timeout = timeout
        self.dropped: dict[str, str] = {}
        self._lines: queue.Queue[str | None] = queue.Queue(_MAX_QUEUED)
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()

    def start(self) -> None:
        """Start the worker process and the threads that feed it and read its matches."""
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-E", "-u", _WORKER], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
            errors="replace", close_fds=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"patterns": self.pairs,
                                           "timeout": self.timeout}) + "\n")
        with signals_blocked():
            for target, args in ((self._feed, (self._proc.stdin,)),
                                 (self._read, (self._proc.stdout,))):
                thread = threading.Thread(target=target, args=args, daemon=True,
                                          name="sagetrack-metric-scan")
                thread.start()
                self._threads.append(thread)

    @safe
    def scan(self, line: str) -> None:
        """Queue one output line (never blocks; a full queue skips the line)."""
        if not line or line.startswith(METRIC_LINE_PREFIX) or os.getpid() != self._pid:
            return
        with contextlib.suppress(queue.Full):
            self._lines.put_nowait(line)

    def close(self, timeout: float) -> None:
        """Let the worker finish the queued lines, within ``timeout`` seconds."""
        if self._proc is None:
            return
        with contextlib.suppress(queue.Full):
            self._lines.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout / 2)
        if self._proc.poll() is None:
            self._proc.kill()

    def _feed(self, stream: IO[str]) -> None:
        try:
            while True:
                line = self._lines.get()
                if line is None:
                    break
                stream.write(json.dumps(line) + "\n")
                stream.flush()
        except (OSError, ValueError):  # the worker is gone: nothing more to scan
            pass
        finally:
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            with contextlib.suppress(Exception):
                self._match(json.loads(raw))

    def _match(self, message: Any) -> None:
        if message and message[0] == "!drop":
            name, reason = str(message[1]), str(message[2])
            self.dropped[name] = reason
            msg = (f"sagetrack: the regex of metric {name!r} in metric_definitions is no "
                   f"longer applied to the output: it {reason}. Training is not affected.")
            log.warning(msg)
            warnings.warn(msg, TrackingWarning, stacklevel=2)
            return
        line = message[2] if len(message) > 2 and isinstance(message[2], int) else None
        self.recorder.log_metrics(None, {str(message[0]): float(message[1])}, source="output",
                                  line=line)


class _ScanningStream:
    """A text stream proxy that scans whole lines after writing them through."""

    def __init__(self, stream: TextIO, scanner: MetricScanner) -> None:
        self._stream = stream
        self._scanner = scanner
        self._pending = ""

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        with contextlib.suppress(Exception):
            self._feed(text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _feed(self, text: str) -> None:
        if "\n" not in text and "\r" not in text:
            self._pending = (self._pending + text)[-_MAX_PENDING:]
            return
        data = self._pending + text
        parts = re.split(r"[\r\n]", data)
        self._pending = parts.pop()[-_MAX_PENDING:]
        for part in parts:
            if part:
                self._scanner.scan(part)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install_scanner(recorder: Recorder, pairs: list[tuple[str, str]]) -> MetricScanner | None:
    """Wrap sys.stdout and sys.stderr so declared metrics are recorded from output."""
    if not pairs:
        return None
    scanner = MetricScanner(recorder, pairs)
    scanner.start()
    if sys.stdout is not None:
        sys.stdout = _ScanningStream(sys.stdout, scanner)  # type: ignore[assignment]
    if sys.stderr is not None:
        sys.stderr = _ScanningStream(sys.stderr, scanner)  # type: ignore[assignment]
    return scanner
