"""Run every sagetrack benchmark, print their tables and a summary, write JSON results.

Each benchmark runs in its own process (so that TensorFlow, moto and stray writer threads
of one cannot disturb another), prints its tables, and writes
``benchmarks/results/<name>.json`` (``<name>.quick.json`` with ``--quick``). The training
benchmark runs last and gets the time left in the overall budget (15 minutes by default).

    python benchmarks/run_all.py                  # everything, < 15 min on 2 cores
    python benchmarks/run_all.py --quick          # smoke run, ~2 min
    python benchmarks/run_all.py --only training --device gpu
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS_DIR, print_table  # noqa: E402

BENCHMARKS = ("hot_path", "launch", "store_scale", "training")
SCRIPTS = {"hot_path": "hot_path.py", "launch": "launch_overhead.py",
           "store_scale": "store_scale.py", "training": "training_overhead.py"}
RESULT_NAMES = {"hot_path": "hot_path", "launch": "launch_overhead",
                "store_scale": "store_scale", "training": "training_overhead"}
ALIASES = {"hot-path": "hot_path", "hotpath": "hot_path", "launch_overhead": "launch",
           "training_overhead": "training", "store": "store_scale", "store-scale": "store_scale"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fast smoke run of every benchmark")
    p.add_argument("--only", default=",".join(BENCHMARKS),
                   help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="device for the training benchmark")
    p.add_argument("--budget-s", type=float, default=None,
                   help="overall time budget in seconds (default 840; quick 150)")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    args = p.parse_args(argv)
    names = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
    args.only = [b for b in BENCHMARKS if b in names]
    args.budget_s = args.budget_s or (150.0 if args.quick else 840.0)
    return args


def _command(name: str, args: argparse.Namespace, remaining: float) -> list[str]:
    cmd = [sys.executable, str(HERE / SCRIPTS[name])]
    if args.quick:
        cmd.append("--quick")
    if args.out is not None:
        cmd += ["--out-dir" if name == "store_scale" else "--out", str(args.out)]
    if name == "store_scale" and not args.quick:
        cmd += ["--repeat", "1"]  # its default of 3 rounds alone takes ~3 min here
    if name == "training":
        cmd += ["--device", args.device]
        # the rest of the budget, less the warm-up round and the round in flight
        cmd += ["--budget-s", f"{max(30.0, remaining - (60 if args.quick else 100)):.0f}"]
    return cmd


def run_one(name: str, args: argparse.Namespace, remaining: float) -> dict[str, Any]:
    script = HERE / SCRIPTS[name]
    if not script.exists():
        print(f"\n== {name}: skipped ({script.relative_to(HERE.parent)} is not present)",
              flush=True)
        return {"status": "skipped", "seconds": 0.0}
    cmd = _command(name, args, remaining)
    print(f"\n== {name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}",
          flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as stderr:
        try:
            # stdout (progress and tables) goes straight through; stderr (TensorFlow's
            # start-up chatter, warnings) is shown only if the benchmark fails
            rc = subprocess.run(cmd, cwd=HERE.parent, env=env, stderr=stderr,
                                timeout=max(60.0, remaining + 120)).returncode
        except subprocess.TimeoutExpired:
            rc = -1
        seconds = time.perf_counter() - started
        if rc != 0:
            stderr.seek(0)
            tail = stderr.read()[-4000:]
            print(f"== {name} FAILED (exit {rc}) after {seconds:.0f} s; stderr tail:\n{tail}",
                  flush=True)
    return {"status": "ok" if rc == 0 else f"failed (exit {rc})", "seconds": seconds}


def _load(name: str, args: argparse.Namespace, since: float) -> dict[str, Any] | None:
    folder = args.out or RESULTS_DIR
    path = folder / f"{RESULT_NAMES[name]}{'.quick' if args.quick else ''}.json"
    if not path.exists() or path.stat().st_mtime < since:
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        return None
    return data


def headline(name: str, data: dict[str, Any] | None) -> tuple[str, str]:
    """(headline figure, target verdict) for the summary table."""
    if data is None:
        return "", ""
    try:
        if name == "training":
            parts, verdicts = [], []
            for v, r in data["variants"].items():
                if v == "untracked":
                    continue
                parts.append(f"{v} {r['ratio']['median']:.3f}x")
                if "verdict" in r:
                    verdicts.append(f"{v}: {r['verdict']}")
            return "; ".join(parts), "; ".join(verdicts)
        if name == "hot_path":
            worst = data["worst_epoch_p99_s"]
            return (f"worst on_epoch_end p99 {worst * 1e3:.2f} ms",
                    ("met" if data["meets_target"] else "MISSED") + " (< 5 ms)")
        if name == "launch":
            a = data["added_s"]["median"]
            return (f"+{a:.2f} s ({data['ratio']['median']:.2f}x SDK)",
                    ("met" if data["meets_target"] else "MISSED") + " (< 1 s)")
    except (KeyError, TypeError):
        return "(unreadable results)", ""
    return "see its table", ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(f"sagetrack benchmarks{' (quick)' if args.quick else ''}: {', '.join(args.only)}; "
          f"budget {args.budget_s:.0f} s; {os.cpu_count()} CPUs, load "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    summary: dict[str, Any] = {}
    for name in args.only:
        remaining = args.budget_s - (time.perf_counter() - started)
        t0 = time.time()
        summary[name] = run_one(name, args, remaining)
        summary[name]["headline"], summary[name]["target"] = headline(name, _load(name, args,
                                                                                  t0))
    total = time.perf_counter() - started
    rows = [[n, s["status"], f"{s['seconds']:.0f}", s.get("headline", ""), s.get("target", "")]
            for n, s in summary.items()]
    print_table("Summary", ["benchmark", "status", "seconds", "headline", "target"], rows,
                [f"Total {total:.0f} s. JSON results in {args.out or RESULTS_DIR}."])
    folder = args.out or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"summary{'.quick' if args.quick else ''}.json"
    # a partial run (--only) updates its entries and keeps the others' latest results
    merged: dict[str, Any] = {}
    if path.exists() and len(args.only) < len(BENCHMARKS):
        try:
            merged = json.loads(path.read_text()).get("benchmarks", {})
        except ValueError:
            merged = {}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    merged.update({n: {**s, "recorded": stamp} for n, s in summary.items()})
    path.write_text(json.dumps({"quick": args.quick, "last_run_s": total,
                                "benchmarks": merged}, indent=2) + "\n")
    failed = [n for n, s in summary.items() if s["status"].startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
