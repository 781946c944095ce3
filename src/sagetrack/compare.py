"""Compare runs: ``sagetrack.diff(a, b)``.

:func:`diff` returns a :class:`RunDiff`, plain dataclasses (``to_dict()`` for JSON) whose
``str()`` is the text ``sagetrack diff`` prints::

    RunDiff
    ├── params       ParamsDiff      added / removed / changed / same hyperparameters
    ├── code         CodeDiff        commits, content hash, files, the uncommitted diffs
    ├── data         [ChannelDiff]   per input channel: same or changed fingerprint
    ├── environment  EnvironmentDiff image, instance, versions, packages
    └── metrics      [MetricDiff]    final and best value per metric, with deltas
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, cast

from .errors import SagetrackError
from .formatting import diffstat, format_bytes, format_number, format_value, short
from .store.layout import validate_experiment, validate_run_id
from .store.params import flat_params, normalised_params
from .store.reader import Run, metric_goal
from .store.schema import CodeDoc, EnvironmentDoc, TarballDoc

__all__ = [
    "ChannelDiff",
    "CodeDiff",
    "EnvironmentDiff",
    "Field",
    "MetricDiff",
    "ParamsDiff",
    "RunDiff",
    "code_of",
    "diff",
    "diff_of",
    "metric_order",
    "normalised_params",
]

#: lines of the diff of uncommitted diffs shown by ``str(RunDiff)``
DIFF_LINES = 200
#: fields shown by their first 12 characters in text
_HASHES = frozenset({"commit", "content hash", "tarball sha256", "sha256"})


# -- small helpers -------------------------------------------------------------------------
def code_of(run: Run) -> CodeDoc:
    """The run's ``code`` record; a reproduction launched from a recorded tarball (so with
    no git state of its own) takes the git fields of the run it reproduces."""
    code = run.code
    origin = run.reproduces.get("code")
    if not code.get("commit") and origin:
        own = {k: v for k, v in code.items() if k != "error"}  # no git of its own: expected
        merged = cast(CodeDoc, {**own, **origin})
        merged["tarball"] = code.get("tarball") or origin.get("tarball")
        return merged
    return code


def diff_of(run: Run) -> str:
    """The run's uncommitted diff; for a reproduction without one, the original's."""
    if run.diff or run.code.get("commit"):
        return run.diff
    origin = run.reproduces
    experiment, run_id = origin.get("experiment"), origin.get("run_id")
    if run_id and experiment and origin.get("tracking_uri") in (None, run.backend.uri):
        try:
            return Run(run.backend, validate_experiment(experiment),
                       validate_run_id(run_id)).diff
        except SagetrackError:
            return ""
    return ""


# -- the result ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One compared value: ``a`` (first run) and ``b`` (second run)."""

    name: str
    a: Any
    b: Any

    @property
    def same(self) -> bool:
        return bool(self.a == self.b)

    def line(self, width: int = 18) -> str:
        """``    name  value`` when equal, ``  ~ name  a -> b`` when not (hashes cut)."""
        show = short if self.name in _HASHES else format_value
        if self.same:
            return f"    {self.name:<{width}} {show(self.a)}"
        return f"  ~ {self.name:<{width}} {show(self.a)} -> {show(self.b)}"


@dataclass
class ParamsDiff:
    """Hyperparameters (nested dicts flattened to ``a.b``), run ids normalised."""

    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    same: dict[str, Any] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass
class CodeDiff:
    """Code version of both runs and their uncommitted diffs."""

    fields: list[Field]
    files_added: list[str]
    files_removed: list[str]
    diff_a: str
    diff_b: str

    @property
    def same_content(self) -> bool | None:
        """Whether the user code is byte-identical (None when a hash is missing)."""
        content = next(f for f in self.fields if f.name == "content hash")
        return None if not (content.a and content.b) else content.same

    def diff_of_diffs(self, context: int = 3) -> str:
        """A unified diff from run A's uncommitted diff to run B's ('' when equal)."""
        if self.diff_a == self.diff_b:
            return ""
        return "".join(difflib.unified_diff(
            self.diff_a.splitlines(keepends=True), self.diff_b.splitlines(keepends=True),
            "a/code.diff", "b/code.diff", n=context))


@dataclass
class ChannelDiff:
    """One input channel: ``status`` is same, changed, added, removed or unknown."""

    name: str
    status: str
    uri: Field
    objects: Field
    bytes: Field
    sha256: Field


@dataclass
class EnvironmentDiff:
    """Image, instance, framework and library versions, installed packages."""

    fields: list[Field]
    packages_added: list[str]
    packages_removed: list[str]
    packages_changed: dict[str, tuple[str, str]]


@dataclass
class MetricDiff:
    """Final and best value of one metric in both runs; deltas are B - A."""

    name: str
    goal: str | None
    final_a: float | None
    final_b: float | None
    best_a: float | None
    best_b: float | None
    delta_final: float | None
    delta_best: float | None


@dataclass
class RunDiff:
    """Everything that differs between two runs; ``str()`` renders it as text."""

    a: str
    b: str
    status: Field
    params: ParamsDiff
    code: CodeDiff
    data: list[ChannelDiff]
    environment: EnvironmentDiff
    metrics: list[MetricDiff]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (includes the diff of uncommitted diffs)."""
        out = dataclasses.asdict(self)
        out["code"]["diff_of_diffs"] = self.code.diff_of_diffs()
        out["code"]["same_content"] = self.code.same_content
        return out

    def __str__(self) -> str:
        return self.render()

    def render(self, diff_lines: int | None = DIFF_LINES) -> str:
        """The text report; ``diff_lines=None`` shows the whole diff of diffs."""
        out = [f"A: {self.a}", f"B: {self.b}", self.status.line(), ""]
        out += [*self._render_params(), "", *self._render_code(diff_lines), ""]
        out += [*self._render_data(), "", *self._render_environment(), ""]
        out += self._render_metrics()
        return "\n".join(out).rstrip() + "\n"

    def _render_params(self) -> list[str]:
        p = self.params
        out = ["Hyperparameters" + (" (identical)" if p.identical else "")]
        width = max([len(k) for k in (*p.added, *p.removed, *p.changed)] + [16])
        out += [f"  ~ {k:<{width}} {format_value(a)} -> {format_value(b)}"
                for k, (a, b) in p.changed.items()]
        out += [f"  + {k:<{width}} {format_value(v)}" for k, v in p.added.items()]
        out += [f"  - {k:<{width}} {format_value(v)}" for k, v in p.removed.items()]
        if p.same:
            out.append(f"    ({len(p.same)} unchanged: {', '.join(list(p.same)[:8])}"
                       f"{', ...' if len(p.same) > 8 else ''})")
        return out

    def _render_code(self, diff_lines: int | None) -> list[str]:
        c = self.code
        same = {True: " (same user code)", False: " (user code differs)", None: ""}
        out = ["Code" + same[c.same_content]] + [f.line() for f in c.fields]
        if c.files_added:
            out.append(f"  + {'files':<18} {', '.join(c.files_added[:20])}")
        if c.files_removed:
            out.append(f"  - {'files':<18} {', '.join(c.files_removed[:20])}")
        dod = c.diff_of_diffs()
        if dod:
            lines = dod.splitlines()
            out.append("  uncommitted changes differ (diff of A's code.diff -> B's):")
            shown = lines if diff_lines is None else lines[:diff_lines]
            out += [f"    {line}" for line in shown]
            if len(shown) < len(lines):
                out.append(f"    ... {len(lines) - len(shown)} more lines (--full shows all)")
        elif c.diff_a:
            out.append("    uncommitted changes: identical in both runs")
        return out

    def _render_data(self) -> list[str]:
        out = ["Data" + ("" if self.data else " (no inputs recorded)")]
        for ch in self.data:
            if ch.status == "same":
                out.append(f"    {ch.name:<18} same      {ch.uri.a}  ({format_value(ch.objects.a)} "
                           f"objects, {format_bytes(ch.bytes.a)})")
                continue
            out.append(f"  ~ {ch.name:<18} {ch.status}")
            for f in (ch.uri, ch.objects, ch.bytes, ch.sha256):
                value = f.line(14)
                out.append("  " + value)
        return out

    def _render_environment(self) -> list[str]:
        e = self.environment
        out = ["Environment"] + [f.line() for f in e.fields]
        changes = ([f"~ {n} {a} -> {b}" for n, (a, b) in e.packages_changed.items()]
                   + [f"+ {p}" for p in e.packages_added] + [f"- {p}" for p in e.packages_removed])
        if changes:
            out.append(f"  ~ packages           {len(changes)} changed:")
            out += [f"      {c}" for c in changes[:40]]
            if len(changes) > 40:
                out.append(f"      ... {len(changes) - 40} more")
        return out

    def _render_metrics(self) -> list[str]:
        if not self.metrics:
            return ["Metrics (none recorded)"]
        width = max(len(m.name) for m in self.metrics) + 6
        out = ["Metrics", f"    {'':<{width}} {'final A':>10} {'final B':>10} {'delta':>10}"
               f"   {'best A':>10} {'best B':>10} {'delta':>10}"]
        num = format_number
        for m in self.metrics:
            name = f"{m.name} ({m.goal})" if m.goal else m.name
            out.append(f"    {name:<{width}} {num(m.final_a):>10} {num(m.final_b):>10} "
                       f"{num(m.delta_final, True):>10}   {num(m.best_a):>10} "
                       f"{num(m.best_b):>10} {num(m.delta_best, True):>10}")
        return out


# -- building a diff -----------------------------------------------------------------------
def _params_diff(a: Run, b: Run) -> ParamsDiff:
    pa = flat_params(normalised_params(a.params, a.id))
    pb = flat_params(normalised_params(b.params, b.id))
    raw_a, raw_b = flat_params(a.params), flat_params(b.params)
    out = ParamsDiff()
    for key in sorted(set(pa) | set(pb)):
        if key not in pb:
            out.removed[key] = raw_a[key]
        elif key not in pa:
            out.added[key] = raw_b[key]
        elif pa[key] != pb[key]:
            out.changed[key] = (raw_a[key], raw_b[key])
        else:
            out.same[key] = raw_a[key]
    return out


def _code_diff(a: Run, b: Run) -> CodeDiff:
    ca, cb = code_of(a), code_of(b)
    ta: TarballDoc = ca.get("tarball") or {}
    tb: TarballDoc = cb.get("tarball") or {}
    diff_a, diff_b = diff_of(a), diff_of(b)
    stat_a, stat_b = diffstat(diff_a), diffstat(diff_b)
    fields = [
        Field("entry point", ca.get("entry_point"), cb.get("entry_point")),
        Field("commit", ca.get("commit"), cb.get("commit")),
        Field("branch", ca.get("branch"), cb.get("branch")),
        Field("remote", ca.get("remote"), cb.get("remote")),
        Field("dirty", ca.get("dirty"), cb.get("dirty")),
        Field("changed files", len(stat_a) if ca.get("dirty") else 0,
              len(stat_b) if cb.get("dirty") else 0),
        Field("content hash", ta.get("content_sha256"), tb.get("content_sha256")),
        Field("tarball sha256", ta.get("sha256"), tb.get("sha256")),
        Field("tarball files", ta.get("file_count"), tb.get("file_count")),
    ]
    files_a, files_b = set(ta.get("files", [])), set(tb.get("files", []))
    return CodeDiff(fields=fields, files_added=sorted(files_b - files_a),
                    files_removed=sorted(files_a - files_b), diff_a=diff_a, diff_b=diff_b)


def _data_diff(a: Run, b: Run) -> list[ChannelDiff]:
    out = []
    ia, ib = a.inputs, b.inputs
    for name in sorted(set(ia) | set(ib)):
        fa, fb = ia.get(name) or {}, ib.get(name) or {}
        if not fa:
            status = "added"
        elif not fb:
            status = "removed"
        elif not (fa.get("sha256") and fb.get("sha256")):
            status = "unknown"
        else:
            status = "same" if fa.get("sha256") == fb.get("sha256") else "changed"
        out.append(ChannelDiff(
            name=name, status=status, uri=Field("uri", fa.get("uri"), fb.get("uri")),
            objects=Field("objects", fa.get("objects"), fb.get("objects")),
            bytes=Field("bytes", fa.get("bytes"), fb.get("bytes")),
            sha256=Field("sha256", fa.get("sha256"), fb.get("sha256"))))
    return out


def _packages(env: EnvironmentDoc) -> dict[str, str]:
    out = {}
    for item in env.get("packages", []):
        name, _sep, version = item.partition("==")
        out[name.lower()] = version
    return out


def _environment_diff(a: Run, b: Run) -> EnvironmentDiff:
    ja, jb = a.job_config, b.job_config
    ea, eb = a.environment, b.environment
    fields = [Field(label, ja.get(key), jb.get(key)) for label, key in (
        ("image", "image_uri"), ("instance type", "instance_type"),
        ("instance count", "instance_count"), ("framework", "framework_version"),
        ("py version", "py_version"), ("distribution", "distribution"),
        ("spot", "use_spot_instances"), ("region", "region"))]
    fields += [Field(label, ea.get(key), eb.get(key)) for label, key in (
        ("python", "python"), ("tensorflow", "tensorflow"), ("keras", "keras"),
        ("gpus", "gpu_count"), ("cpus", "cpu_count"), ("hosts", "host_count"))]
    fields += [Field("sagemaker sdk", a.record.get("sagemaker_sdk_version"),
                     b.record.get("sagemaker_sdk_version")),
               Field("sagetrack", a.record.get("sagetrack_version"),
                     b.record.get("sagetrack_version"))]
    pa, pb = _packages(ea), _packages(eb)
    return EnvironmentDiff(
        fields=fields,
        packages_added=[f"{n}=={pb[n]}" for n in sorted(set(pb) - set(pa))],
        packages_removed=[f"{n}=={pa[n]}" for n in sorted(set(pa) - set(pb))],
        packages_changed={n: (pa[n], pb[n]) for n in sorted(set(pa) & set(pb))
                          if pa[n] != pb[n]})


def metric_order(name: str) -> tuple[int, str, int]:
    """Sort key: loss first, learning rates last, each ``val_`` after its training metric."""
    base = name.removeprefix("val_")
    rank = 0 if base == "loss" else (2 if metric_goal(name) is None else 1)
    return rank, base, name.startswith("val_")


def _delta(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else y - x


def _metrics_diff(a: Run, b: Run) -> list[MetricDiff]:
    fa, fb = a.final_metrics, b.final_metrics
    ba, bb = a.best_metrics, b.best_metrics
    out = []
    for name in sorted(set(fa) | set(fb) | set(ba) | set(bb), key=metric_order):
        va, vb = _number(fa.get(name)), _number(fb.get(name))
        xa, xb = ba.get(name), bb.get(name)
        out.append(MetricDiff(name=name, goal=metric_goal(name), final_a=va, final_b=vb,
                              best_a=xa, best_b=xb, delta_final=_delta(va, vb),
                              delta_best=_delta(xa, xb)))
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value,
                                                                              bool) else None


def diff(a: Run, b: Run) -> RunDiff:
    """Compare two runs (A, then B): hyperparameters, code, data, environment, metrics."""
    return RunDiff(
        a=f"{a.id} ({a.experiment})", b=f"{b.id} ({b.experiment})",
        status=Field("status", a.status, b.status),
        params=_params_diff(a, b), code=_code_diff(a, b), data=_data_diff(a, b),
        environment=_environment_diff(a, b), metrics=_metrics_diff(a, b))
