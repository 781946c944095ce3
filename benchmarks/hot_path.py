"""Hot-path latency: time spent inside the tracking callback's hooks, healthy or hanging store.

Two ways of measuring, both with the real ``TrackingCallback`` over a real ``Recorder`` and
background ``RecordWriter`` (local mirror + store, as the container bootstrap builds them):

* **direct** - the hooks are called as Keras calls them, with realistic ``logs`` dicts
  (Python floats, as Keras hands them over) and a short pause between calls standing in
  for the training step, so that the writer threads run concurrently with the hooks;
* **in fit** - a small real ``Model.fit`` (an MLP, 150 epochs of 3 steps) with the
  callback's hooks wrapped by a timer.

Stores: a local folder (healthy); a store whose every ``put`` sleeps ``--hang-s`` seconds
(3 s by default); and S3 through botocore to an endpoint that accepts connections and
never answers (a network black hole: each write blocks until botocore's read timeout).
A no-op Keras callback timed the same way gives the floor of the measurement itself.
Target: p99 of ``on_epoch_end`` under 5 ms, even when the store hangs.

    python benchmarks/hot_path.py            # full run (~1 min)
    python benchmarks/hot_path.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from _common import print_table, summarize, write_results

NAME = "hot_path"
TARGET_EPOCH_P99_S = 0.005
EPOCH_LOGS = ("loss", "accuracy", "val_loss", "val_accuracy")
BATCH_LOGS = ("loss", "accuracy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--epochs", type=int, default=None,
                   help="on_epoch_end calls per store (default 250; quick 20)")
    p.add_argument("--batches", type=int, default=None,
                   help="on_train_batch_end calls per store (default 2000; quick 100)")
    p.add_argument("--hang-s", type=float, default=None,
                   help="seconds each write to the hanging store takes (default 3; quick 0.5)")
    p.add_argument("--epoch-gap-s", type=float, default=0.01,
                   help="pause between epoch hooks, standing in for training (default 0.01)")
    p.add_argument("--batch-gap-s", type=float, default=0.001,
                   help="pause between batch hooks (default 0.001)")
    p.add_argument("--close-timeout-s", type=float, default=None,
                   help="timeout given to Recorder.close (default 1; quick 0.5)")
    p.add_argument("--no-fit", action="store_true", help="skip the in-fit measurement")
    p.add_argument("--no-blackhole", action="store_true",
                   help="skip the S3 black-hole store")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    args = p.parse_args(argv)
    args.epochs = args.epochs or (20 if args.quick else 250)
    args.fit_epochs = 5 if args.quick else 150
    args.fit_steps = 4 if args.quick else 3
    if args.close_timeout_s is None:
        args.close_timeout_s = 0.5 if args.quick else 1.0
    args.batches = args.batches or (100 if args.quick else 2000)
    args.hang_s = args.hang_s if args.hang_s is not None else (0.5 if args.quick else 3.0)
    return args


# -- stores --------------------------------------------------------------------------------
class HangingBackend:
    """A store whose every write takes ``hang_s`` seconds (then succeeds)."""

    def __init__(self, root: Path, hang_s: float) -> None:
        from sagetrack.store.backends import LocalBackend

        self._inner = LocalBackend(root)
        self.hang_s = hang_s
        self.uri = f"hanging+{self._inner.uri}"
        self.puts = 0

    def put(self, key: str, data: bytes) -> None:
        time.sleep(self.hang_s)
        self.puts += 1
        self._inner.put(key, data)

    def get(self, key: str) -> bytes:
        time.sleep(self.hang_s)
        data: bytes = self._inner.get(key)
        return data

    def list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[str]:
        time.sleep(self.hang_s)
        keys: Iterator[str] = self._inner.list(prefix, delimiter)
        return keys

    def exists(self, key: str) -> bool:
        time.sleep(self.hang_s)
        return bool(self._inner.exists(key))


def _blackhole_store(url: str) -> Any:
    import boto3
    from botocore.config import Config

    from sagetrack.store.backends import S3Backend

    # the client sagetrack's S3Backend builds for itself, pointed at the black hole
    client = boto3.session.Session().client(
        "s3", endpoint_url=url, region_name=_common.REGION,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                      read_timeout=20))
    return S3Backend("bench", "sagetrack", client=client)


# -- measuring -----------------------------------------------------------------------------
def _logs(names: tuple[str, ...], i: int) -> dict[str, float]:
    return {name: 1.0 / (i + k + 2) for k, name in enumerate(names)}


def _small_model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _noop_callback() -> Any:
    import keras

    class NoOp(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            return None

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            return None

    return NoOp()


def direct(callback: Any, model: Any, *, epochs: int, batches_per_epoch: int,
           epoch_gap: float, batch_gap: float, batch_hooks: bool) -> dict[str, list[float]]:
    """Call the hooks as ``fit`` would; return per-call seconds for each hook."""
    callback.set_model(model)
    callback.set_params({"epochs": epochs, "steps": batches_per_epoch, "verbose": 0})
    out: dict[str, list[float]] = {"on_epoch_end": [], "on_train_batch_end": []}
    clock = time.perf_counter_ns
    callback.on_train_begin({})
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch, {})
        if batch_hooks:
            for batch in range(batches_per_epoch):
                time.sleep(batch_gap)
                logs = _logs(BATCH_LOGS, batch)
                t0 = clock()
                callback.on_train_batch_end(batch, logs)
                out["on_train_batch_end"].append((clock() - t0) / 1e9)
        time.sleep(epoch_gap)
        logs = _logs(EPOCH_LOGS, epoch)
        t0 = clock()
        callback.on_epoch_end(epoch, logs)
        out["on_epoch_end"].append((clock() - t0) / 1e9)
    callback.on_train_end({})
    return {k: v for k, v in out.items() if v}


def _timed(fn: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append((time.perf_counter_ns() - t0) / 1e9)

    return wrapper


def in_fit(callback: Any, model: Any, *, epochs: int, steps: int,
           batch_hooks: bool) -> dict[str, list[float]]:
    """A real ``fit`` with the callback's hooks wrapped by a timer."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * 32, 32)).astype("float32")
    y = rng.integers(0, 10, size=(steps * 32,))
    out: dict[str, list[float]] = {"on_epoch_end": [], "on_train_batch_end": []}
    callback.on_epoch_end = _timed(callback.on_epoch_end, out["on_epoch_end"])
    if batch_hooks:
        callback.on_train_batch_end = _timed(callback.on_train_batch_end,
                                             out["on_train_batch_end"])
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[callback])
    return {k: v for k, v in out.items() if v}


WHAT_IFS = {"no LR read": (False, True), "no metric line": (True, False),
            "neither": (False, False)}


def measure(store_name: str, store: Any, args: argparse.Namespace, root: Path, model: Any,
            mode: str, batch_hooks: bool, what_if: str | None = None) -> dict[str, Any]:
    """One configuration: a fresh recorder over ``store``; returns per-hook statistics.

    ``what_if`` (epoch tracking only) removes one of the two points where the hook lets
    other threads run: reading the optimizer's learning rate (a TensorFlow op) and
    writing the ``#sagetrack`` metric line to stdout after the writer has been woken.
    """
    from sagetrack.container.keras import callback_class

    read_lr, print_line = WHAT_IFS.get(what_if or "", (True, True))
    slug = "".join(c if c.isalnum() else "-" for c in f"{store_name}-{what_if or ''}")
    run_id = f"{slug.strip('-')}-{mode}-{'batch' if batch_hooks else 'epoch'}"[:63]
    recorder = _common.make_recorder(root / "jobs", store, run_id=run_id,
                                     track_batches=1 if batch_hooks else 0,
                                     print_metrics=print_line)
    callback = callback_class("keras")(recorder=recorder)
    no_lr = contextlib.nullcontext() if read_lr else _without_learning_rate_read()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), no_lr:
        if mode == "direct":
            epochs = args.epochs if not batch_hooks else max(2, args.batches // 500)
            per_epoch = max(1, args.batches // epochs) if batch_hooks else 0
            times = direct(callback, model, epochs=epochs, batches_per_epoch=per_epoch,
                           epoch_gap=args.epoch_gap_s, batch_gap=args.batch_gap_s,
                           batch_hooks=batch_hooks)
        else:
            times = in_fit(callback, model, epochs=args.fit_epochs, steps=args.fit_steps,
                           batch_hooks=batch_hooks)
    recorder.finish("completed")
    t0 = time.perf_counter()
    flushed = recorder.close(args.close_timeout_s)
    close_s = time.perf_counter() - t0
    tracking = "batch" if batch_hooks else "epoch"
    if what_if:
        tracking += f", what-if: {what_if}"
    return {"store": store_name, "mode": mode, "tracking": tracking, "what_if": what_if,
            "hooks": {k: summarize(v) for k, v in times.items()},
            "close_s": close_s, "flushed": flushed,
            "store_errors": recorder.writer.store_errors}


def measure_floor(args: argparse.Namespace, model: Any, mode: str) -> dict[str, Any]:
    """The same timing around a callback that does nothing: the floor of the measurement."""
    if mode == "direct":
        times = direct(_noop_callback(), model, epochs=args.epochs,
                       batches_per_epoch=max(1, args.batches // args.epochs),
                       epoch_gap=args.epoch_gap_s, batch_gap=args.batch_gap_s,
                       batch_hooks=True)
    else:
        times = in_fit(_noop_callback(), model, epochs=args.fit_epochs, steps=args.fit_steps,
                       batch_hooks=True)
    return {"store": "none", "mode": mode, "tracking": "no-op callback",
            "hooks": {k: summarize(v) for k, v in times.items()}}


def measure_learning_rate_read(model: Any, n: int) -> dict[str, Any]:
    """The part of on_epoch_end that reads the optimizer's learning rate (a TF op)."""
    from sagetrack.container.keras import _learning_rate

    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        _learning_rate(model)
        times.append((time.perf_counter_ns() - t0) / 1e9)
        time.sleep(0.001)
    return {"store": "none", "mode": "direct", "tracking": "component",
            "hooks": {"_learning_rate (part of on_epoch_end)": summarize(times)}}


# -- report --------------------------------------------------------------------------------
def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    rows = []
    for r in results:
        for hook, s in r["hooks"].items():
            target = ""
            if hook == "on_epoch_end" and r["store"] != "none" and not r.get("what_if"):
                target = ("met" if s["p99"] < TARGET_EPOCH_P99_S else "MISSED") + " (< 5 ms)"
            close = (f"{r['close_s']:.2f}" + ("" if r["flushed"] else " (unflushed)")
                     if "close_s" in r else "")
            rows.append([r["store"], r["mode"], r["tracking"], hook, s["n"], _us(s["median"]),
                         _us(s["p99"]), _us(s["max"]), close, target])
    notes = [f"Hanging store: every write takes {args.hang_s:g} s. Black hole: S3 through "
             "botocore to an endpoint that never answers (read timeout 20 s, 2 attempts).",
             f"Direct calls are {args.epoch_gap_s * 1e3:g} ms (epochs) / "
             f"{args.batch_gap_s * 1e3:g} ms (batches) apart; close: seconds for "
             f"finish + close(timeout={args.close_timeout_s:g}).",
             f"Load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
             f"on {os.cpu_count()} CPUs."]
    print_table("Hot path: time inside the callback's hooks (microseconds)",
                ["store", "mode", "tracking", "hook", "calls", "p50 (us)", "p99 (us)",
                 "max (us)", "close (s)", "target p99"], rows, notes)


def _progress(r: dict[str, Any]) -> None:
    print(f"  {r['store']} / {r['mode']} / {r['tracking']}: " + ", ".join(
        f"{h} p99 {_us(s['p99'])} us" for h, s in r["hooks"].items()), flush=True)


@contextlib.contextmanager
def _without_learning_rate_read() -> Iterator[None]:
    """Stub out ``sagetrack.container.keras._learning_rate`` (what-if rows only)."""
    from sagetrack.container import keras as adapter

    original = adapter._learning_rate
    adapter._learning_rate = lambda model: None
    try:
        yield
    finally:
        adapter._learning_rate = original


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _common.offline_environment()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras  # noqa: F401  (TensorFlow start-up, outside any timing)

        from sagetrack.store.backends import LocalBackend
    started = time.perf_counter()
    model = _small_model()
    modes = ["direct"] if args.no_fit else ["direct", "fit"]
    results: list[dict[str, Any]] = [measure_floor(args, model, m) for m in modes]
    results.append(measure_learning_rate_read(model, args.epochs))
    # a hanging store may still be writing after close() timed out: that is the point
    with tempfile.TemporaryDirectory(prefix="sagetrack-hot-", ignore_cleanup_errors=True) as tmp, \
            (contextlib.nullcontext(None) if args.no_blackhole else _common.blackhole()) as hole:
        root = Path(tmp)
        stores: list[tuple[str, Callable[[], Any]]] = [
            ("healthy local", lambda: LocalBackend(root / "store")),
            (f"hanging {args.hang_s:g} s", lambda: HangingBackend(root / "slow", args.hang_s)),
        ]
        if hole is not None:
            stores.append(("S3 black hole", lambda: _blackhole_store(hole)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TrackingWarning from the failing stores
            for mode in modes:
                for store_name, make in stores:
                    for batch_hooks in (False, True):
                        r = measure(store_name, make(), args, root, model, mode, batch_hooks)
                        results.append(r)
                        _progress(r)
                # what-ifs: the same hook without the points where it releases the GIL
                for what_if in WHAT_IFS:
                    r = measure(stores[1][0], stores[1][1](), args, root, model, mode, False,
                                what_if)
                    results.append(r)
                    _progress(r)
    report(results, args)
    epoch_p99 = [r["hooks"]["on_epoch_end"]["p99"] for r in results
                 if r["store"] != "none" and "on_epoch_end" in r["hooks"]
                 and not r.get("what_if")]
    write_results(NAME, {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "target_epoch_p99_s": TARGET_EPOCH_P99_S,
        "worst_epoch_p99_s": max(epoch_p99) if epoch_p99 else None,
        "meets_target": bool(epoch_p99) and max(epoch_p99) < TARGET_EPOCH_P99_S,
        "results": results,
        "elapsed_s": time.perf_counter() - started,
    }, quick=args.quick, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
