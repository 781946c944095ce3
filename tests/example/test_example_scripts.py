"""Tests for the ResNet CIFAR-10 example scripts in ``examples/resnet_cifar10``.

``prepare_data.py`` and ``train.py`` run as real subprocesses, the way a user and the
SageMaker training toolkit run them; the format helpers in ``cifar.py`` are tested in-process.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "resnet_cifar10"
PREPARE = EXAMPLE_DIR / "prepare_data.py"
TRAIN = EXAMPLE_DIR / "train.py"


@pytest.fixture(scope="module")
def example_modules() -> Iterator[dict[str, ModuleType]]:
    """Import the example's modules by name, then restore ``sys.path`` and ``sys.modules``."""
    saved_path = list(sys.path)
    sys.path.insert(0, str(EXAMPLE_DIR))
    try:
        yield {name: importlib.import_module(name) for name in ("cifar", "prepare_data")}
    finally:
        sys.path[:] = saved_path
        for name in ("cifar", "prepare_data", "train"):
            sys.modules.pop(name, None)


@pytest.fixture
def modules(example_modules: dict[str, ModuleType]) -> tuple[ModuleType, ModuleType]:
    """``(cifar, prepare_data)``."""
    return example_modules["cifar"], example_modules["prepare_data"]


def _env(**extra: str) -> dict[str, str]:
    """A clean environment for the scripts: no inherited SageMaker or AWS settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "AWS_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0")
    env.update(extra)
    return env


def _run(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=timeout,
        check=False,
    )


def _prepare(out: Path, train_size: int, val_size: int, seed: int = 0) -> Path:
    proc = _run(
        PREPARE,
        "--out",
        str(out),
        "--train-size",
        str(train_size),
        "--val-size",
        str(val_size),
        "--seed",
        str(seed),
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic channels big enough to show learning: 1024 train, 256 validation images."""
    return _prepare(tmp_path_factory.mktemp("data") / "cifar", 1024, 256, seed=1)


# --------------------------------------------------------------------------- prepare_data.py


def test_prepare_data_writes_channel_layout(
    tmp_path: Path, modules: tuple[ModuleType, ModuleType]
) -> None:
    cifar, prepare_data = modules
    out = _prepare(tmp_path / "data", 120, 40, seed=7)

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["train/train.npz", "val/val.npz"]
    x_train, y_train = cifar.load_split(out / "train")
    x_val, y_val = cifar.load_split(out / "val")
    assert x_train.shape == (120, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_val.shape == (40, 32, 32, 3) and y_val.dtype == np.int64
    assert np.bincount(y_train, minlength=10).tolist() == [12] * 10
    assert x_train.std() > 20  # real images, not a constant fill

    # The channel data is exactly the synthetic set, after the python-batch round trip.
    rng = np.random.default_rng(7)
    expected_train = prepare_data.synthetic_images(120, rng)
    expected_val = prepare_data.synthetic_images(40, rng)
    np.testing.assert_array_equal(x_train, expected_train[0])
    np.testing.assert_array_equal(y_train, expected_train[1])
    np.testing.assert_array_equal(x_val, expected_val[0])
    np.testing.assert_array_equal(y_val, expected_val[1])


def test_python_batch_archive_round_trip(
    tmp_path: Path, modules: tuple[ModuleType, ModuleType]
) -> None:
    cifar, prepare_data = modules
    rng = np.random.default_rng(3)
    x_train, y_train = prepare_data.synthetic_images(53, rng)
    x_test, y_test = prepare_data.synthetic_images(11, rng)
    archive = tmp_path / "cifar-10-python.tar.gz"
    cifar.write_archive(archive, x_train, y_train, x_test, y_test)

    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        raw = pickle.load(tar.extractfile("cifar-10-batches-py/data_batch_1"), encoding="bytes")
    assert names == sorted(
        f"cifar-10-batches-py/{n}"
        for n in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH, cifar.META_FILE)
    )
    # Official layout: N x 3072 uint8 rows, the red plane first, then green, then blue.
    assert raw[b"data"].shape == (11, 3072) and raw[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(raw[b"data"][0, :1024], x_train[0, :, :, 0].ravel())
    np.testing.assert_array_equal(raw[b"data"][0, 2048:], x_train[0, :, :, 2].ravel())
    assert raw[b"labels"] == y_train[:11].tolist()

    got = cifar.read_archive(archive)
    for actual, expected in zip(got, (x_train, y_train, x_test, y_test), strict=True):
        np.testing.assert_array_equal(actual, expected)


def _python2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """Pickle a batch the way Python 2 cPickle wrote the official archive (protocol 2)."""

    def short_str(s: bytes) -> bytes:
        return b"U" + bytes([len(s)]) + s

    rows, cols = data.shape
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + short_str(b"b")
        + b"\x87R(K\x01K"
        + bytes([rows])
        + b"M"
        + struct.pack("<H", cols)
        + b"\x86cnumpy\ndtype\n"
        + short_str(b"u1")
        + b"K\x00K\x01\x87R(K\x03"
        + short_str(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T"
        + struct.pack("<I", data.nbytes)
        + data.tobytes()
        + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (
        b"\x80\x02}("
        + short_str(b"batch_label")
        + short_str(b"training batch 1 of 5")
        + short_str(b"data")
        + array
        + short_str(b"labels")
        + label_list
        + b"u."
    )


def test_reads_python2_era_pickles(modules: tuple[ModuleType, ModuleType]) -> None:
    cifar, _ = modules
    data = np.random.default_rng(0).integers(0, 256, size=(4, 3072), dtype=np.uint8)
    x, y = cifar.read_batch(io.BytesIO(_python2_batch(data, [3, 1, 4, 1])))
    assert y.tolist() == [3, 1, 4, 1]
    np.testing.assert_array_equal(x[2, :, :, 1].ravel(), data[2, 1024:2048])


def test_batch_reader_refuses_arbitrary_globals(modules: tuple[ModuleType, ModuleType]) -> None:
    cifar, _ = modules
    payload = pickle.dumps({b"data": os.getcwd}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="forbidden global"):
        cifar.read_batch(io.BytesIO(payload))


def test_prepare_data_from_archive_subsamples(
    tmp_path: Path, modules: tuple[ModuleType, ModuleType]
) -> None:
    cifar, prepare_data = modules
    rng = np.random.default_rng(5)
    archive = tmp_path / "cifar-10-python.tar.gz"
    cifar.write_archive(
        archive, *prepare_data.synthetic_images(100, rng), *prepare_data.synthetic_images(30, rng)
    )
    out = tmp_path / "out"
    args = ["--cifar-archive", str(archive), "--out", str(out), "--train-size", "40"]
    assert prepare_data.main(args) == 0
    assert cifar.load_split(out / "train")[0].shape[0] == 40
    assert cifar.load_split(out / "val")[0].shape[0] == 30  # default: the whole test batch


def test_prepare_data_uploads_to_s3(
    tmp_path: Path, modules: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = pytest.importorskip("moto")
    import boto3

    _, prepare_data = modules
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="data-bucket")
        args = ["--out", "s3://data-bucket/cifar/", "--train-size", "20", "--val-size", "10"]
        assert prepare_data.main(args) == 0
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data-bucket")["Contents"])
    assert keys == ["cifar/train/train.npz", "cifar/val/val.npz"]


def test_download_fails_clearly_offline(
    tmp_path: Path, modules: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, prepare_data = modules

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(prepare_data.urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit, match="--cifar-archive"):
        prepare_data.main(["--download", "--out", str(tmp_path)])


# --------------------------------------------------------------------------- train.py


@pytest.mark.slow
def test_train_runs_like_a_sagemaker_job_and_learns(small_data: Path, tmp_path: Path) -> None:
    model_dir, output_dir = tmp_path / "model", tmp_path / "output"
    env = _env(
        SM_MODEL_DIR=str(model_dir),
        SM_CHANNEL_TRAINING=str(small_data / "train"),
        SM_CHANNEL_VALIDATION=str(small_data / "val"),
        SM_OUTPUT_DATA_DIR=str(output_dir),
    )
    # Hyperparameters as the training toolkit passes them, plus the TF estimator's --model_dir.
    args = ["--batch-size", "64", "--depth", "8", "--epochs", "3", "--augment", "true"]
    proc = _run(TRAIN, *args, "--model_dir", "s3://bucket/job/model", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "val_accuracy" in proc.stdout + proc.stderr

    history = json.loads((output_dir / "history.json").read_text())
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["val_accuracy"]) == 3
    assert history["val_accuracy"][-1] > 0.3, history  # chance is 0.1

    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["hyperparameters"]["depth"] == 8
    assert metadata["architecture"] == "resnet8"
    assert metadata["s3_model_dir"] == "s3://bucket/job/model"

    from tensorflow import keras

    model = keras.models.load_model(model_dir / metadata["model_file"])
    probs = model.predict(np.zeros((2, 32, 32, 3), dtype=np.float32), verbose=0)
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.slow
def test_train_without_validation_channel(small_data: Path, tmp_path: Path) -> None:
    env = _env(
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_CHANNEL_TRAINING=str(small_data / "val"),  # a small set keeps this quick
        SM_OUTPUT_DATA_DIR=str(tmp_path / "output"),
    )
    proc = _run(TRAIN, "--epochs", "1", "--depth", "8", "--augment", "false", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no validation channel" in proc.stdout
    history = json.loads((tmp_path / "output" / "history.json").read_text())
    assert set(history) == {"loss", "accuracy"}
    assert (tmp_path / "model" / "model.keras").is_file()


def test_train_rejects_unknown_argument(small_data: Path, tmp_path: Path) -> None:
    env = _env(SM_MODEL_DIR=str(tmp_path), SM_CHANNEL_TRAINING=str(small_data / "train"))
    proc = _run(TRAIN, "--epochs", "1", "--dropout", "0.5", env=env)
    assert proc.returncode == 2
    assert "unrecognized arguments: --dropout 0.5" in proc.stderr
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--depth", "21"],
        ["--depth", "2"],
        ["--augment", "maybe"],
        ["--epoch", "3"],  # no abbreviations: a misspelt name must not pass
        ["--batch-size", "0"],
    ],
)
def test_train_argument_validation(argv: list[str], example_modules: dict[str, ModuleType]) -> None:
    train = importlib.import_module("train")  # the example directory is on sys.path here
    with pytest.raises(SystemExit) as excinfo:
        train.parse_args(argv)
    assert excinfo.value.code == 2
    args = train.parse_args(["--batch_size", "32", "--augment", "False", "--depth", "32"])
    assert (args.batch_size, args.augment, args.depth) == (32, False, 32)
