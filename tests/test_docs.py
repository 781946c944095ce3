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


def test_every_setting_is_declared_once_and_listed_in_the_readme():
    from sagetrack import settings

    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(SAGETRACK\w*)` \|", table, re.MULTILINE))
    declared = {s.name for s in settings.ALL}
    assert listed == declared
    # settings are read through sagetrack.settings, never by their name elsewhere
    read_directly = []
    for path in (ROOT / "src" / "sagetrack").rglob("*.py"):
        if path.name in ("settings.py", "sitecustomize.py"):
            continue  # sitecustomize must stay import-free until it knows it is active
        text = path.read_text()
        read_directly += [f"{path.name}: {m}" for m in re.findall(
            r"environ(?:\.get\(|\[)\s*[\"']SAGETRACK\w*", text)]
    assert read_directly == []
