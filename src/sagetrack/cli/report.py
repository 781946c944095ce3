"""``sagetrack report``: write the browser view of a store, a static site (no server)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import SagetrackError

__all__ = ["add_arguments", "cmd_report"]

HELP = "write the runs as a static web page (offline, no server), or publish it beside them"


def _expires(text: str) -> int:
    from ..report import parse_expires

    try:
        return parse_expires(text)
    except SagetrackError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sagetrack report``."""
    p.add_argument("-e", "--experiment", action="append", metavar="E",
                   help="only this experiment (repeat for several; default: all)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="DIR", default=None,
                       help="folder to write the site to (default: ./sagetrack-report)")
    where.add_argument("--publish", action="store_true",
                       help="write the site beside the records (<store>/_site/) and print a "
                            "link to share (a presigned URL for an S3 store)")
    p.add_argument("--expires", type=_expires, default="7d", metavar="TIME",
                   help="how long the link of --publish works: seconds, or 90m, 12h, 7d "
                        "(default and most: 7d)")
    p.add_argument("--watch", action="store_true",
                   help="regenerate every --interval seconds, for a live view during "
                        "training (Ctrl-C stops)")
    p.add_argument("--interval", type=_interval, default=15.0, metavar="S",
                   help="seconds between regenerations with --watch (default 15)")


def _print(result: Any, args: argparse.Namespace, first: bool) -> None:
    from .common import _json, _out

    if args.json:  # with --watch: one line per generation
        doc = {"location": result.location, "url": result.url, "runs": result.runs,
               "written": result.written, "unchanged": result.unchanged,
               "seconds": round(result.seconds, 3)}
        if args.watch:
            _out(json.dumps(doc))
        else:
            _json(doc)
        return
    if not first:
        _out(f"updated: {result.summary()}")
        return
    _out(f"Wrote the report to {result.location}: {result.summary()}")
    if result.url.startswith("file://"):
        _out(f"Open: {result.url}")
    else:
        hours = args.expires / 3600
        _out(f"Share this link (works for {hours:g} h, for anyone who has it): {result.url}")


def cmd_report(args: argparse.Namespace) -> int:
    """Generate (``-o DIR``), publish (``--publish``) or keep regenerating (``--watch``)."""
    from ..report import build, publish, watch
    from ..report.build import DEFAULT_OUTPUT
    from .common import _err, _store

    store = _store(args)
    output = None if args.publish else (args.output or DEFAULT_OUTPUT)
    if not args.watch:
        if output is None:
            result = publish(store, experiments=args.experiment, expires=args.expires)
        else:
            result = build(store, output, experiments=args.experiment)
        _print(result, args, first=True)
        return 0
    if not args.json:
        _err(f"regenerating every {args.interval:g} s; Ctrl-C stops")
    seen = [False]

    def update(result: Any) -> None:
        _print(result, args, first=not seen[0])
        seen[0] = True
        sys.stdout.flush()

    try:
        watch(store, output=output, experiments=args.experiment, interval=args.interval,
              expires=args.expires, on_update=update)
    except KeyboardInterrupt:
        _err("stopped; the report holds the last generation")
    return 0
