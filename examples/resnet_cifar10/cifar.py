"""CIFAR-10 data formats shared by ``prepare_data.py`` and ``train.py``.

Two formats are handled here:

* the official *python batch* format of ``cifar-10-python.tar.gz``: pickled dicts with
  ``b"data"`` (N x 3072 uint8, row-major, channel-first: 1024 red, 1024 green, 1024 blue
  values per image) and ``b"labels"`` (N ints), one file per batch
  (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) under ``cifar-10-batches-py/``;
* the *channel* format the training script reads: one or more ``.npz`` files in a
  SageMaker channel directory, each holding ``x`` (uint8, N x 32 x 32 x 3, NHWC) and
  ``y`` (int64, N).

This module only needs numpy and the standard library, so it can be imported without
TensorFlow.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"

# Globals a CIFAR python batch may reference: numpy array reconstruction only.
_ALLOWED_NUMPY_GLOBALS = {"_reconstruct", "ndarray", "dtype", "_frombuffer", "scalar"}
# Python 3 protocol-2 pickles store bytes as ``_codecs.encode(str, "latin1")``.
_ALLOWED_OTHER_GLOBALS = {
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, so a bad archive cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "numpy" and name in _ALLOWED_NUMPY_GLOBALS:
            if module.startswith("numpy.core") and hasattr(np, "_core"):
                module = "numpy._core" + module[len("numpy.core") :]  # numpy>=2 location
            return super().find_class(module, name)
        if (module, name) in _ALLOWED_OTHER_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR batch references forbidden global {module}.{name}")


def _check_arrays(x: np.ndarray, y: np.ndarray, source: str) -> None:
    """Raise ``ValueError`` unless ``x``/``y`` are a valid NHWC uint8 image set."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{source}: expected uint8 images (N, 32, 32, 3), got {x.dtype} {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{source}: {x.shape[0]} images but labels have shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise ValueError(f"{source}: labels must lie in [0, {NUM_CLASSES})")


# --------------------------------------------------------------------------- python batches


def decode_batch(batch: dict[bytes, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Turn one unpickled python batch into ``(x, y)``: uint8 NHWC images, int64 labels."""
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 32 * 32 * 3:
        raise ValueError(f"batch data must be N x 3072, got {data.shape}")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.asarray(batch[b"labels"], dtype=np.int64)
    x = np.ascontiguousarray(x)
    _check_arrays(x, y, "python batch")
    return x, y


def encode_batch(x: np.ndarray, y: np.ndarray, batch_label: str) -> dict[bytes, Any]:
    """Build a python batch dict (the inverse of :func:`decode_batch`)."""
    _check_arrays(x, y, batch_label)
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), -1)
    return {
        b"batch_label": batch_label.encode(),
        b"labels": [int(v) for v in y],
        b"data": data,
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(y))],
    }


def read_batch(fileobj: IO[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled python batch (as in the official archive) from a binary file."""
    batch = _BatchUnpickler(fileobj, encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError("a CIFAR python batch must be a pickled dict")
    return decode_batch(batch)


def read_archive(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``cifar-10-python.tar.gz`` (or a file in the same format) without extracting it.

    Returns ``(x_train, y_train, x_test, y_test)``; train is ``data_batch_1..5`` in order.
    """
    with tarfile.open(path, "r:*") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

        def load(name: str) -> tuple[np.ndarray, np.ndarray]:
            if name not in members:
                raise ValueError(f"{path}: archive has no {BATCH_DIR}/{name}")
            fileobj = tar.extractfile(members[name])
            assert fileobj is not None
            with fileobj:
                return read_batch(fileobj)

        train = [load(name) for name in TRAIN_BATCHES]
        x_test, y_test = load(TEST_BATCH)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def write_archive(
    path: str | Path,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    label_names: Sequence[str] = CLASS_NAMES,
) -> None:
    """Write a ``cifar-10-python.tar.gz``-style archive: 5 train batches, 1 test batch."""
    files: list[tuple[str, dict[bytes, Any]]] = []
    chunks = np.array_split(np.arange(len(y_train)), len(TRAIN_BATCHES))
    for i, (name, idx) in enumerate(zip(TRAIN_BATCHES, chunks, strict=True), start=1):
        files.append((name, encode_batch(x_train[idx], y_train[idx], f"training batch {i} of 5")))
    files.append((TEST_BATCH, encode_batch(x_test, y_test, "testing batch 1 of 1")))
    meta = {
        b"label_names": [n.encode() for n in label_names],
        b"num_cases_per_batch": len(chunks[0]),
        b"num_vis": 32 * 32 * 3,
    }
    files.append((META_FILE, meta))
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in files:
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{BATCH_DIR}/{name}")
            info.size = len(payload)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload))


# --------------------------------------------------------------------------- channel format


def save_split(path: str | Path, x: np.ndarray, y: np.ndarray) -> Path:
    """Write one split as an uncompressed ``.npz`` with ``x`` (uint8 NHWC) and ``y`` (int64)."""
    y = np.asarray(y, dtype=np.int64)
    _check_arrays(x, y, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # a file object keeps numpy from appending ".npz"
        np.savez(f, x=x, y=y)
    return path


def load_split(channel_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load every ``*.npz`` in a channel directory (sorted by name) and concatenate them."""
    channel = Path(channel_dir)
    files = sorted(channel.glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no .npz files in channel directory {channel}")
    xs, ys = [], []
    for file in files:
        with np.load(file, allow_pickle=False) as data:
            x, y = data["x"], data["y"].astype(np.int64)
        _check_arrays(x, y, str(file))
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)
