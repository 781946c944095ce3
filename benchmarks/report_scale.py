"""How ``sagetrack report`` scales: 1,000 runs x 100 epochs from a folder and from S3 (moto),
a runs page of 10,000 runs and a chart of 100,000 points in headless Chromium.

Writes ``--runs`` runs (``run.json``, ``status.json``, ``metrics.jsonl`` with ``--epochs``
rows, ``environment.json``, ``model.json``, as ``store_scale.py`` does plus the last two) into
a local folder and into a moto S3 server on 127.0.0.1, then times, for each store:

* ``first report, no index``  the first report of a store: also builds the run index;
* ``first report``            a report into an empty site (the index exists);
* ``again, nothing changed``  the same site again: settled runs are not read, nothing written;
* ``again, 10 new runs``      after 10 more runs: their pages, the table, the metadata;
* ``sagetrack report (CLI)``  the command end to end (new process: imports, listing, writing).

The folder's report goes to a folder of its own (``-o DIR``); the S3 report is published
beside the records (``--publish``: objects written through the store's backend, presigned
``share.html``). With Chromium (``/usr/bin/chromium``) and Playwright, it also measures the
pages: a report of ``--big-runs`` runs (load, sort, next page, filter) and a run page
whose per-batch chart has ``--points`` points. Timings are medians of ``--repeat`` rounds;
results go to ``results/report_scale.json``.

    python benchmarks/report_scale.py             # 1,000 x 100; 10,000-run page; 100k points
    python benchmarks/report_scale.py --quick     # 100 x 20; 1,000-run page; 10k points
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine_info, moto_server, offline_environment, print_table, write_results
from store_scale import EXPERIMENT, populate

__all__ = ["main"]

CHROMIUM = "/usr/bin/chromium"


def populate_report(backend: Any, start: int, count: int, epochs: int) -> None:
    """``store_scale.populate`` plus each run's environment and model records."""
    from sagetrack.store.layout import dumps

    populate(backend, start, count, epochs)
    env = dumps({"python": "3.10.14", "tensorflow": "2.16.1", "keras": "3.3.3",
                 "keras_flavour": "keras", "cpu_count": 8, "gpu_count": 1, "host_count": 1,
                 "packages": [f"package{i}==1.{i}" for i in range(150)]})
    model = dumps({"files": [{"path": "model.keras", "bytes": 98_000_000, "sha256": "c" * 64}],
                   "total_bytes": 98_000_000})
    for i in range(start, start + count):
        prefix = f"{EXPERIMENT}/resnet-2024-05-01-{i:06d}"
        backend.put(f"{prefix}/environment.json", env)
        backend.put(f"{prefix}/model.json", model)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], float, Any]:
    """Median wall time, all times, median CPU time of this process, the last result."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), times, statistics.median(cpu), result


def bench_store(label: str, uri: str, client: Any, work: Path, runs: int, epochs: int,
                repeat: int, env: dict[str, str]) -> list[dict[str, Any]]:
    from sagetrack.api import Store
    from sagetrack.report.site import generate
    from sagetrack.report.target import Target
    from sagetrack.store.backends import open_backend

    backend = open_backend(uri, client=client)
    s3 = uri.startswith("s3://")
    t0 = time.perf_counter()
    populate_report(backend, 0, runs, epochs)
    print(f"{label}: wrote {runs} runs x {epochs} epochs in {time.perf_counter() - t0:.1f} s",
          flush=True)
    out: list[dict[str, Any]] = []
    sites = iter(range(10_000))

    def fresh() -> Target:  # an empty site each time
        n = next(sites)
        return Target(backend, f"_bench/site-{n}") if s3 else Target.folder(work / f"s{n}")

    def report(target: Target) -> Any:
        return generate(Store(uri, s3_client=client), target, share=s3)

    def record(what: str, fn: Callable[[], Any], check: Callable[[Any], bool],
               n: int = repeat, note: str = "") -> None:
        median, times, cpu, result = timed(fn, n)
        if not check(result):
            raise AssertionError(f"{label} {what}: unexpected result {result}")
        child = what.endswith("(CLI)")  # its work is in another process
        out.append({"store": label, "operation": what, "runs": runs, "median_s": median,
                    "times_s": times, "note": note, **({} if child else {"cpu_s": cpu})})
        print(f"  {what:<26} {median:7.3f} s" + ("" if child else f"  (cpu {cpu:.3f} s)"),
              flush=True)

    target = fresh()
    record("first report, no index", lambda: report(target), lambda r: r.runs == runs, n=1,
           note="also builds the run index")
    record("first report", lambda: report(fresh()), lambda r: r.runs == runs and r.written,
           note="into an empty site")
    record("again, nothing changed", lambda: report(target),
           lambda r: [p for p in r.written if p != "share.html"] == [])
    populate_report(backend, runs, 10, epochs)
    record("again, 10 new runs", lambda: report(target),
           lambda r: len([p for p in r.written if p.startswith("data/run/")]) == 10, n=1)
    args = ["--publish"] if s3 else ["-o", str(work / "cli")]

    def cli() -> subprocess.CompletedProcess[str]:
        shutil.rmtree(work / "cli", ignore_errors=True)
        if s3:  # without its manifest, the site is written whole again
            client.delete_object(Bucket=uri.split("/")[2], Key="sagetrack/_site/manifest.json")
        return subprocess.run([sys.executable, "-m", "sagetrack.cli", "report", "--uri", uri,
                               *args], capture_output=True, text=True, env=env, timeout=600,
                              check=True)

    record("sagetrack report (CLI)", cli, lambda p: f"{runs + 10} runs" in p.stdout,
           note="new process, " + ("--publish, the whole site" if s3 else "-o DIR, a new folder"))
    return out


def bench_pages(work: Path, big_runs: int, points: int, repeat: int) -> list[dict[str, Any]]:
    """Chromium on a report of ``big_runs`` runs and on a ``points``-point chart."""
    from playwright.sync_api import sync_playwright

    from sagetrack import report
    from sagetrack.store.backends import open_backend
    from sagetrack.store.layout import dumps_row

    uri = str(work / "big")
    backend = open_backend(uri)
    populate(backend, 0, big_runs, 5)
    big_id = "resnet-2024-05-01-000000"
    rows = [{"epoch": 1 + s // 1000, "batch": s % 1000, "step": s, "time": 0.0,
             "metrics": {"loss": 1 / (1 + s / 1000), "accuracy": s / points}}
            for s in range(points)]
    for chunk in range(0, points, 1000):
        backend.put(f"{EXPERIMENT}/{big_id}/batches/{chunk // 1000 + 1:06d}-001-00000.jsonl",
                    "".join(dumps_row(r) for r in rows[chunk:chunk + 1000]).encode())
    t0 = time.perf_counter()
    site = report.build(uri, work / "big-site")
    generate_s = time.perf_counter() - t0
    table_mb = (work / "big-site" / "data" / "runs.js").stat().st_size / 1e6
    print(f"pages: {big_runs} runs generated in {generate_s:.1f} s (runs.js {table_mb:.1f} MB)")
    index = Path(site.location) / "index.html"
    out: list[dict[str, Any]] = []

    def add(what: str, values: list[float], note: str = "") -> None:
        median = statistics.median(values)
        out.append({"store": "chromium", "operation": what, "runs": big_runs,
                    "median_s": median, "times_s": values, "note": note})
        print(f"  {what:<26} {median * 1000:7.0f} ms", flush=True)

    timings: dict[str, list[float]] = {"load": [], "sort": [], "page": [], "filter": [],
                                       "chart": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for _ in range(repeat):
            page.goto("about:blank")
            t0 = time.perf_counter()
            page.goto(index.as_uri() + "#runs")
            page.wait_for_selector("body[data-ready='runs']", timeout=60_000)
            timings["load"].append(time.perf_counter() - t0)
            for name, selector in (("sort", "th[data-key='final.val_loss']"),
                                   ("page", ".pager button:last-child")):
                timings[name].append(page.eval_on_selector(selector, """el => {
                    const t0 = performance.now(); el.click(); return performance.now() - t0;
                }""") / 1000)
            timings["filter"].append(page.eval_on_selector("input.filter", """el => {
                const table = document.querySelector("table.runs");
                return new Promise(resolve => {
                  const obs = new MutationObserver(() => {
                    obs.disconnect(); resolve(performance.now() - t0 - 150); });
                  obs.observe(table, {childList: true});
                  el.value = "val_accuracy>0.5 lr";
                  const t0 = performance.now();
                  el.dispatchEvent(new Event("input"));
                });
            }""") / 1000)
            page.goto("about:blank")
            t0 = time.perf_counter()
            page.goto(index.as_uri() + f"#run/{EXPERIMENT}/{big_id}")
            page.wait_for_selector("body[data-ready='run']", timeout=60_000)
            timings["chart"].append(time.perf_counter() - t0)
        browser.close()
    add("runs page: load", timings["load"], f"{big_runs} runs, runs.js {table_mb:.1f} MB")
    add("runs page: sort", timings["sort"], "click on a metric column: sort + draw 100 rows")
    add("runs page: next page", timings["page"])
    add("runs page: filter", timings["filter"], "after the 150 ms typing pause")
    add("run page with big chart", timings["chart"],
        f"load and draw; per-batch chart of {points:,} points")
    out.append({"store": "chromium", "operation": "generate", "runs": big_runs,
                "median_s": generate_s, "times_s": [generate_s], "note": "sagetrack report"})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table and write ``results/report_scale[.quick].json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--big-runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="100 runs x 20 epochs, a 1,000-run page, 10,000 points, 1 round")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) store")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium pages")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the stores and sites are written (default: the system's "
                             "temporary folder; file creation speed differs between disks)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.epochs, args.big_runs, args.points, args.repeat = (100, 20, 1000,
                                                                           10_000, 1)
    offline_environment()
    results: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sagetrack-report-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        print(f"stores and sites under {work}", flush=True)
        results += bench_store("local folder", str(work / "store"), None, work, args.runs,
                               args.epochs, args.repeat, env)
        if not args.no_s3:
            import boto3
            from botocore.config import Config

            with moto_server() as url:
                os.environ["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"] = url
                client = boto3.session.Session().client(
                    "s3", config=Config(max_pool_connections=32, retries={"max_attempts": 2}))
                client.create_bucket(Bucket="report-scale")
                results += bench_store("s3 (moto)", "s3://report-scale/sagetrack", client, work,
                                       args.runs, args.epochs, args.repeat, env)
        if not args.no_browser and Path(CHROMIUM).exists():
            results += bench_pages(work, args.big_runs, args.points, args.repeat)
        elif not args.no_browser:
            print(f"no Chromium at {CHROMIUM}: the pages are not measured")
    rows = [[r["operation"], r["store"], f"{r['median_s']:.3f}",
             f"{r['cpu_s']:.3f}" if "cpu_s" in r else "", r["note"]] for r in results]
    print_table(f"{args.runs} runs x {args.epochs} epochs (median of {args.repeat})",
                ["operation", "store", "seconds", "cpu s", "note"], rows,
                notes=["moto runs in a child process on this machine; times include it.",
                       f"load average at the end: {machine_info()['loadavg']}"])
    write_results("report_scale", {"runs": args.runs, "epochs": args.epochs,
                                   "work_dir": str(args.work_dir or tempfile.gettempdir()),
                                   "big_runs": args.big_runs, "points": args.points,
                                   "repeat": args.repeat, "results": results},
                  quick=args.quick, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
