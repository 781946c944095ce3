"""Apply the user's ``metric_definitions`` regexes to output lines, in its own process.

Started by :mod:`sagetrack.container.output` as ``python -S -E -u _scan_worker.py``
(standard library only, no site packages, no sagetrack bootstrap). A user's regex can
backtrack for seconds on one line, and Python's regex engine holds the interpreter lock
while it runs, so matching in a thread of the training process would stall training;
here it stalls nothing but this process. Each search is bounded: the regex engine checks
for signals as it runs, so a timer interrupts a search that outlasts the bound, and that
regex is dropped for the rest of the job.

Protocol (one JSON document per line): the first input line is
``{"patterns": [[name, regex], ...], "timeout": seconds}``; every further input line is a
JSON string (one output line). Output lines are ``[name, value, line]`` for a match
(``line``: the number of the input line it was found on, from 0; the values of one line
share it), or ``["!drop", name, reason]`` when a regex is dropped.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from typing import Any


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def _emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> int:
    header = sys.stdin.readline()
    if not header:
        return 0
    config = json.loads(header)
    timeout = float(config.get("timeout", 0.2))
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for name, regex in config.get("patterns", []):
        try:
            patterns.append((str(name), re.compile(regex)))
        except re.error as exc:
            _emit(["!drop", name, f"invalid regex: {exc}"])
    signal.signal(signal.SIGALRM, _alarm)
    for number, raw in enumerate(sys.stdin):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, str):
            continue
        for entry in list(patterns):
            name, pattern = entry
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                try:
                    match = pattern.search(line)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except _Timeout:
                patterns.remove(entry)
                _emit(["!drop", name, f"took longer than {timeout:g} s on one line"])
                continue
            if match is None:
                continue
            try:
                value = float(match.group(1) if pattern.groups else match.group(0))
            except (ValueError, IndexError, TypeError):
                continue
            _emit([name, value, number])
    return 0


if __name__ == "__main__":
    sys.exit(main())
