"""Conformance: the SDK's own TensorFlow unit tests, run against ``sagetrack.TensorFlow``.

Runs ``<SDK checkout>/tests/unit/sagemaker/tensorflow/`` with pytest in a subprocess per
tracking mode, with ``sagetrack.TensorFlow`` substituted for the SDK's class by the plugin
``benchmarks/sdk_conformance_plugin.py`` (tracking on: the class as is; off: a subclass
whose ``tracking`` defaults to False; ``--baseline`` adds a run of the SDK's own class).
Offline: fake credentials, SDK telemetry off, HTTP(S) through a closed local port, a
temporary ``SAGETRACK_HOME``; the SDK's tests use mocked sessions. Nothing is fetched: the
SDK checkout is given (a clone of aws/sagemaker-python-sdk at the tag of the installed
version); the installed ``sagemaker`` is the one tested. The tests need ``pytest``,
``mock`` and ``packaging`` (``mock`` comes with ``sagemaker-core``, an SDK dependency).

Prints per mode and per test file: tests collected, passed, failed, errors, skipped and
their time; the failures grouped by their error line; the slowest tests. Writes
``benchmarks/results/sdk_conformance.json`` (``.quick.json`` when ``--tests`` or extra
pytest options select a subset). Exit status 0 whatever the tests' outcome; 2 when the
procedure itself could not run (bad checkout, missing packages, sagetrack not importable,
collection errors, timeout).

    python benchmarks/sdk_conformance.py --sdk ../sagemaker-python-sdk
    python benchmarks/sdk_conformance.py --sdk PATH --tracking on --junit /tmp/junit
    python benchmarks/sdk_conformance.py --sdk PATH --expected FILE   # e.g. the suite's list
    python benchmarks/sdk_conformance.py --sdk PATH --tracking on -- -k attach    # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import ROOT, print_table, write_results  # noqa: E402
from tests.support.aws import fake_aws_environment  # noqa: E402

NAME = "sdk_conformance"
TESTS = "tests/unit/sagemaker/tensorflow"
CHECKOUT_VARIABLE = "SDK_CHECKOUT"
NEEDED = ("pytest", "mock", "packaging", "sagemaker", "sagetrack")
PROCEDURE_ERROR = 2
CLOSED_PORT = "http://127.0.0.1:9"  # discard port, nothing listens: any real request fails


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sdk", type=Path, default=os.environ.get(CHECKOUT_VARIABLE) or None,
                   help=f"an aws/sagemaker-python-sdk checkout (default ${CHECKOUT_VARIABLE})")
    p.add_argument("--tracking", choices=("on", "off", "both"), default="both")
    p.add_argument("--baseline", action="store_true",
                   help="also run the tests against the SDK's own class")
    p.add_argument("--tests", action="append", default=None,
                   help=f"a test path or node id in the checkout, repeatable ({TESTS})")
    p.add_argument("--junit", type=Path, default=None,
                   help="write <DIR>/<mode>.xml (JUnit) and <mode>.log (pytest output)")
    p.add_argument("--expected", type=Path, default=None,
                   help="expected tracking-on failures: '<node id or pattern> # <reason>' a line")
    p.add_argument("--strict", action="store_true",
                   help="SAGETRACK_STRICT=1: swallowed tracking errors raise (default: off, "
                        "as users run)")
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per mode (default 1800)")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument("pytest_args", nargs="*", help="after --: extra pytest options (-k, -x)")
    args = p.parse_args(argv)
    args.tests = args.tests or [TESTS]
    args.subset = args.tests != [TESTS] or bool(args.pytest_args)
    args.modes = (["sdk"] if args.baseline else []) + (
        ["off", "on"] if args.tracking == "both" else [args.tracking])
    return args


class ProcedureError(Exception):
    """The measurement could not be made (not a test failure)."""


# -- expected failures ---------------------------------------------------------------------
def load_expected(path: Path) -> dict[str, str]:
    """``{pattern: reason}`` from ``path``: one ``<node id> # <reason>`` a line; ``*`` in a
    node id matches any text; blank lines and lines starting with ``#`` are ignored."""
    expected: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, sep, reason = line.partition(" # ")
        if not sep or not reason.strip() or "::" not in pattern:
            raise ProcedureError(
                f"{path}:{number}: expected '<node id> # <reason>', got {line!r}")
        expected[pattern.strip()] = reason.strip()
    return expected


def _matcher(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def check_expected(failing: list[str], expected: dict[str, str]) -> dict[str, list[str]]:
    """Failing tests no pattern covers, and patterns that cover no failing test."""
    compiled = {p: _matcher(p) for p in expected}
    used: set[str] = set()
    unexpected = []
    for nodeid in failing:
        hits = [p for p, rx in compiled.items() if rx.fullmatch(nodeid)]
        used.update(hits)
        if not hits:
            unexpected.append(nodeid)
    return {"unexpected": unexpected, "stale": [p for p in expected if p not in used]}


# -- running -------------------------------------------------------------------------------
def check_checkout(sdk: Path, tests: list[str]) -> str:
    """The checkout's version; ProcedureError if ``sdk`` is not a usable checkout."""
    needed = [sdk / "tests" / "conftest.py", *(sdk / t.split("::")[0] for t in tests)]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise ProcedureError(
            f"{sdk} is not an aws/sagemaker-python-sdk checkout: {', '.join(missing)} "
            "missing. Clone it at the tag of the "
            "installed version, e.g. git clone --depth 1 -b v2.257.6 "
            "https://github.com/aws/sagemaker-python-sdk")
    version = sdk / "VERSION"
    return version.read_text().strip() if version.is_file() else "unknown"


def environment(home: Path, strict: bool) -> dict[str, str]:
    """Offline settings for the pytest subprocess."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SAGETRACK_", "SAGEMAKER_"))}
    env.update(fake_aws_environment(home))
    if not strict:
        env.pop("SAGETRACK_STRICT")
    path = [str(ROOT / "src"), str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(path), PYTHONHASHSEED="42",
               HTTP_PROXY=CLOSED_PORT, HTTPS_PROXY=CLOSED_PORT, http_proxy=CLOSED_PORT,
               https_proxy=CLOSED_PORT, NO_PROXY="", no_proxy="", PYTHONDONTWRITEBYTECODE="1")
    return env


def preflight(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Versions of the packages the run needs, from the interpreter that runs it."""
    code = ("import importlib, json\nout = {}\n"
            f"for name in {NEEDED!r}:\n"
            "    try:\n        module = importlib.import_module(name)\n"
            "        out[name] = getattr(module, '__version__', 'installed')\n"
            "    except Exception as exc:\n        out[name] = 'MISSING: %r' % exc\n"
            "import sagetrack\ntry:\n    sagetrack.TensorFlow\n"
            "except Exception as exc:\n    out['sagetrack'] = 'BROKEN: %r' % exc\n"
            "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise ProcedureError(f"could not check the packages:\n{proc.stderr[-3000:]}")
    versions: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    bad = {k: v for k, v in versions.items() if v.startswith(("MISSING", "BROKEN"))}
    missing = [k for k, v in bad.items() if v.startswith("MISSING")]
    if bad:
        raise ProcedureError(f"cannot run the SDK's tests with {sys.executable}: {bad}."
                             + (f" Install: pip install {' '.join(missing)}" if missing else ""))
    return versions


def run_mode(mode: str, args: argparse.Namespace, work: Path, env: dict[str, str]
             ) -> tuple[list[dict[str, Any]], float, int]:
    """Run the tests once; (per-test records, wall seconds, pytest exit status)."""
    report = work / f"{mode}.jsonl"
    logs = args.junit or work
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", *args.tests, "-p", "sdk_conformance_plugin",
           f"--sagetrack-tracking={mode}", f"--sagetrack-report={report}",
           "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--tb=short",
           f"--rootdir={args.sdk}", *(["--junitxml", str(logs / f"{mode}.xml")]
                                      if args.junit else []), *args.pytest_args]
    log = logs / f"{mode}.log"
    print(f"\n== tracking {mode}: pytest {' '.join(args.tests)} (output in {log})",
          flush=True)
    started = time.perf_counter()
    with log.open("w") as out:
        try:
            rc = subprocess.run(cmd, cwd=args.sdk, env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=args.timeout_s).returncode
        except subprocess.TimeoutExpired as exc:
            raise ProcedureError(f"tracking {mode}: the tests ran past {args.timeout_s:.0f} s; "
                                 f"see {log}") from exc
    wall = time.perf_counter() - started
    tail = log.read_text().strip().splitlines()
    print(f"   {tail[-1] if tail else '(no output)'} [{wall:.0f} s wall]", flush=True)
    if rc not in (0, 1) or not report.exists():
        raise ProcedureError(f"tracking {mode}: pytest exited {rc} (2: interrupted or "
                             f"collection errors, 3: internal, 4: usage, 5: no tests); last "
                             f"lines of {log}:\n" + "\n".join(tail[-30:]))
    lines = report.read_text().splitlines()
    estimator = json.loads(lines[0])["header"]["estimator"]
    if (estimator is None) != (mode == "sdk") or (estimator and "sagetrack" not in estimator):
        raise ProcedureError(f"tracking {mode}: the tests ran with {estimator or 'the SDK'}'s "
                             "TensorFlow, not the substitute")
    records = [json.loads(line) for line in lines[1:]]
    for record in records:  # paths relative to the checkout, this repository, site-packages
        where = record.get("where") or ""
        for prefix in (f"{args.sdk}{os.sep}", f"{ROOT}{os.sep}"):
            where = where.removeprefix(prefix)
        record["where"] = re.sub(r"^.*[/\\]site-packages[/\\]", "", where)
    return records, wall, rc


# -- summarising ---------------------------------------------------------------------------
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")


def counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    tally = Counter(r["outcome"] for r in records)
    return {"collected": len(records), **{o: tally.get(o, 0) for o in OUTCOMES},
            "tests_s": round(sum(r["duration"] for r in records), 2),
            "tracking_warnings": sum(r.get("tracking_warnings", 0) for r in records)}


def error_line(record: dict[str, Any]) -> str:
    """A failure's first error line with numbers and addresses masked, for grouping."""
    line = (record.get("message") or "").strip().splitlines()
    text = re.sub(r"0x[0-9a-f]+", "0x…", line[0] if line else "")
    text = re.sub(r"\d+", "#", text)
    return text[:140]


def summarise(records: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_file[r["nodeid"].split("::")[0]].append(r)
    failing = [r for r in records if r["outcome"] in ("failed", "error")]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in failing:
        groups[error_line(r)].append(r)
    warned: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.get("tracking_warnings"):
            warned[error_line({"message": r.get("first_warning")})].append(r["nodeid"])
    return {
        "totals": {**counts(records), "wall_s": round(wall, 1)},
        "files": {name: counts(rs) for name, rs in sorted(by_file.items())},
        # every failing test, in groups of the same error line
        "failure_groups": [
            {"error": key, "count": len(rs),
             "first_message": (rs[0].get("message") or "").strip()[:600],
             "where": Counter(r.get("where", "") for r in rs).most_common(1)[0][0],
             "nodeids": [r["nodeid"] for r in rs]}
            for key, rs in sorted(groups.items(), key=lambda kv: -len(kv[1]))],
        "tracking_warning_groups": [
            {"warning": key, "count": len(ids), "examples": ids[:3]}
            for key, ids in sorted(warned.items(), key=lambda kv: -len(kv[1]))],
        "slowest": [{"nodeid": r["nodeid"], "s": round(r["duration"], 2)} for r in
                    sorted(records, key=lambda r: -r["duration"])[:20]],
    }


def print_report(results: dict[str, dict[str, Any]]) -> None:
    rows = []
    for mode, res in results.items():
        t = res["totals"]
        rows.append([mode, t["collected"], t["passed"], t["failed"], t["error"], t["skipped"],
                     t["tracking_warnings"], f"{t['tests_s']:.1f}", f"{t['wall_s']:.0f}"])
    headers = ["tracking", "collected", "passed", "failed", "errors", "skipped",
               "TrackingWarnings", "tests s", "wall s"]
    print_table("SDK TensorFlow unit tests", headers, rows)
    rows = [[mode, name, c["collected"], c["passed"], c["failed"], c["error"], c["skipped"],
             f"{c['tests_s']:.1f}"]
            for mode, res in results.items() for name, c in res["files"].items()]
    print_table("Per test file", ["tracking", "file", "collected", "passed", "failed",
                                  "errors", "skipped", "tests s"], rows)
    for mode, res in results.items():
        if res["failure_groups"]:
            print_table(f"Failures with tracking {mode}, by error line",
                        ["count", "error line", "raised at", "example"],
                        [[g["count"], g["error"][:90], g["where"], g["nodeids"][0]]
                         for g in res["failure_groups"][:25]])
        print_table(f"Slowest tests with tracking {mode}", ["seconds", "test"],
                    [[f"{s['s']:.2f}", s["nodeid"]] for s in res["slowest"][:10]])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sdk is None:
        print(f"sdk_conformance: skipped, no SDK checkout given. Pass --sdk PATH or set "
              f"{CHECKOUT_VARIABLE}=PATH to a clone of aws/sagemaker-python-sdk at the tag of "
              "the installed sagemaker version.", flush=True)
        return 0
    args.sdk = args.sdk.resolve()
    try:
        expected = load_expected(args.expected) if args.expected else None
        sdk_version = check_checkout(args.sdk, args.tests)
        with tempfile.TemporaryDirectory(prefix="sagetrack-conformance-") as tmp:
            work = Path(tmp)
            results: dict[str, dict[str, Any]] = {}
            versions: dict[str, str] = {}
            unsent: dict[str, int] = {}
            for mode in args.modes:
                home = work / mode
                home.mkdir()
                env = environment(home, args.strict)
                versions = versions or preflight(env, args.sdk)
                records, wall, _ = run_mode(mode, args, work, env)
                results[mode] = summarise(records, wall)
                unsent[mode] = sum(1 for p in (home / "sagetrack-home").rglob("*")
                                   if p.is_file())
    except ProcedureError as exc:
        print(f"sdk_conformance: procedure error: {exc}", file=sys.stderr, flush=True)
        return PROCEDURE_ERROR
    if versions.get("sagemaker") != sdk_version:
        print(f"note: the checkout's tests are v{sdk_version}; the installed SDK is "
              f"{versions.get('sagemaker')}", flush=True)
    print_report(results)
    payload: dict[str, Any] = {
        "sdk_checkout": str(args.sdk), "sdk_checkout_version": sdk_version,
        "installed": versions, "tests": args.tests, "pytest_args": args.pytest_args,
        "strict": args.strict, "modes": results,
        "files_under_sagetrack_home": unsent}
    if expected is not None and "on" in results:
        failing = [n for g in results["on"]["failure_groups"] for n in g["nodeids"]]
        payload["expected"] = {"file": str(args.expected), "patterns": len(expected),
                               **check_expected(failing, expected)}
        print(f"expected failures ({args.expected}): "
              f"{len(payload['expected']['unexpected'])} unexpected, "
              f"{len(payload['expected']['stale'])} stale patterns", flush=True)
    write_results(NAME, payload, quick=args.subset, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
