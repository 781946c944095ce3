"""The one tolerant parser of records: bytes in, checked records of :mod:`.schema` out.

Every record file a reader opens goes through :func:`parse_document` (JSON files) or
:func:`parse_rows` (JSON Lines files). Each value is checked against the file's shape in
:mod:`.schema`: a key whose value has the wrong type (a string where an object belongs,
an integer of 400 digits, a metric that is not a number, nesting deeper than
:data:`MAX_DEPTH`) is dropped and reported as a problem, so the record keeps everything
that is valid and the empty value stands in for the rest. A row that lacks a valid key
its shape requires (an epoch row's ``epoch``) is skipped. Keys the schema does not know
are kept as they are (newer writers may add keys). Nothing here raises on bad data.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from . import schema

__all__ = ["MAX_DEPTH", "MAX_PROBLEMS", "check", "finite", "parse_document", "parse_rows"]

#: values nested deeper than this are dropped (readers recurse into hyperparameters)
MAX_DEPTH = 64
#: problems reported per file; the rest are counted in one more line
MAX_PROBLEMS = 10
#: integers beyond this are not counts, sizes or epochs
MAX_INT = 2 ** 63

T = TypeVar("T")


class _Issues:
    """Problems of one file, capped at :data:`MAX_PROBLEMS` lines."""

    def __init__(self, where: str, out: list[str], sep: str = ": ") -> None:
        self.where = where
        self.out = out
        self.sep = sep
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if self.count <= MAX_PROBLEMS:
            self.out.append(f"{self.where}{self.sep}{message}")

    def close(self) -> None:
        if self.count > MAX_PROBLEMS:
            self.out.append(f"{self.where}: {self.count - MAX_PROBLEMS} more problems")


@cache
def _hints(shape: type) -> dict[str, Any]:
    return get_type_hints(shape, vars(schema))


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        text = " or ".join(_describe(a) for a in args)
        return text + (" or null" if len(args) < len(get_args(tp)) else "")
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict or typing.is_typeddict(tp):
        return "an object"
    for kind, name in ((str, "a string"), (int, "an integer"), (float, "a number"),
                       (bool, "true or false")):
        if tp is kind:
            return name
    return "a value"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        digits = len(str(abs(value)))
        return f"a {digits}-digit integer" if digits > 18 else f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return False


#: the kinds whose values of these exact types all pass (int: not all, it has bounds)
_PLAIN: dict[Any, frozenset[type]] = {float: frozenset({float}), str: frozenset({str}),
                                      bool: frozenset({bool})}


def _is_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    try:  # an int must convert (a 400-digit integer does not)
        float(value)
    except OverflowError:
        return False
    return True


def _kind_test(tp: Any) -> Callable[[Any], bool]:
    """Whether a value is the right kind for ``tp`` (contents are checked separately)."""
    origin = get_origin(tp)
    if tp is Any:
        return lambda value: True
    if origin is Literal:
        allowed = frozenset(get_args(tp))
        return lambda value: isinstance(value, str) and value in allowed
    if origin is list:
        return lambda value: isinstance(value, list)
    if origin is dict or typing.is_typeddict(tp):
        return lambda value: isinstance(value, dict)
    if tp is bool:
        return lambda value: isinstance(value, bool)
    if tp is str:
        return lambda value: isinstance(value, str)
    if tp is int:
        return lambda value: (isinstance(value, int) and not isinstance(value, bool)
                              and -MAX_INT < value < MAX_INT)
    if tp is float:
        return _is_float
    raise TypeError(f"no check for {tp!r} in the record schema")


class _Checker:
    """A compiled check of one type: ``test`` for the kind, ``check`` for the contents."""

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self.describe = _describe(tp)
        self.test = _kind_test(tp) if get_origin(tp) not in (Union, types.UnionType) else None
        self.deep = True  # contents to check (set below)
        #: a test that accepts a value as it is, nothing inside to check (set below)
        self.fast: Callable[[Any], bool] | None = None
        #: types whose every value is accepted as it is (a list or dict of them is checked
        #: at C speed: one set of their types)
        self.plain: frozenset[type] = frozenset()
        self.check: Callable[[Any, str, _Issues], tuple[bool, Any]] = self._scalar

    def bad(self, value: Any, path: str, issues: _Issues, what: str = "ignored") -> None:
        issues.add(f"{path}: expected {self.describe}, got {_kind(value)}; {what}")

    def _scalar(self, value: Any, path: str, issues: _Issues) -> tuple[bool, Any]:
        assert self.test is not None
        if self.test(value):
            return True, value
        self.bad(value, path, issues)
        return False, None


@cache
def _compile(tp: Any) -> _Checker:
    """The checker of ``tp`` (built once per type)."""
    c = _Checker(tp)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        nullable = type(None) in get_args(tp)
        arms = [_compile(a) for a in get_args(tp) if a is not type(None)]

        def check_union(value: Any, path: str, issues: _Issues) -> tuple[bool, Any]:
            if value is None and nullable:
                return True, None
            for arm in arms:
                assert arm.test is not None
                if arm.test(value):
                    return arm.check(value, path, issues)
            c.bad(value, path, issues)
            return False, None

        c.check = check_union
        if nullable and len(arms) == 1 and arms[0].fast is not None:
            arm = arms[0].fast  # X | None, the common union
            c.fast = lambda value: value is None or arm(value)
            c.plain = arms[0].plain | {type(None)} if arms[0].plain else frozenset()
    elif tp is Any:
        def check_any(value: Any, path: str, issues: _Issues) -> tuple[bool, Any]:
            if isinstance(value, (list, dict)) and _depth_exceeds(value, MAX_DEPTH):
                issues.add(f"{path}: nested more than {MAX_DEPTH} levels deep; ignored")
                return False, None
            return True, value

        c.check = check_any
    elif origin is list:
        c.check = _list_check(c, _compile(get_args(tp)[0]))
    elif origin is dict:
        c.check = _dict_check(c, _compile(get_args(tp)[1]))
    elif typing.is_typeddict(tp):
        c.check = _object_check(c, tp)
    else:
        c.deep = False
        c.fast = c.test
        c.plain = _PLAIN.get(tp, frozenset())
    return c


def _list_check(c: _Checker, item: _Checker) -> Callable[[Any, str, _Issues],
                                                         tuple[bool, Any]]:
    def check_list(value: Any, path: str, issues: _Issues) -> tuple[bool, Any]:
        if not isinstance(value, list):
            c.bad(value, path, issues)
            return False, None
        if item.plain and set(map(type, value)) <= item.plain:
            return True, value
        if not item.deep and item.test is not None:
            good = [v for v in value if item.test(v)]
            if len(good) == len(value):
                return True, value
            for i, v in enumerate(value):
                if not item.test(v):
                    item.bad(v, f"{path}[{i}]", issues)
            return True, good
        out = []
        for i, v in enumerate(value):
            ok, cleaned = item.check(v, f"{path}[{i}]", issues)
            if ok:
                out.append(cleaned)
        return True, out

    return check_list


def _dict_check(c: _Checker, item: _Checker) -> Callable[[Any, str, _Issues],
                                                         tuple[bool, Any]]:
    def check_dict(value: Any, path: str, issues: _Issues) -> tuple[bool, Any]:
        if not isinstance(value, dict):
            c.bad(value, path, issues)
            return False, None
        if (item.plain and set(map(type, value.values())) <= item.plain) or (
                not item.deep and item.test is not None and all(map(item.test,
                                                                    value.values()))):
            return True, value
        out = {}
        for key, v in value.items():
            ok, cleaned = item.check(v, f"{path}.{_key(key)}", issues)
            if ok:
                out[key] = cleaned
        return True, out

    return check_dict


def _key(key: str) -> str:
    return key if len(key) <= 40 else key[:37] + "..."


def _object_check(c: _Checker, shape: type) -> Callable[[Any, str, _Issues],
                                                       tuple[bool, Any]]:
    fields: dict[str, _Checker] = {}
    required: frozenset[str] = getattr(shape, "__required_keys__", frozenset())

    def check_object(value: Any, path: str, issues: _Issues) -> tuple[bool, Any]:
        if not isinstance(value, dict):
            c.bad(value, path, issues)
            return False, None
        if not fields:  # compiled on first use: shapes may refer to each other
            fields.update({k: _compile(t) for k, t in _hints(shape).items()})
        out: dict[str, Any] = {}
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                out[key] = item  # a key this version does not know: kept as it is
                continue
            if field.fast is not None and field.fast(item):  # a plain value of its kind
                out[key] = item
                continue
            where = f"{path}.{key}" if path else key
            if key in required and not (field.test is None or field.test(item)):
                field.bad(item, where, issues, "skipped")
                return False, None
            ok, cleaned = field.check(item, where, issues)
            if ok:
                out[key] = cleaned
        missing = sorted(k for k in required if k not in value)
        if missing:
            issues.add(f"no {', '.join(missing)}; skipped")
            return False, None
        return True, out

    return check_object


def _check_object(value: dict[str, Any], shape: type, path: str, issues: _Issues
                  ) -> tuple[bool, Any]:
    return _compile(shape).check(value, path, issues)


def check(value: Any, shape: type[T], where: str, problems: list[str]) -> T | None:
    """``value`` (parsed JSON) checked against ``shape``; None when it is not usable."""
    issues = _Issues(where, problems)
    if not isinstance(value, dict):
        issues.add(f"expected a JSON object, got {_kind(value)}; ignored")
        return None
    ok, cleaned = _check_object(value, shape, "", issues)
    issues.close()
    return typing.cast(T, cleaned) if ok else None


def _loads(data: bytes | str) -> Any:
    """json.loads; ValueError also for nesting too deep to parse."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def parse_document(data: bytes | None, name: str, shape: type[T], problems: list[str]) -> T:
    """A JSON record file as ``shape`` (``{}`` when missing, unreadable or not an object)."""
    empty = typing.cast(T, {})
    if data is None:
        return empty
    try:
        value = _loads(data)
    except ValueError as exc:
        problems.append(f"{name}: not valid JSON ({_short(exc)}); file is corrupt or "
                        "truncated")
        return empty
    parsed = check(value, shape, name, problems)
    return empty if parsed is None else parsed


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."


def parse_rows(data: bytes | None, name: str, shape: type[T], problems: list[str]
               ) -> list[T]:
    """The rows of a JSON Lines record file that fit ``shape``, in file order.

    A last line that does not parse is a write cut short (reported as truncated); any
    other bad line is reported and skipped.
    """
    if not data:
        return []
    issues = _Issues(name, problems, sep=" ")
    row_issues = _RowIssues(issues)
    checker = _compile(typing.cast(Any, shape))
    rows: list[T] = []
    lines = data.split(b"\n")
    last = len(lines) - 1
    for i, value in _values(data, lines) or _line_values(lines):
        if isinstance(value, ValueError):
            issues.add(f"line {i + 1}: " + ("truncated last line" if i >= last - 1
                                            else f"invalid JSON ({_short(value)})"))
            continue
        if not isinstance(value, dict):
            issues.add(f"line {i + 1}: expected a JSON object, got {_kind(value)}; skipped")
            continue
        row_issues.line, row_issues.count = i + 1, 0
        ok, cleaned = checker.check(value, "", row_issues)
        if ok:
            rows.append(typing.cast(T, cleaned))
    issues.close()
    return rows


class _RowIssues(_Issues):
    """The problems of one row (``line``), at most :data:`MAX_PROBLEMS`, told to the
    file's issues as they come."""

    def __init__(self, file: _Issues) -> None:
        super().__init__("", [])
        self.file = file
        self.line = 0

    def add(self, message: str) -> None:
        self.count += 1
        if self.count <= MAX_PROBLEMS:
            self.file.add(f"line {self.line}: {message}")


_DECODER = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\r]*")


def _values(data: bytes, lines: list[bytes]) -> list[tuple[int, Any]] | None:
    """The value of each non-blank line, the file decoded once (the common case; a fifth
    quicker than line by line); None when any line is not exactly one JSON value, or
    the file is not plain UTF-8: then :func:`_line_values` says which, line by line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: list[tuple[int, Any]] = []
    scan, space, find = _DECODER.raw_decode, _JSON_SPACE.match, text.find
    pos = 0
    for i, line in enumerate(lines):
        newline = find("\n", pos)
        end_of_line = len(text) if newline < 0 else newline
        if line.strip():  # the blank lines of _line_values
            start = space(text, pos).end()  # type: ignore[union-attr]  # always matches
            try:
                value, end = scan(text, start)
            except (ValueError, RecursionError):
                return None
            if end > end_of_line or space(text, end).end() != end_of_line:  # type: ignore[union-attr]
                return None
            out.append((i, value))
        pos = end_of_line + 1
    return out


def _line_values(lines: list[bytes]) -> Iterator[tuple[int, Any]]:
    """Each non-blank line's value, or the ValueError that says why it has none."""
    for i, line in enumerate(lines):
        if line.strip():
            try:
                yield i, _loads(line)
            except ValueError as exc:
                yield i, exc


def finite(value: Any) -> float | None:
    """``value`` as a finite float, else None (NaN, infinities, non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None

