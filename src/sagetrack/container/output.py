"""Record metrics the user declared in ``metric_definitions`` from the script's output.

SageMaker applies ``metric_definitions`` regexes to the job's log; sagetrack applies the
same regexes to the process's ``sys.stdout``/``sys.stderr`` so custom training loops that
only print their metrics are tracked too. The stream proxy passes every write through
unchanged and scans complete lines (sagetrack's own ``#sagetrack`` lines are skipped).
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import Any, TextIO

from .recorder import METRIC_LINE_PREFIX, Recorder
from .safety import safe

__all__ = ["MetricScanner", "install_scanner"]

_MAX_PENDING = 64 * 1024


class MetricScanner:
    """Match (name, regex) pairs against lines and record the first group as a value."""

    def __init__(self, recorder: Recorder, pairs: list[tuple[str, str]]) -> None:
        self.recorder = recorder
        self.patterns = []
        for name, regex in pairs:
            try:
                self.patterns.append((name, re.compile(regex)))
            except re.error:
                continue  # the estimator validated them; skip anything unusable

    @safe
    def scan(self, line: str) -> None:
        if not line or line.startswith(METRIC_LINE_PREFIX):
            return
        for name, pattern in self.patterns:
            match = pattern.search(line)
            if match:
                try:
                    value = float(match.group(1) if pattern.groups else match.group(0))
                except (ValueError, IndexError):
                    continue
                self.recorder.log_metrics(None, {name: value}, source="output")


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
    if sys.stdout is not None:
        sys.stdout = _ScanningStream(sys.stdout, scanner)  # type: ignore[assignment]
    if sys.stderr is not None:
        sys.stderr = _ScanningStream(sys.stderr, scanner)  # type: ignore[assignment]
    return scanner
