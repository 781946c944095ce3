"""Launch overhead: ``fit(wait=False)`` of ``sagetrack.TensorFlow`` vs the SDK's ``TensorFlow``.

Both estimators launch the same job under a moto server on 127.0.0.1 (S3 and SageMaker,
run in a child process), with fake credentials, SDK telemetry off and the SDK's config
schema validated once (the patch ``tests/conftest.py`` uses, applied to both sides). The
source folder is in a git repository with a dirty tree (a modified file and an untracked
one); the training channel is an S3 prefix of 10,000 objects (and, as a second sagetrack
configuration, of 10 objects: sagetrack's cost without the listing). Launches alternate,
the starting one rotated each round; the first round is a warm-up and is discarded.

Where the time goes: sagetrack's own steps are timed in extra launches (git capture and
input fingerprinting run on a thread pool, beside the SDK's code upload; the tarball hash
and the record writes run after it), one launch is profiled with cProfile, and the bare
listing of the input prefix is timed as the floor any fingerprint of it must pay.

    python benchmarks/launch_overhead.py            # full run (~2 min)
    python benchmarks/launch_overhead.py --quick    # 1,000 objects, 2 rounds
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from _common import fmt_s, print_table, summarize, write_results

NAME = "launch_overhead"
TARGET_ADDED_S = 1.0
DATA_BUCKET, DATA_PREFIX, BUCKET = "bench-data", "cifar/train", "bench"
SMALL_PREFIX, SMALL_OBJECTS = "cifar/small", 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 objects, 2 measured rounds")
    p.add_argument("--objects", type=int, default=None,
                   help="objects under the input prefix (default 10000; quick 1000)")
    p.add_argument("--rounds", "--pairs", dest="pairs", type=int, default=None,
                   help="measured rounds after the warm-up (default 5; quick 2)")
    p.add_argument("--breakdown-runs", type=int, default=None,
                   help="extra sagetrack launches with its steps timed (default 2; quick 1)")
    p.add_argument("--in-process-moto", action="store_true",
                   help="run the moto server in this process (shares its GIL)")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    args = p.parse_args(argv)
    args.objects = args.objects if args.objects is not None else (1000 if args.quick else 10000)
    args.pairs = args.pairs or (2 if args.quick else 5)
    args.breakdown_runs = args.breakdown_runs or (1 if args.quick else 2)
    return args


# -- the project -----------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def make_project(root: Path) -> Path:
    """A git repository whose ``src/`` holds a training script; the tree is left dirty."""
    repo = root / "project"
    src = repo / "src"
    src.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "remote", "add", "origin", "https://git.example.com/team/project.git")
    (src / "train.py").write_text("import model\n\nprint('training', model.NAME)\n")
    (src / "model.py").write_text("NAME = 'resnet20'\n" + "# padding\n" * 200)
    (src / "requirements.txt").write_text("")
    (repo / "README.md").write_text("project\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial")
    (src / "train.py").write_text("import model\n\nprint('training, changed', model.NAME)\n")
    (src / "notes.txt").write_text("untracked notes\n" * 20)
    return src


# -- launching -----------------------------------------------------------------------------
COMMON: dict[str, Any] = dict(entry_point="train.py", role=_common.ROLE,
                              instance_type="ml.m5.xlarge", instance_count=1,
                              framework_version="2.16", py_version="py310",
                              hyperparameters={"epochs": 3, "batch-size": 128})


def launch(kind: str, session: Any, source: Path) -> dict[str, Any]:
    """One launch: constructor and ``fit(wait=False)`` seconds, job name.

    ``kind``: ``sdk``, ``sagetrack`` (the large input prefix) or ``sagetrack-small``
    (an input prefix of 10 objects: sagetrack's cost without the listing). When sagetrack
    finishes its launch record in the background after ``fit`` returns, that is waited
    for here, outside the timing of ``fit`` (so that it cannot slow the next launch), and
    ``complete_s`` says when the record was complete, counted from the start of ``fit``.
    """
    import sagemaker.tensorflow

    import sagetrack

    prefix = SMALL_PREFIX if kind == "sagetrack-small" else DATA_PREFIX
    inputs = {"training": f"s3://{DATA_BUCKET}/{prefix}"}
    t0 = time.perf_counter()
    if kind == "sdk":
        est = sagemaker.tensorflow.TensorFlow(source_dir=str(source), sagemaker_session=session,
                                              **COMMON)
    else:
        est = sagetrack.TensorFlow(source_dir=str(source), sagemaker_session=session,
                                   tracking_uri=f"s3://{BUCKET}/sagetrack", experiment="bench",
                                   **COMMON)
    t1 = time.perf_counter()
    est.fit(inputs, wait=False)
    t2 = time.perf_counter()
    complete = None
    if kind != "sdk":
        finish = getattr(est, "wait_for_launch_record", None)
        if finish is not None:
            finish(120)
        complete = time.perf_counter() - t1
    return {"init_s": t1 - t0, "fit_s": t2 - t1, "complete_s": complete,
            "job": est.latest_training_job.name}


# -- where the time goes -------------------------------------------------------------------
class Spans:
    """Wall time of named calls, on whichever thread they run."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float, float, str]] = []
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.records.append((name, t0, time.perf_counter(),
                                         threading.current_thread().name))

        return wrapper


# (attribute owner, attribute, label): sagetrack's launch steps, old and new names alike;
# a step the installed sagetrack does not have is simply not reported
STEPS = [
    ("estimator", "bootstrap_paths", "stage bootstrap files"),
    ("LaunchCapture", "start", "start capture (submit to pool)"),
    ("provenance", "git_info", "git capture (status, diff, untracked)"),
    ("provenance", "fingerprint_channel", "input fingerprint (list prefix)"),
    ("sdk_framework", "_prepare_for_training", "SDK prepare (code tarball + upload)"),
    ("provenance", "code_tarball_info", "tarball HEAD + sha256 (of the packed bytes)"),
    ("LaunchCapture", "fill", "fill record from capture"),
    ("LaunchRecords", "_find_completed", "same-work check (LIST + status reads)"),
    ("TrackingStore", "put", "record writes (S3 PutObject)"),
    ("LaunchRecords", "_first", "write launch record"),
    ("LaunchRecords", "_finish", "complete record after fit returned"),
    ("TensorFlow", "_prepare_for_training", "sagetrack _prepare_for_training, total"),
]


@contextlib.contextmanager
def instrumented(spans: Spans) -> Iterator[None]:
    import sagemaker.estimator

    import sagetrack.client.capture as capture_module
    import sagetrack.client.estimator as estimator_module
    import sagetrack.client.identity as identity_module
    import sagetrack.client.launch_writer as record_module
    import sagetrack.client.provenance as provenance_module
    import sagetrack.client.store_access as store_module

    owners = {"estimator": estimator_module, "TensorFlow": estimator_module.TensorFlow,
              "sdk_framework": sagemaker.estimator.Framework,
              "provenance": provenance_module, "identity": identity_module,
              "LaunchCapture": capture_module.LaunchCapture,
              "LaunchRecords": record_module.LaunchRecords,
              "TrackingStore": store_module.TrackingStore}
    saved = []
    for owner_name, attr, label in STEPS:
        owner = owners[owner_name]
        original = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr)
        if original is None:
            continue  # renamed upstream: that step is simply not reported
        saved.append((owner, attr, original))
        setattr(owner, attr, spans.wrap(label, original))
    try:
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def _thread_kind(name: str) -> str:
    if name == "MainThread":
        return "main"
    return "background" if name.startswith("sagetrack-launch") else "pool"


def breakdown(spans: Spans, runs: int) -> list[dict[str, Any]]:
    """Seconds per launch of each timed step (calls summed), and the threads it ran on."""
    rows = []
    for _owner, _attr, label in STEPS:
        mine = [(end - start, thread) for name, start, end, thread in spans.records
                if name == label]
        if not mine:
            continue
        threads = sorted({_thread_kind(t) for _d, t in mine})
        rows.append({"step": label, "thread": "+".join(threads),
                     "seconds_per_launch": sum(d for d, _t in mine) / runs,
                     "calls_per_launch": len(mine) / runs,
                     "median_call_s": summarize([d for d, _t in mine])["median"]})
    return rows


def profile_launch(session: Any, source: Path, top: int = 12) -> list[dict[str, Any]]:
    """cProfile one sagetrack launch (main thread); sagetrack's own functions, by cumtime."""
    profiler = cProfile.Profile()
    profiler.enable()
    launch("sagetrack", session, source)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in \
            stats.stats.items():  # type: ignore[attr-defined]
        norm = filename.replace(os.sep, "/")
        if "/sagetrack/" not in norm or "/benchmarks/" in norm:
            continue
        short = norm.split("/sagetrack/", 1)[1]
        rows.append({"function": f"{short}:{line}({func})", "calls": ncalls,
                     "tottime_s": tottime, "cumtime_s": cumtime})
    rows.sort(key=lambda r: r["cumtime_s"], reverse=True)
    return rows[:top]


def list_floor(url: str, repeats: int) -> dict[str, Any]:
    """Bare paginated listing of the input prefix: wall and client-CPU seconds."""
    import boto3

    s3 = boto3.client("s3", region_name=_common.REGION, endpoint_url=url)
    walls, cpus, count = [], [], 0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=DATA_BUCKET,
                                                                 Prefix=DATA_PREFIX):
            count += len(page.get("Contents", []))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.thread_time() - c0)
    return {"objects": count, "pages": -(-count // 1000), "wall_s": summarize(walls),
            "client_cpu_s": summarize(cpus)}


def _check_telemetry_off(session: Any) -> None:
    from sagemaker.telemetry.telemetry_logging import TELEMETRY_OPT_OUT_PATH
    from sagemaker.utils import resolve_value_from_config

    if resolve_value_from_config(None, TELEMETRY_OPT_OUT_PATH, default_value=False,
                                 sagemaker_session=session) is not True:
        raise SystemExit("SDK telemetry is not opted out; refusing to run")


# -- main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _common.offline_environment()
    started = time.perf_counter()
    seed = [(DATA_BUCKET, DATA_PREFIX, args.objects),
            (DATA_BUCKET, SMALL_PREFIX, SMALL_OBJECTS)]
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="sagetrack-launch-") \
            as tmp, _common.moto_server(in_process=args.in_process_moto, seed=seed) as url:
        warnings.simplefilter("ignore")
        os.environ["AWS_ENDPOINT_URL"] = url
        import boto3
        import sagemaker

        _common.validate_sdk_config_once()
        for name in ("sagemaker", "sagemaker.config"):
            logging.getLogger(name).setLevel(logging.WARNING)
        boto3.client("s3", region_name=_common.REGION).create_bucket(Bucket=BUCKET)
        session = sagemaker.Session(boto_session=boto3.Session(region_name=_common.REGION),
                                    default_bucket=BUCKET)
        _check_telemetry_off(session)
        source = make_project(Path(tmp))
        print(f"launch overhead: {args.objects:,} input objects, {args.pairs} rounds",
              flush=True)
        kinds = ["sdk", "sagetrack", "sagetrack-small"]
        times: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for i in range(args.pairs + 1):
            order = kinds[i % 3:] + kinds[:i % 3]  # SDK first, second, third in turn
            for kind in order:
                one = launch(kind, session, source)
                if i > 0:
                    times[kind].append(one)
                done = (f", record complete {one['complete_s']:.3f} s"
                        if one["complete_s"] is not None else "")
                print(f"  {'warm-up' if i == 0 else f'round {i}'}: {kind} init "
                      f"{one['init_s']:.3f} s, fit {one['fit_s']:.3f} s{done}", flush=True)
        spans = Spans()
        with instrumented(spans):
            for _ in range(args.breakdown_runs):
                launch("sagetrack", session, source)
        steps = breakdown(spans, args.breakdown_runs)
        profile = profile_launch(session, source)
        floor = list_floor(url, 2 if args.quick else 3)
        loads = os.getloadavg()

    result = analyse(times)
    report(result, steps, profile, floor, args, loads)
    write_results(NAME, {
        "config": {"objects": args.objects, "pairs": args.pairs,
                   "moto": "in-process" if args.in_process_moto else "child process",
                   "git": "dirty tree (1 modified, 1 untracked file)"},
        "target_added_s": TARGET_ADDED_S,
        **result,
        "steps": steps, "profile_top": profile, "list_floor": floor,
        "raw": times,
        "elapsed_s": time.perf_counter() - started,
    }, quick=args.quick, out_dir=args.out)
    return 0


def analyse(times: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Added seconds and ratios per round against that round's SDK launch."""
    sdk_fit = [t["fit_s"] for t in times["sdk"]]

    def versus_sdk(kind: str) -> dict[str, Any]:
        fits = [t["fit_s"] for t in times[kind]]
        pairs = list(zip(sdk_fit, fits, strict=True))
        added = summarize([s - b for b, s in pairs])
        complete = [t["complete_s"] for t in times[kind] if t["complete_s"] is not None]
        return {"fit_s": summarize(fits), "init_s": summarize([t["init_s"] for t in times[kind]]),
                "added_s": added, "ratio": summarize([s / b for b, s in pairs]),
                "record_complete_s": summarize(complete) if complete else None,
                "meets_target": added["median"] < TARGET_ADDED_S}

    large, small = versus_sdk("sagetrack"), versus_sdk("sagetrack-small")
    return {"sdk_fit_s": summarize(sdk_fit),
            "sdk_init_s": summarize([t["init_s"] for t in times["sdk"]]),
            "sagetrack_fit_s": large["fit_s"], "sagetrack_init_s": large["init_s"],
            "added_s": large["added_s"], "ratio": large["ratio"],
            "meets_target": large["meets_target"],
            "record_complete_s": large["record_complete_s"],
            "small_input": {"objects": SMALL_OBJECTS, **small}}


def report(result: dict[str, Any], steps: list[dict[str, Any]], profile: list[dict[str, Any]],
           floor: dict[str, Any], args: argparse.Namespace, loads: tuple[float, ...]) -> None:
    a, r = result["added_s"], result["ratio"]
    sdk, st = result["sdk_fit_s"], result["sagetrack_fit_s"]
    small = result["small_input"]
    sa, sr, ss = small["added_s"], small["ratio"], small["fit_s"]

    def verdict(met: bool) -> str:
        return ("met" if met else "MISSED") + f" (< {TARGET_ADDED_S:g} s)"

    def complete(d: dict[str, Any] | None) -> str:
        return fmt_s(d["median"]) if d else ""

    rows = [["SDK TensorFlow", "any", fmt_s(sdk["median"]),
             f"{fmt_s(sdk['min'])}-{fmt_s(sdk['max'])}",
             fmt_s(result["sdk_init_s"]["median"]), "", "", "", ""],
            ["sagetrack.TensorFlow", f"{args.objects:,}", fmt_s(st["median"]),
             f"{fmt_s(st['min'])}-{fmt_s(st['max'])}",
             fmt_s(result["sagetrack_init_s"]["median"]),
             f"{a['median']:+.3f} [{a['min']:+.3f}, {a['max']:+.3f}]",
             f"{r['median']:.2f}x", complete(result["record_complete_s"]),
             verdict(result["meets_target"])],
            ["sagetrack.TensorFlow", f"{small['objects']:,}", fmt_s(ss["median"]),
             f"{fmt_s(ss['min'])}-{fmt_s(ss['max'])}", fmt_s(small["init_s"]["median"]),
             f"{sa['median']:+.3f} [{sa['min']:+.3f}, {sa['max']:+.3f}]",
             f"{sr['median']:.2f}x", complete(small["record_complete_s"]),
             verdict(small["meets_target"])]]
    print_table("Launch overhead: fit(wait=False), dirty git tree",
                ["estimator", "input objects", "fit median (s)", "min-max (s)",
                 "constructor (s)",
                 "added, median [min, max] (s)", "ratio", "record complete (s)", "target"],
                rows,
                [f"{args.pairs} alternating rounds after a warm-up round; moto server in "
                 + ("this process." if args.in_process_moto else "a child process."),
                 f"Load average at the end: {', '.join(f'{x:.1f}' for x in loads)} on "
                 f"{os.cpu_count()} CPUs.",
                 "Record complete: seconds from the start of fit() until the launch record "
                 "(input fingerprints included) is written, when sagetrack finishes it in "
                 "the background after fit() has returned."])
    print_table("Where sagetrack's launch time goes (timed steps, seconds per launch)",
                ["step", "threads", "s per launch", "calls"],
                [[s["step"], s["thread"], fmt_s(s["seconds_per_launch"]),
                  f"{s['calls_per_launch']:g}"] for s in steps],
                [f"Bare listing of the input prefix ({floor['objects']:,} objects, "
                 f"{floor['pages']} pages) from this endpoint: {floor['wall_s']['median']:.3f} s "
                 f"wall, {floor['client_cpu_s']['median']:.3f} s client CPU (median)."])
    print_table("cProfile of one sagetrack launch (main thread): sagetrack functions",
                ["function", "calls", "tottime (s)", "cumtime (s)"],
                [[p["function"], p["calls"], fmt_s(p["tottime_s"]), fmt_s(p["cumtime_s"])]
                 for p in profile])


if __name__ == "__main__":
    sys.exit(main())
