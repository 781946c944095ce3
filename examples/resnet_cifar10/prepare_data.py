"""Write CIFAR-10 in the channel layout that ``train.py`` reads.

The destination gets two SageMaker channel folders::

    OUT/train/train.npz   # x: uint8 (N, 32, 32, 3), y: int64 (N,)
    OUT/val/val.npz

``OUT`` is a local directory or an ``s3://bucket/prefix`` URI (uploaded with boto3, which
honours ``AWS_ENDPOINT_URL``). The images come from the official ``cifar-10-python.tar.gz``
(``--cifar-archive PATH`` or ``--download``) or, by default and offline, from a small
synthetic set written in the same python-batch archive format and read back through the
same loader as the real archive.
"""

from __future__ import annotations

import argparse
import colorsys
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cifar

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
DEFAULT_OUT = Path(__file__).resolve().parent / "data"
SYNTHETIC_TRAIN_SIZE = 2048
SYNTHETIC_VAL_SIZE = 512

# The synthetic classes: one left-right symmetric shape each (so the random horizontal flip
# used by ``train.py`` never changes the label), drawn in a colour around a class hue.
SHAPES = (
    "disc",
    "ring",
    "square",
    "frame",
    "diamond",
    "plus",
    "cross",
    "triangle_up",
    "triangle_down",
    "bars",
)
# Difficulty knobs, tuned so that ResNet-20 (batch 128, 2048 images) starts near chance and
# passes 0.5 validation accuracy after about 3 epochs: Gaussian pixel noise, least shape /
# background contrast (max over RGB), spread of the shape hue around its class hue (as a
# fraction of the colour wheel; classes are 0.1 apart) and colour cast of the grey background.
NOISE_STD = 30.0
MIN_CONTRAST = 60.0
HUE_JITTER = 0.05
BG_TINT = 20.0


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    """Boolean mask of ``shape`` with half-size ``s`` at offsets ``dx``/``dy`` from its centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    r = np.hypot(dx, dy)
    t = s / 3.0  # stroke half-width for the line shapes
    mask: np.ndarray
    if shape == "disc":
        mask = r <= s
    elif shape == "ring":
        mask = (r <= s) & (r >= 0.55 * s)
    elif shape == "square":
        mask = np.maximum(ax, ay) <= 0.85 * s
    elif shape == "frame":
        m = np.maximum(ax, ay)
        mask = (m <= 0.9 * s) & (m >= 0.5 * s)
    elif shape == "diamond":
        mask = ax + ay <= 1.2 * s
    elif shape == "plus":
        mask = ((ax <= t) & (ay <= s)) | ((ay <= t) & (ax <= s))
    elif shape == "cross":
        mask = (np.abs(ax - ay) <= 0.75 * t) & (np.maximum(ax, ay) <= 0.9 * s)
    elif shape == "triangle_up":
        mask = (dy >= -s) & (dy <= s) & (ax <= (dy + s) / 2.0)
    elif shape == "triangle_down":
        mask = (dy >= -s) & (dy <= s) & (ax <= (s - dy) / 2.0)
    elif shape == "bars":
        mask = (ax <= s) & (np.abs(ay - 0.55 * s) <= 0.8 * t)
    else:
        raise ValueError(f"unknown shape {shape}")
    return mask


def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` labelled 32x32 RGB images of the 10 synthetic shape classes.

    Each image is the shape of its class at a random position and size, coloured near the
    class hue, on a random grey background with a colour cast and a brightness gradient,
    plus Gaussian pixel noise. Colour alone separates neighbouring classes only partly.
    """
    y = np.arange(n) % cifar.NUM_CLASSES
    rng.shuffle(y)
    ss = 2  # supersampling factor for smooth edges
    grid = (np.arange(32 * ss) + 0.5) / ss
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    x = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(y):
        cx, cy = rng.uniform(11.0, 21.0, size=2)
        size = rng.uniform(6.0, 10.5)
        mask = _shape_mask(SHAPES[label], gx - cx, gy - cy, size)
        alpha = mask.reshape(32, ss, 32, ss).mean(axis=(1, 3))[..., None]
        hue = (label / cifar.NUM_CLASSES + rng.normal(0.0, HUE_JITTER)) % 1.0
        sat, val = rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0)
        fg = 255.0 * np.array(colorsys.hsv_to_rgb(hue, sat, val))
        bg = rng.uniform(0.0, 255.0) + rng.normal(0.0, BG_TINT, size=3)
        while np.abs(fg - bg).max() < MIN_CONTRAST:
            bg = rng.uniform(0.0, 255.0) + rng.normal(0.0, BG_TINT, size=3)
        gradient = rng.normal(0.0, 25.0, size=2)
        shade = (gradient[0] * (gx[::ss, ::ss] - 16) + gradient[1] * (gy[::ss, ::ss] - 16)) / 16
        img = alpha * fg + (1.0 - alpha) * bg + shade[..., None]
        img += rng.normal(0.0, NOISE_STD, size=img.shape)
        x[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return x, y.astype(np.int64)


def write_synthetic_archive(path: Path, train_size: int, val_size: int, seed: int) -> None:
    """Write a synthetic set in the official ``cifar-10-python.tar.gz`` format."""
    rng = np.random.default_rng(seed)
    x_train, y_train = synthetic_images(train_size, rng)
    x_test, y_test = synthetic_images(val_size, rng)
    cifar.write_archive(path, x_train, y_train, x_test, y_test)


def download_archive(dest: Path) -> Path:
    """Download the official archive to ``dest`` and check its MD5."""
    print(f"downloading {CIFAR_URL}", flush=True)
    try:
        with urllib.request.urlopen(CIFAR_URL, timeout=60) as resp, dest.open("wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SystemExit(
            f"error: could not download {CIFAR_URL} ({exc}). Without internet access, pass "
            "--cifar-archive PATH to a local copy, or omit --download to use synthetic data."
        ) from exc
    digest = hashlib.md5(dest.read_bytes()).hexdigest()
    if digest != CIFAR_MD5:
        raise SystemExit(f"error: {CIFAR_URL} has MD5 {digest}, expected {CIFAR_MD5}")
    return dest


def subsample(
    x: np.ndarray, y: np.ndarray, size: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Keep a random ``size`` images (all when ``size`` is None or too large)."""
    if size is None or size >= len(y):
        return x, y
    idx = np.sort(rng.choice(len(y), size=size, replace=False))
    return x[idx], y[idx]


def upload(local_root: Path, s3_uri: str) -> None:
    """Upload ``local_root/{train,val}/*`` under ``s3_uri``."""
    import boto3  # only needed for S3 destinations

    bucket, _, prefix = s3_uri[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    for file in sorted(local_root.rglob("*.npz")):
        key = "/".join(p for p in (prefix, file.relative_to(local_root).as_posix()) if p)
        print(f"uploading s3://{bucket}/{key}", flush=True)
        s3.upload_file(str(file), bucket, key)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help="local directory or s3://bucket/prefix to write train/ and val/ to "
        "(default: %(default)s)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--cifar-archive", type=Path, help="path to the official cifar-10-python.tar.gz"
    )
    source.add_argument(
        "--download", action="store_true", help=f"download the official archive from {CIFAR_URL}"
    )
    parser.add_argument(
        "--train-size",
        type=int,
        default=None,
        help=f"training images (default: {SYNTHETIC_TRAIN_SIZE} synthetic, all 50000 real)",
    )
    parser.add_argument(
        "--val-size",
        type=int,
        default=None,
        help=f"validation images (default: {SYNTHETIC_VAL_SIZE} synthetic, all 10000 real)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in ("train_size", "val_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="cifar-") as tmp:
        tmpdir = Path(tmp)
        if args.cifar_archive is not None:
            archive, kind = args.cifar_archive, "CIFAR-10"
        elif args.download:
            archive, kind = download_archive(tmpdir / "cifar-10-python.tar.gz"), "CIFAR-10"
        else:
            archive, kind = tmpdir / "synthetic-cifar-10-python.tar.gz", "synthetic"
            train_size = args.train_size or SYNTHETIC_TRAIN_SIZE
            val_size = args.val_size or SYNTHETIC_VAL_SIZE
            print(f"generating synthetic archive: {train_size} train, {val_size} val", flush=True)
            write_synthetic_archive(archive, train_size, val_size, args.seed)
        print(f"reading {kind} python batches from {archive}", flush=True)
        x_train, y_train, x_val, y_val = cifar.read_archive(archive)
        x_train, y_train = subsample(x_train, y_train, args.train_size, rng)
        x_val, y_val = subsample(x_val, y_val, args.val_size, rng)

        is_s3 = args.out.startswith("s3://")
        root = tmpdir / "channels" if is_s3 else Path(args.out)
        for split, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
            path = cifar.save_split(root / split / f"{split}.npz", x, y)
            counts = np.bincount(y, minlength=cifar.NUM_CLASSES).tolist()
            print(f"wrote {split}: {len(y)} images, per-class counts {counts}", flush=True)
            if not is_s3:
                print(f"  {path}", flush=True)
        if is_s3:
            upload(root, args.out)
    out = args.out.rstrip("/")
    print(f"channels: training={out}/train validation={out}/val", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
