"""Write the report site to a folder or beside the records, rewriting only what changed.

A site is plain files::

    index.html                     the pages (runs, run, compare), chosen by the URL hash
    share.html                     (S3 only) the same, with presigned URLs of every file
    assets/                        the page code, styles and the vendored uPlot (+ licence)
    data/meta.js                   when and from which store the site was generated
    data/runs.js                   the runs table: columns and one row per run
    data/run/<experiment>/<id>.js  everything one run recorded, for its page
    manifest.json                  sha256 of every file, and which run pages are final

Data files are JavaScript (``sagetrack.data(name, {...})``) so that the pages load them
with ``<script>`` from ``file://`` too, where browsers refuse ``fetch()``. The manifest
lets a later generation skip what is unchanged: files whose content hash is the same are
not written again, and the pages of settled runs (:func:`sagetrack.store.index.settled`)
are not even regenerated.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._threads import map_io
from .._version import __version__
from ..api import Run, Store
from ..errors import ConfigurationError, StoreError
from ..store.index import settled
from .collect import ACTIVE, now_iso, run_document, run_files, runs_table
from .target import MANIFEST, MAX_EXPIRES, REPORT_FORMAT, SHARE, Target

__all__ = ["SiteResult", "generate", "js_data", "page", "run_path"]

ASSETS = Path(__file__).resolve().parent / "assets"
STYLES = ("uPlot.min.css", "report.css")
SCRIPTS = ("uPlot.iife.min.js", "app.js", "chart.js", "view-runs.js", "view-run.js",
           "view-compare.js")
LICENSES = ("uPlot.LICENSE", "LICENSES.md")
META = "data/meta.js"


@dataclass
class SiteResult:
    """What one generation did: where the site is, the URL to open, files written."""

    location: str
    url: str
    runs: int
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: runs, files written and unchanged, time."""
        return (f"{self.runs} runs, {len(self.written)} files written, {self.unchanged} "
                f"unchanged ({self.seconds:.1f} s)")


# -- file contents -------------------------------------------------------------------------
def _js(value: Any) -> str:
    """``value`` as a JavaScript literal that is safe anywhere: ASCII only, and ``<``, ``>``,
    ``&`` escaped so that no record text can close a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def js_data(name: str, value: Any) -> bytes:
    """A data file: ``sagetrack.data(name, value);`` (NaN and Infinity stay numbers).
    ``value`` comes from records as the reader gives them: redacted (``Run.read``)."""
    return f"sagetrack.data({_js(name)},{_js(value)});\n".encode()


def page(src: Callable[[str], str] = str, urls: dict[str, str] | None = None) -> bytes:
    """The HTML shell of the pages; ``src`` maps a site path to the URL to load it from.
    With ``urls`` (path -> URL) the pages load every data file from there."""
    styles = "".join(f'<link rel="stylesheet" href="{html.escape(src("assets/" + n))}">'
                     for n in STYLES)
    scripts = "".join(f'<script src="{html.escape(src("assets/" + n))}"></script>'
                      for n in SCRIPTS)
    inline = "" if urls is None else f"window.SAGETRACK_URLS={_js(urls)};"
    mapping = f"<script>{inline}</script>" if inline else ""
    allowed = f" 'sha256-{_b64sha(inline)}'" if inline else ""
    # scripts and styles of the site only: no inline code but the URL map, no requests out
    policy = (f"default-src 'none'; script-src 'self'{allowed}; style-src 'self'; "
              "img-src 'self' data:; base-uri 'none'; form-action 'none'")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<title>sagetrack report</title>
{styles}
</head>
<body>
<header class="top"><a class="brand" href="#runs">sagetrack</a><nav id="nav"></nav>
<span id="meta" class="meta"></span></header>
<main id="main"><p class="muted">Loading the report&hellip;</p></main>
<noscript><p>This report needs JavaScript.</p></noscript>
{mapping}
{scripts}
</body>
</html>
""".encode()


def _assets() -> dict[str, bytes]:
    return {f"assets/{n}": (ASSETS / n).read_bytes() for n in (*STYLES, *SCRIPTS, *LICENSES)}


def run_path(run: Run) -> str:
    """Site path of a run's data file."""
    return f"data/run/{run.experiment}/{run.id}.js"


def _b64sha(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- one generation ------------------------------------------------------------------------
def _runs(store: Store, experiments: Sequence[str] | None, update_index: bool) -> list[Run]:
    known = store.experiments()
    for name in experiments or ():
        if name not in known:
            raise ConfigurationError(
                f"No experiment {name!r} in {store.uri}. Experiments: "
                f"{', '.join(known) or 'none yet'}.")
    runs: list[Run] = []
    for name in experiments or known:
        runs.extend(store.list_runs(name, update_index=update_index))
    runs.sort(key=lambda r: str(r.started or ""), reverse=True)  # newest first
    return runs


def _previous(runs: Sequence[Run]) -> dict[int, Run]:
    """The run before each run in its experiment (by start time)."""
    by_experiment: dict[str, list[Run]] = {}
    for run in runs:
        by_experiment.setdefault(run.experiment, []).append(run)
    out: dict[int, Run] = {}
    for group in by_experiment.values():
        group.sort(key=lambda r: (str(r.started or ""), r.id))
        out.update({id(b): a for a, b in itertools.pairwise(group)})
    return out


def _document(run: Run, previous: Run | None, uri: str) -> bytes:
    try:
        doc = run_document(run, run_files(run), previous, uri)
    except StoreError as exc:  # the run page says what could not be read
        doc = {"id": run.id, "experiment": run.experiment, "status": run.status,
               "problems": [*run.problems, f"cannot read the run's records: {exc}"]}
    return js_data(f"run:{run.experiment}/{run.id}", doc)


def _documents(store: Store, todo: list[Run], previous: dict[int, Run]) -> dict[str, bytes]:
    """The data files of the runs ``todo``: 16 at a time from S3; from a folder in turn,
    or on 4 threads where reading waits (a network mount), see ``map_io``."""
    s3 = store.uri.startswith("s3://")
    docs = map_io(lambda run: _document(run, previous.get(id(run)), store.uri), todo,
                  workers=16 if s3 else 4, waits=s3)
    return {run_path(r): d for r, d in zip(todo, docs, strict=True)}


def _plan(runs: list[Run], previous: dict[int, Run], old: dict[str, Any], target: Target
          ) -> tuple[list[Run], dict[str, str], dict[str, str]]:
    """Which run pages to generate; the pages kept as they are (path -> sha256); the
    settled runs (key -> key of the previous run), whose pages a later generation keeps."""
    old_files, old_settled = old.get("files", {}), old.get("settled", {})
    todo: list[Run] = []
    kept: dict[str, str] = {}
    final: dict[str, str] = {}
    for run in runs:
        key, path, prev = f"{run.experiment}/{run.id}", run_path(run), previous.get(id(run))
        prev_key = f"{prev.experiment}/{prev.id}" if prev else ""
        if settled(run) and (prev is None or settled(prev)):
            final[key] = prev_key
            if old_settled.get(key) == prev_key and path in old_files and \
                    target.present(path):
                kept[path] = old_files[path]
                continue
        todo.append(run)
    return todo, kept, final


def _write(target: Target, files: dict[str, bytes], paths: list[str]) -> None:
    """Write ``paths``: run pages, then the data and assets that point at them, then
    ``data/meta.js`` (what an open page polls: when it changes, everything it names is
    there), then the pages (so that a page never loads a file not written yet)."""
    for phase in ((p for p in paths if p.startswith("data/run/")),
                  (p for p in paths if not p.startswith("data/run/") and
                   not p.endswith(".html") and p != META),
                  (p for p in paths if p == META),
                  (p for p in paths if p.endswith(".html"))):
        map_io(lambda p: target.put(p, files[p]), phase, workers=16 if target.s3 else 4,
               waits=target.s3)


def generate(store: Store, target: Target, *, experiments: Sequence[str] | None = None,
             watch: float | None = None, share: bool = False, resign: bool = True,
             expires: int = MAX_EXPIRES, update_index: bool = True) -> SiteResult:
    """Generate the site of ``store`` (``experiments``: only these) into ``target``,
    writing only files whose content changed. ``watch``: the regeneration interval the
    pages announce (they then reload their data). ``share``: also write ``share.html``
    (S3), whose presigned URL (valid ``expires`` seconds) is the result's ``url``; it is
    signed again when ``resign`` or when anything changed. ``update_index``: also bring
    the run index up to date (best effort), as ``sagetrack runs`` does."""
    t0 = time.perf_counter()
    old = target.manifest() or {}
    old_files: dict[str, str] = old.get("files", {})
    runs = _runs(store, experiments, update_index)
    previous = _previous(runs)
    todo, kept, final = _plan(runs, previous, old, target)
    files = _documents(store, todo, previous)
    files["data/runs.js"] = js_data("runs", runs_table(runs))
    files.update(_assets())
    files["index.html"] = page()
    hashes = {p: _sha(d) for p, d in files.items()}
    changed = [p for p in files if old_files.get(p) != hashes[p] or not target.present(p)]
    content = {**kept, **hashes}
    meta = {"format": REPORT_FORMAT, "sagetrack": __version__, "store": store.uri,
            "experiments": sorted({r.experiment for r in runs}), "runs": len(runs),
            "active": sum(r.status in ACTIVE for r in runs), "watch": watch,
            # what an open page compares to know it shows this generation's data
            "revision": _sha(json.dumps(content, sort_keys=True).encode())[:16]}
    meta_sha = _sha(json.dumps(meta, sort_keys=True).encode())
    if changed or old.get("meta") != meta_sha or not (
            META in old_files and target.present(META)):
        files[META] = js_data("meta", {**meta, "generated": now_iso()})  # when it changed
        hashes[META] = _sha(files[META])
        changed.append(META)
    else:
        hashes[META] = old_files[META]
    all_files = {**kept, **hashes}
    if share and target.s3 and (changed or resign or SHARE not in old_files):
        urls = {p: target.url(p, expires) for p in all_files if p != "index.html"}
        files[SHARE] = page(lambda p: urls[p], urls)
        all_files[SHARE] = hashes[SHARE] = _sha(files[SHARE])
        changed.append(SHARE)
    elif SHARE in old_files and target.s3:
        all_files[SHARE] = old_files[SHARE]
    _write(target, files, changed)
    if changed or old_files != all_files or old.get("settled") != final:  # the very last
        target.put(MANIFEST, json.dumps({
            "format": REPORT_FORMAT, "sagetrack": __version__, "meta": meta_sha,
            "files": dict(sorted(all_files.items())), "settled": dict(sorted(final.items()))},
            indent=1).encode())
    entry = SHARE if share and target.s3 else "index.html"
    return SiteResult(location=target.location, url=target.url(entry, expires), runs=len(runs),
                      written=changed, unchanged=len(all_files) - len(changed),
                      seconds=time.perf_counter() - t0)
