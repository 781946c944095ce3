"""The guarantees in docs/reliability.md name tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_named_in_the_reliability_doc_exists():
    doc = (ROOT / "docs" / "reliability.md").read_text()
    named: list[tuple[str, str | None]] = []
    for line in doc.splitlines():
        current: str | None = None
        for token in re.findall(r"`([^`]+)`", line):
            match = re.fullmatch(r"(tests/[\w/]+\.py)(?:::(\w+))?", token)
            if match:
                current = match.group(1)
                named.append((current, match.group(2)))
            elif re.fullmatch(r"::\w+", token) and current is not None:
                named.append((current, token[2:]))
    assert len(named) > 20, "the doc should name the tests that prove each guarantee"
    missing = []
    for path, name in named:
        source = ROOT / path
        if not source.is_file() or (name and not re.search(
                rf"^def {name}\(", source.read_text(), re.MULTILINE)):
            missing.append(f"{path}::{name}" if name else path)
    assert missing == []
