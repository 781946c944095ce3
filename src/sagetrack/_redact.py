"""Keep credentials out of every record sagetrack writes.

One redactor guards every write: the store backends (local folder and S3) pass each
object through :func:`redact_bytes`, so the container's local mirror and checkpoint copy,
the client's unsent copy and the run index are covered as well. Capture code also
redacts where it knows more (:func:`redact_mapping` for hyperparameters and environments,
:func:`redact_argv` for command lines, :func:`redact_text` for diffs and messages).

What is treated as a secret:

* the value under a secret-bearing *name*, whatever its case or separators
  (``db_password``, ``dbPassword``, ``DB-PASSWORD``, ``db.password``, ``SM_HP_DBPASSWORD``,
  ``apiKey``, ``githubToken``, ``AWS_SECRET_ACCESS_KEY``, ``authorization``, ``cookie``...),
  but not ``max_tokens``, ``tokenizer``, ``token_length``, ``pad_token``, ``author``,
  ``passes`` (see :func:`is_secret_name`);
* in text, the value assigned to such a name: ``x = "..."``, ``x: str = "..."``,
  ``os.environ["X"] = "..."``, ``f(x="...")``, ``"x": "..."``, ``export X=...``,
  ``X=... cmd``, ``key: value``, ``key = value``, ``--x VALUE``, ``--x=VALUE``,
  ``['--x', 'VALUE']``, ``.netrc`` ``password p``, ``the password is X``;
* well-known value shapes anywhere: AWS access key ids and STS session tokens, GitHub,
  GitLab and Slack tokens, JWTs, PEM private key blocks, ``user:password@`` in URLs,
  ``Bearer`` credentials.

Every function runs in time linear in its input: each pattern has bounded quantifiers or a
single quantifier over a class that cannot overlap what follows it, and the text scan
never goes back over text it has passed.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redact_argv", "redact_bytes", "redact_mapping",
           "redact_text", "redact_value", "strip_url_credentials"]

#: What a secret is replaced with (``sagetrack.reproduce`` refuses runs that contain it).
REDACTED = "[REDACTED]"

# -- names ---------------------------------------------------------------------------------
_MAX_NAME = 128
# words of an identifier: "SM_HP_dbPassword" -> SM, HP, db, Password; "APIKey" -> API, Key
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# secret anywhere in a name (as a word or at the end of a run-together word)
_STRONG = ("password", "passwd", "passphrase", "passcode", "secret", "secrets", "credential",
           "credentials", "creds", "pwd")
# ... unless the name is about the secret rather than holding it
_ABOUT = frozenset({
    "length", "len", "lengths", "count", "counts", "size", "sizes", "limit", "num", "number",
    "type", "types", "file", "files", "path", "paths", "dir", "name", "names", "index", "idx",
    "id", "ids", "arn", "env", "var", "enabled", "required", "policy", "prompt", "field", "ttl",
    "timeout", "version"})
# heads that hold a credential
_HEADS = ("token", "apikey", "privatekey", "secretkey", "accesskey", "signingkey", "sshkey",
          "encryptionkey", "masterkey", "clientkey", "accountkey", "auth", "authorization",
          "cookie", "cookies", "sessionid", "accesskeyid", "jwt", "bearer")
# "<qualifier> token" is a vocabulary token, not a credential
_VOCAB = frozenset({
    "pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "start", "end", "stop", "begin",
    "new", "added", "max", "min", "num", "n", "total", "vocab", "input", "output", "prompt",
    "completion", "context", "image", "text", "first", "last", "next", "per", "extra",
    "reserved", "decoder", "encoder", "sentinel", "break", "split"})
_TOKEN_OWNERS = frozenset({"access", "refresh", "auth", "api", "bearer", "session", "id"})
_KEY_OWNERS = frozenset({"api", "private", "secret", "access", "signing", "encryption",
                         "master", "client", "ssh", "auth", "app", "license", "account",
                         "service", "subscription", "webhook", "hmac"})
_PASS_OWNERS = frozenset({"db", "database", "user", "smtp", "mysql", "postgres", "pg", "redis",
                          "admin", "root", "login", "ftp", "mail", "email", "ldap", "proxy",
                          "http", "basic", "rabbitmq", "mongo"})


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name[-_MAX_NAME:]) if not w.isdigit()]


def _strong(word: str) -> bool:
    return word.endswith(_STRONG) or any(
        word.startswith(s) and word[len(s):] in ("key", "accesskey", "token", "value")
        for s in _STRONG[:5])


def _secret_head(words: list[str]) -> bool:
    head = words[-1]
    prev = words[-2] if len(words) > 1 else ""
    if head == "token":
        return prev not in _VOCAB
    if head == "tokens":
        return prev in _TOKEN_OWNERS
    if head == "key":
        return any(w in _KEY_OWNERS for w in words[:-1])
    if head == "id":
        return prev == "session" or words[-3:-1] == ["access", "key"]
    if head == "pass":
        return prev in _PASS_OWNERS
    if head.endswith("tokens"):
        return head[:-6] in _TOKEN_OWNERS
    if head.endswith("token"):
        return head[:-5] not in _VOCAB
    if head.endswith("pass"):
        return head[:-4] in _PASS_OWNERS
    return head.endswith(_HEADS)


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a key, variable or option name suggests its value is a credential.

    Case and separators do not matter (``dbPassword``, ``DB_PASSWORD``, ``db-password``,
    ``db.password``, ``SM_HP_DBPASSWORD``); names that only mention a secret word in
    passing (``max_tokens``, ``token_length``, ``password_file``) are not secret names.
    """
    words = _words(name)
    if not words:
        return False
    if _secret_head(words):
        return True
    return words[-1] not in _ABOUT and any(_strong(w) for w in words)


# -- value shapes --------------------------------------------------------------------------
# Each pattern starts with a literal (a fast scan), then a fixed-width look-behind makes sure
# the match does not start inside a run of its own body characters, so no run is scanned twice.
_SHAPES = [re.compile(p) for p in (
    r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|BIA|CCA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}"
    r"(?![A-Za-z0-9])",  # AWS access key ids
    r"(?:FwoGZXIvYXdz|IQoJb3JpZ2lu)(?<![A-Za-z0-9/+=].{12})[A-Za-z0-9/+=]{20,}",  # STS tokens
    r"gh[pousr]_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{20,}",  # GitHub
    r"github_pat_(?<![A-Za-z0-9_].{11})[A-Za-z0-9_]{20,}",
    r"glpat-(?<![A-Za-z0-9_\-].{6})[A-Za-z0-9_\-]{20,}",  # GitLab
    r"xox[abposr]-(?<![A-Za-z0-9_\-].{5})[A-Za-z0-9\-]{10,}",  # Slack
    r"eyJ(?<![A-Za-z0-9_\-]...)[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",  # JWT
)]
_BEARER = re.compile(r"bearer(?<![a-z0-9_].{6})[ \t]{1,8}[a-z0-9._~+/\-]{16,}=*", re.I)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,12}-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,12}-----")
# scheme://user:password@host (the password runs to the last "@" before the path)
_URL_PASSWORD = re.compile(r"://([^/\s?#\"'<>\\:@]*):([^/\s?#\"'<>\\]+)@")
# scheme://<token>@host: a user long enough to be a token
_URL_TOKEN = re.compile(r"://([^/\s?#\"'<>\\:@]{16,})@")

# -- assignments ---------------------------------------------------------------------------
# Scanners find how a value is given to a name and capture the value's span in a look-ahead
# (never consumed, so a name inside a value is found too). They run on the lower-cased text
# (case-insensitive alternations are many times slower), each starts with a literal (a fast
# scan), and every quantifier is bounded or runs over a class that what follows cannot match.
_KW = r"(?:pass|pwd|secret|token|cred|auth|cookie|session|key)"
_N = r"[a-z0-9_.\-]"  # a name character
_Q = r"\\?[\"'`]"  # a quote, maybe escaped (JSON inside a string)
# the rest of a name after its keyword; "(?=(?P<x>A))(?P=x)" takes A whole and never gives
# characters back (the atomic group Python 3.10 lacks), so a failed match costs <= 64 steps
_TAIL = rf"(?=(?P<tail>{_N}{{0,64}}))(?P=tail)(?!{_N})"
_VALUE_MAX = 128  # a longer value is followed up once, after the match
_VALUE = (
    r"(?=\"(?P<dq>(?:[^\"\\\n]|\\.){0,MAX})"
    r"|'(?P<sq>(?:[^'\\\n]|\\.){0,MAX})"
    r"|`(?P<bq>(?:[^`\\\n]|\\.){0,MAX})"
    r"|\\\"(?P<edq>(?:[^\\\n]|\\[^\"\n]){0,MAX})"
    r"|\\'(?P<esq>(?:[^\\\n]|\\[^'\n]){0,MAX})"
    r"|(?P<ref>[a-z_][a-z0-9_.]{0,100}[(\[]|\$[({])"  # os.environ[...], get(), ${X}: no value
    r"|(?:(?:bearer|basic|token|digest|negotiate)[ \t]{1,8})?"  # Authorization: Bearer v
    r"(?=(?P<line>[^\n]{1,MAX}))"  # KEY = v v v: to the line end when KEY starts it
    r"(?P<bare>[^\s\"'`,;&|)\]}<>]{1,MAX}))").replace("MAX", str(_VALUE_MAX))
# an option and its value: --api_token V, '--api_token', 'V' (--api-token=V is an assignment)
_FLAG = re.compile(
    rf"-(?<!{_N}-)-?(?P<name>{_N}{{0,40}}?{_KW}{_TAIL})(?P<close>{_Q}?)"
    rf"(?:[ \t]{{1,16}}(?=[^\s\-=:])|[ \t]{{0,8}}(?P<comma>,)[ \t]{{0,8}}(?={_Q}))" + _VALUE)
# .netrc: "password p" after "login u" / "machine h" / "account a", or first on its line
_NETRC_PASSWORD = r"passw(?:or)?d[ \t]{1,16}(?=[^\s=:])" + _VALUE
_NETRC = re.compile(
    r"(?:login(?<![a-z0-9_]login)|machine(?<![a-z0-9_]machine)|account(?<![a-z0-9_]account))"
    r"[ \t]{1,16}[^\s]{1,256}[ \t]{1,16}" + _NETRC_PASSWORD)
_NETRC_LINE = re.compile(r"\n[+\- ]?[ \t]{0,16}" + _NETRC_PASSWORD)  # (also in a diff)
_NETRC_FIRST = re.compile(r"[+\- ]?[ \t]{0,16}" + _NETRC_PASSWORD)
# any name holding a keyword, then an assignment or a quoted value
_ASSIGN = re.compile(
    rf"{_KW}{_TAIL}(?P<close>{_Q}?\]?)"
    # a type annotation before "=": password: str = "...", token: Optional[str] = ...
    r"(?:[ \t]{0,8}:[ \t]{0,8}(?=(?P<ann>[a-z_][a-z0-9_.]{0,60}))(?P=ann)"
    r"(?:\[[^\]\n]{0,80}\])?(?=[ \t]{0,8}=[^=]))?"
    r"(?:[ \t]{0,16}(?P<op>:=|=>|==|=|:)[ \t]{0,16}"  # x = v, x: v, --x=v
    r"|[ \t]{1,16}(?P<verb>is|was)(?=[ \t:])[ \t]{0,8}:?[ \t]{0,16}"  # the password is v
    rf"|[ \t]{{0,8}}(?P<comma>,)[ \t]{{0,8}}(?={_Q})"  # ("TOKEN", "v")
    rf"|[ \t]{{1,16}}(?={_Q}))" + _VALUE)  # password "v"
_QUOTED_MORE = {"dq": re.compile(r"(?:[^\"\\\n]|\\.)*"), "sq": re.compile(r"(?:[^'\\\n]|\\.)*"),
                "bq": re.compile(r"(?:[^`\\\n]|\\.)*"),
                "edq": re.compile(r"(?:[^\\\n]|\\[^\"\n])*"),
                "esq": re.compile(r"(?:[^\\\n]|\\[^'\n])*"),
                "line": re.compile(r"[^\n]*"), "bare": re.compile(r"[^\s\"'`,;&|)\]}<>]*")}
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_NOT_VALUES = frozenset({
    "none", "null", "nil", "true", "false", "undefined", "str", "string", "bytes", "int",
    "bool", "optional", "any", "secretstr", "required", "missing", "empty", "unset", "set",
    "invalid", "incorrect", "wrong", "expired", "not", "self", "cls", "[redacted]"})

# what every secret above starts with, lower-cased: text without any is left as it is
_TRIGGERS = ("pass", "pwd", "secret", "token", "cred", "auth", "cookie", "session", "key",
             "://", "-----begin", "akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa",
             "abia", "acca", "fwogzxivyxdz", "iqojb3jpz2lu", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
             "github_pat_", "glpat-", "xox", "eyj", "bearer")
_TRIGGER = re.compile("|".join(re.escape(t) for t in _TRIGGERS))
_NUMBERS = frozenset({int, float, bool, type(None)})
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    """``text`` lower-cased, character for character (same length, same positions)."""
    low = text.lower()
    return low if len(low) == len(text) else text.translate(_ASCII_LOWER)


def _triggered(low: str) -> bool:
    # the same test two ways: one regular expression is quicker on short text (names,
    # values of a record), a substring search per trigger on long text
    if len(low) < 128:
        return _TRIGGER.search(low) is not None
    return any(t in low for t in _TRIGGERS)


def redact_text(text: str) -> str:
    """Return ``text`` with every secret-looking value replaced by ``[REDACTED]``."""
    if not text:
        return text
    low = _lower(text)
    if not _triggered(low):
        return text
    redacted = _redact_pem(text)
    for pattern in _SHAPES:
        redacted = pattern.sub(REDACTED, redacted)
    redacted = _BEARER.sub(lambda m: m[0][:6] + " " + REDACTED, redacted)
    if "://" in redacted:
        redacted = _URL_PASSWORD.sub(lambda m: f"://{m[1]}:{REDACTED}@", redacted)
        redacted = _URL_TOKEN.sub(f"://{REDACTED}@", redacted)
    if redacted != text:
        text, low = redacted, _lower(redacted)
    return _redact_assignments(text, low)


def _redact_pem(text: str) -> str:
    if "-----BEGIN" not in text:
        return text
    out: list[str] = []
    pos = 0
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        out += [text[pos:begin.start()], REDACTED]
        end = _PEM_END.search(text, begin.end())
        if end is None:  # a key cut off: everything after its header goes
            return "".join(out)
        pos = end.end()
    return "".join(out) + text[pos:] if out else text


def _redact_assignments(text: str, low: str) -> str:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (m := _FLAG.search(low, pos)) is not None:
        pos = m.end()
        if is_secret_name(m["name"].strip(".-")) and (not m["comma"] or m["close"]):
            pos = max(pos, _add_value(spans, text, low, m))
    first = _NETRC_FIRST.match(low)
    for m in itertools.chain([first] if first else [], _NETRC.finditer(low),
                             _NETRC_LINE.finditer(low)):
        _add_value(spans, text, low, m)
    pos = 0
    while (m := _ASSIGN.search(low, pos)) is not None:
        pos = m.end()
        start = _secret_name_start(text, m)
        if start >= 0:
            line = m.lastgroup == "bare" and m["op"] in ("=", ":") and _line_leading(text, start)
            pos = max(pos, _add_value(spans, text, low, m, line=line))
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0
    start, end = spans[0]
    for s, e in spans[1:]:
        if s <= end:  # overlapping or touching values: one redaction
            end = max(end, e)
            continue
        out += [text[done:start], REDACTED]
        done, (start, end) = end, (s, e)
    out += [text[done:start], REDACTED, text[end:]]
    return "".join(out)


def _add_value(spans: list[tuple[int, int]], text: str, low: str, m: re.Match[str], *,
               line: bool = False) -> int:
    """Add the span of the value ``m`` found (unless a placeholder); return its end or 0."""
    kind = m.lastgroup
    if kind is None or kind == "ref":
        return 0
    if kind == "bare" and line:
        kind = "line"
    start, end = m.span(kind)
    if end <= start:
        return 0
    if end - start == _VALUE_MAX:  # a long value: take all of it
        more = _QUOTED_MORE[kind].match(text, end)
        end = more.end() if more else end
    if kind == "line":  # without a trailing comment and blanks
        comment = text.find(" #", start, end)
        end = start + len(text[start:end if comment < 0 else comment].rstrip())
    if kind in ("bare", "line") and low[start:end].rstrip(".:") in _NOT_VALUES:
        return 0
    if end - start <= len(REDACTED) and text.startswith(REDACTED, start):
        return 0
    spans.append((start, end))
    return end


def _name_start(text: str, s: int) -> int:
    """Where the name holding the keyword at ``s`` starts (at most _MAX_NAME + 1 back)."""
    low = max(0, s - _MAX_NAME - 1)
    while s > low and text[s - 1] in _NAME_CHARS:
        s -= 1
    return s


def _line_leading(text: str, start: int) -> bool:
    """Whether the name at ``start`` begins its line (``KEY = value``, ``export KEY=v``)."""
    line = text.rfind("\n", max(0, start - 64), start) + 1
    if line == 0 and start > 64:
        return False
    return text[line:start].strip(" \t+-") in ("", "export", "set", "declare")


def _secret_name_start(text: str, m: re.Match[str]) -> int:
    """Where the candidate's name starts if it is a secret's (and a ``,`` pairs a name with
    a value), else -1."""
    start = _name_start(text, m.start())
    if m.end("tail") - start > _MAX_NAME:
        return -1
    name = text[start:m.end("tail")].strip(".-")
    if not (is_secret_name(name) or _two_word_name(text, start, name)):
        return -1
    if m["comma"] and text[start] != "-" and not _comma_pair(text, start, m["close"]):
        return -1
    return start


def _two_word_name(text: str, start: int, name: str) -> bool:
    """A secret named in two words: "the API key is ...", "access token: ..."."""
    if start < 2 or text[start - 1] != " " or text[start - 2] not in _NAME_CHARS:
        return False
    before = start - 2
    while before > max(0, start - 34) and text[before - 1] in _NAME_CHARS:
        before -= 1
    return is_secret_name(f"{text[before:start - 1]}_{name}")


def _comma_pair(text: str, start: int, close: str) -> bool:
    """``("TOKEN", "v")`` or ``['token', 'v']``, not ``{"k": "token", "v": ...}``."""
    quote = close.lstrip("\\")[:1]
    if not quote or quote == "]" or start == 0 or text[start - 1] != quote:
        return False
    before = text[max(0, start - 10):start - 1].rstrip().rstrip("\\")
    return before.endswith(("(", "[", ","))


# -- structures ----------------------------------------------------------------------------
def _empty(value: Any) -> bool:
    return value is None or isinstance(value, bool) or (
        isinstance(value, str) and value in ("", REDACTED)) or (
        isinstance(value, (list, tuple, dict)) and not value)


def _flag_name(arg: Any) -> str | None:
    """``token`` for a secret option ``--token`` given without ``=``, else None."""
    if isinstance(arg, str) and arg.startswith("-") and "=" not in arg:
        name = arg.lstrip("-")
        if name and is_secret_name(name):
            return name
    return None


def _secret_pair(mapping: Mapping[Any, Any]) -> str | None:
    """The value key of a name/value pair whose name is a secret's, else None."""
    for name_key, value_key in (("Name", "Value"), ("Key", "Value"), ("name", "value"),
                                ("key", "value")):
        name = mapping.get(name_key)
        if isinstance(name, str) and value_key in mapping and is_secret_name(name):
            return value_key
    return None


def _redact(value: Any) -> Any:
    """``value`` with secrets redacted; the same object when nothing changed."""
    if isinstance(value, str):
        return _redact_string(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        changed = False
        pair = _secret_pair(value)  # {"Name": "DB_PASSWORD", "Value": "..."}
        for key, item in value.items():
            new_key = _redact_string(key) if isinstance(key, str) else key
            if isinstance(key, str) and (is_secret_name(key) or key == pair) and not _empty(item):
                new = REDACTED
            else:
                new = _redact(item)
            changed = changed or new is not item or new_key is not key
            out[new_key] = new
        return out if changed or not isinstance(value, dict) else value
    if isinstance(value, (list, tuple)):
        if set(map(type, value)) <= _NUMBERS:  # a series: no text, no option names
            return value if isinstance(value, list) else list(value)
        items: list[Any] = []
        hide = False
        for item in value:
            if hide and isinstance(item, (str, int, float)) and not _empty(item):
                items.append(REDACTED)
            else:
                items.append(_redact(item))
            hide = _flag_name(item) is not None
        changed = any(a is not b for a, b in zip(items, value, strict=True))
        return items if changed or not isinstance(value, list) else value
    return value


def _redact_string(text: str) -> str:
    if not text:
        return text
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]") and _triggered(_lower(text)):
        redacted = _redact_json_text(text)  # JSON inside a string (SM_HPS, SM_USER_ARGS)
        if redacted is not None:
            return redacted
    new = redact_text(text)
    return text if new == text else new


def _redact_json_text(text: str) -> str | None:
    """JSON ``text`` redacted and written back in its own style; None if not JSON."""
    try:
        obj = json.loads(text)
        new = _redact(obj)
    except (ValueError, RecursionError):
        return None
    if new is obj:
        return text
    stripped = text.strip()
    indent: int | None = None
    if "\n" in stripped:
        second = stripped.split("\n", 2)[1]
        indent = len(second) - len(second.lstrip(" ")) or 2
    seps = (",", ":") if indent is None and _compact(stripped) else None
    dumped = json.dumps(new, indent=indent, separators=seps, ensure_ascii=text.isascii())
    return text[:len(text) - len(text.lstrip())] + dumped + text[len(text.rstrip()):]


def _compact(text: str) -> bool:
    """Whether JSON ``text`` was written without spaces after ``,`` and ``:``."""
    i = text.find('":')
    return i >= 0 and text[i + 2:i + 3] != " "


def redact_value(value: Any) -> Any:
    """Redact secrets inside strings, lists and dicts (dict keys decide by name).

    Strings are scanned as text (and as JSON when they hold JSON); a string following a
    secret option such as ``--api_token`` in a list is redacted whole."""
    new = _redact(value)
    if isinstance(new, tuple):
        return list(new)
    return new


def redact_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Copy ``mapping`` with secret-named keys redacted and values scanned."""
    return dict(_redact(dict(mapping)))


def redact_argv(argv: list[str]) -> list[str]:
    """Redact the values of secret-named options (``--db-password x``, ``--token=x``)."""
    return list(_redact(list(argv)))


def strip_url_credentials(url: str) -> str:
    """Drop ``user:password@`` (or a bare token user) from a URL such as a git remote."""
    return re.sub(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^/@\s]{1,2048}@",
                  r"\g<scheme>", url)


# -- bytes at the write boundary -----------------------------------------------------------
def redact_bytes(key: str, data: bytes) -> bytes:
    """``data`` about to be written under ``key``, with every secret redacted.

    ``.json`` is redacted structurally (by key name and value, written back in the same
    style), ``.jsonl`` line by line, ``.gz`` inside the compression; anything else, and any
    record that does not parse, as text. Returns ``data`` itself when nothing changed.
    """
    name = key.rsplit("/", 1)[-1].lower()
    if name.endswith(".gz"):
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return _text_bytes(data)
        redacted = redact_bytes(key[:-3], inner)
        return data if redacted is inner else gzip.compress(redacted, compresslevel=6)
    text = data.decode("utf-8", "surrogateescape")
    low = _lower(text)
    if not _triggered(low):
        return data
    if name.endswith(".json"):
        new = _redact_json_text(text)
        if new is None:
            new = redact_text(text)
    elif name.endswith(".jsonl"):
        new = _redact_jsonl(text, low)
    else:
        new = redact_text(text)
    return data if new == text else new.encode("utf-8", "surrogateescape")


def _text_bytes(data: bytes) -> bytes:
    text = data.decode("utf-8", "surrogateescape")
    new = redact_text(text)
    return data if new == text else new.encode("utf-8", "surrogateescape")


# A series is rewritten whole on every flush: its rows are redacted once, not every time.
_LINE_CACHE: dict[str, str] = {}


def _redact_jsonl(text: str, low: str) -> str:
    """Redact only the lines that may hold a secret; the others are kept byte for byte."""
    out: list[str] = []
    last = pos = 0
    while (hit := _TRIGGER.search(low, pos)) is not None:
        line = text.rfind("\n", pos, hit.start()) + 1 or pos
        end = text.find("\n", hit.end())
        end = len(text) if end < 0 else end
        row = text[line:end]
        new = _LINE_CACHE.get(row)
        if new is None:
            new = _redact_json_text(row)
            if new is None:
                new = redact_text(row)
            if len(row) <= 2048:
                if len(_LINE_CACHE) >= 2048:
                    _LINE_CACHE.clear()
                _LINE_CACHE[row] = new
        if new != row:
            out += [text[last:line], new]
            last = end
        pos = end
    return "".join(out) + text[last:] if out else text
