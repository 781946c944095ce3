"""Keep credentials out of every record.

Shared by the client (hyperparameters, git remote, diffs) and the container
(environment variables). Redaction is by name (``*_TOKEN``, ``*_PASSWORD``,
``*_SECRET``, AWS key variables, ...) and by value shape (AWS key ids, session
tokens, private key blocks, ``scheme://user:password@`` URLs, ``key = value``
assignments of secret-looking names inside text such as diffs and ``.env`` files).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redact_argv", "redact_mapping", "redact_text",
           "redact_value", "strip_url_credentials"]

REDACTED = "[REDACTED]"

_SECRET_NAME = re.compile(
    r"(?i)(^|[_\-.])(secret|token|password|passwd|pwd|passphrase|api[_\-]?key|apikey|"
    r"private[_\-]?key|credentials?)($|[_\-.])"
    r"|^aws_(access_key_id|secret_access_key|session_token|security_token)$"
)

_VALUE_PATTERNS = [
    # PEM private key blocks
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
               re.S),
    # AWS access key ids
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    # AWS session tokens (STS) start with these base64 prefixes
    re.compile(r"\b(?:FwoGZXIvYXdz|IQoJb3JpZ2lu)[A-Za-z0-9/+=]{20,}"),
    # GitHub, Slack, generic bearer tokens
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}"),
]

# scheme://user:password@host  -> scheme://user:[REDACTED]@host
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/\s:@]*):"
                           r"(?P<pw>[^/\s@]+)@")
# NAME = value / NAME: value / "NAME": "value" for secret-looking names, inside free text
_ASSIGNMENT = re.compile(
    r"(?P<key>[\"']?[A-Za-z0-9_.\-]*(?:secret|token|password|passwd|pwd|passphrase|api[_\-]?key|"
    r"apikey|private[_\-]?key|credentials?|aws_access_key_id)[A-Za-z0-9_.\-]*[\"']?)"
    r"(?P<sep>\s*[:=]\s*)(?P<q>[\"']?)(?P<val>[^\s\"',;]{4,})",
    re.I,
)


def is_secret_name(name: str) -> bool:
    """Whether a variable or parameter name suggests its value is a credential."""
    return bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """Return ``text`` with every secret-looking value replaced by ``[REDACTED]``."""
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _ASSIGNMENT.sub(
        lambda m: m.group(0) if m["val"] == REDACTED
        else f"{m['key']}{m['sep']}{m['q']}{REDACTED}", text)


def redact_value(value: Any) -> Any:
    """Redact secrets inside strings, lists and dicts (dict keys decide by name)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def redact_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Copy ``mapping`` with secret-named keys redacted and values scanned."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if is_secret_name(str(key)) and value not in (None, "", False):
            out[key] = REDACTED
        else:
            out[key] = redact_value(value)
    return out


def redact_argv(argv: list[str]) -> list[str]:
    """Redact the values of secret-named options (``--db-password x``, ``--token=x``)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-"):
            name, eq, _value = arg.lstrip("-").partition("=")
            if is_secret_name(name.replace("-", "_")):
                if eq:
                    out.append(f"{arg.split('=', 1)[0]}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(redact_text(arg))
    return out


def strip_url_credentials(url: str) -> str:
    """Drop ``user:password@`` (or a bare token user) from a URL such as a git remote."""
    return re.sub(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@", r"\g<scheme>", url)
