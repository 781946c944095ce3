"""Train a CIFAR-10 ResNet with Keras: a plain SageMaker script-mode training script.

Hyperparameters arrive as command-line arguments (``--epochs 3 --batch-size 128 ...``) and
the data and output locations come from the ``SM_*`` environment variables, with local
fallbacks so the script also runs outside SageMaker. Each channel directory holds ``.npz``
files with ``x`` (uint8, N x 32 x 32 x 3) and ``y`` (int labels); see ``cifar.py``.

The network is the CIFAR variant of ResNet (He et al., 2016, section 4.2): a 3x3 stem, three
stages of ``n`` basic blocks with 16, 32 and 64 filters, global average pooling and a
10-way softmax, ``depth = 6n + 2`` layers (ResNet-20 by default). Downsampling shortcuts
are 1x1 convolutions (option B). Training uses SGD with momentum 0.9, a cosine learning
rate schedule, L2 weight decay and random-crop + horizontal-flip augmentation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow import keras

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cifar

HERE = Path(__file__).resolve().parent
MODEL_FILE = "model.keras"


def str2bool(value: str) -> bool:
    """Parse a SageMaker-style boolean hyperparameter ("true"/"false", "1"/"0", ...)."""
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes", "y", "on"}:
        return True
    if lowered in {"false", "0", "no", "n", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def positive_int(value: str) -> int:
    """An integer > 0."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def non_negative_float(value: str) -> float:
    """A float >= 0."""
    number = float(value)
    if not number >= 0.0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value}")
    return number


def _default_validation_dir() -> str | None:
    """``SM_CHANNEL_VALIDATION``; outside SageMaker, ``./data/val`` when it exists."""
    if "SM_CHANNEL_VALIDATION" in os.environ:
        return os.environ["SM_CHANNEL_VALIDATION"]
    if "SM_CHANNEL_TRAINING" in os.environ:  # a SageMaker job without a validation channel
        return None
    local = HERE / "data" / "val"
    return str(local) if local.is_dir() else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse hyperparameters and SageMaker locations; unknown arguments are an error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--epochs", type=positive_int, default=5, help="default: %(default)s")
    hp.add_argument(
        "--batch-size", "--batch_size", type=positive_int, default=128, help="default: %(default)s"
    )
    hp.add_argument(
        "--learning-rate",
        "--learning_rate",
        type=non_negative_float,
        default=0.1,
        help="peak SGD learning rate, cosine-decayed to 0 over training (default: %(default)s)",
    )
    hp.add_argument(
        "--depth",
        type=int,
        default=20,
        help="ResNet depth 6n+2: 8, 14, 20, 32, 56, 110 (default: 20)",
    )
    hp.add_argument(
        "--weight-decay",
        "--weight_decay",
        type=non_negative_float,
        default=1e-4,
        help="L2 weight decay of the kernels (default: %(default)s)",
    )
    hp.add_argument(
        "--augment",
        type=str2bool,
        default=True,
        help="random crop (4 px padding) and horizontal flip: true/false (default: true)",
    )
    hp.add_argument(
        "--seed", type=int, default=42, help="seeds weights, shuffling, augmentation (default: 42)"
    )

    sm = parser.add_argument_group("locations (SageMaker environment variables)")
    sm.add_argument(
        "--model-dir",
        default=os.environ.get("SM_MODEL_DIR", str(HERE / "model")),
        help="where to save the model (default: $SM_MODEL_DIR, else ./model)",
    )
    sm.add_argument(
        "--train",
        default=os.environ.get("SM_CHANNEL_TRAINING", str(HERE / "data" / "train")),
        help="training channel directory (default: $SM_CHANNEL_TRAINING, else ./data/train)",
    )
    sm.add_argument(
        "--validation",
        default=_default_validation_dir(),
        help="validation channel directory, optional; '' disables validation "
        "(default: $SM_CHANNEL_VALIDATION, else ./data/val if present)",
    )
    sm.add_argument(
        "--output-data-dir",
        default=os.environ.get("SM_OUTPUT_DATA_DIR", str(HERE / "output")),
        help="where to write the training history (default: $SM_OUTPUT_DATA_DIR, else ./output)",
    )
    # The SageMaker TensorFlow estimator adds ``--model_dir s3://...`` on its own; accept
    # it (and record it) so strict parsing does not reject the job.
    sm.add_argument("--model_dir", dest="s3_model_dir", default=None, help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    if args.depth < 8 or (args.depth - 2) % 6:
        parser.error(f"--depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), got {args.depth}")
    return args


# --------------------------------------------------------------------------- model


def build_resnet(
    depth: int,
    weight_decay: float,
    mean: np.ndarray,
    variance: np.ndarray,
    num_classes: int = cifar.NUM_CLASSES,
) -> keras.Model:
    """ResNet-``depth`` for 32x32x3 inputs in the 0..255 range (normalisation is built in)."""
    blocks_per_stage = (depth - 2) // 6
    # Weight decay wd on the gradient (w -= lr * wd * w) is an L2 penalty of wd / 2 * |w|^2.
    reg = keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None

    def conv(filters: int, kernel: int, strides: int = 1) -> keras.layers.Layer:
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            kernel_regularizer=reg,
        )

    def bn() -> keras.layers.Layer:
        # momentum 0.9 (not Keras' 0.99) so the moving statistics settle within a few
        # dozen steps, which matters for short runs on small data sets.
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)

    inputs = keras.Input(shape=cifar.IMAGE_SHAPE, name="image")
    x = keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(inputs)
    x = keras.layers.ReLU()(bn()(conv(16, 3)(x)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = keras.layers.ReLU()(bn()(conv(filters, 3, strides)(x)))
            y = bn()(conv(filters, 3)(y))
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = bn()(conv(filters, 1, strides)(shortcut))
            x = keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=reg,
        name="probabilities",
    )(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


# --------------------------------------------------------------------------- data


def _augment(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Random crop of the 4-pixel zero-padded image and random horizontal flip (stateless)."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    image = tf.image.resize_with_crop_or_pad(image, 40, 40)
    image = tf.image.stateless_random_crop(image, size=cifar.IMAGE_SHAPE, seed=crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image, label


def _to_float(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(image, tf.float32), label


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    augment: bool,
    seed: int,
) -> tf.data.Dataset:
    """Build the input pipeline: shuffle, augment in parallel, batch, prefetch."""
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if training:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        if augment:
            # One stateless seed pair per example: reproducible for a given --seed even with
            # parallel map, and different every epoch.
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda xy, s: _augment(xy[0], xy[1], s), num_parallel_calls=tf.data.AUTOTUNE
            )
    ds = ds.batch(batch_size).map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- main


def _keras_version() -> str:
    version = getattr(keras, "__version__", None)
    if version is None:  # Keras 2 (tf_keras) sets it on the top-level package only
        package = sys.modules.get(keras.__name__.split(".")[0])
        version = getattr(package, "__version__", "unknown")
    return str(version)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and save the model."""
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    x_train, y_train = cifar.load_split(args.train)
    print(f"training data: {len(y_train)} images from {args.train}", flush=True)
    val_ds, val_examples = None, 0
    if args.validation:
        x_val, y_val = cifar.load_split(args.validation)
        val_examples = len(y_val)
        print(f"validation data: {val_examples} images from {args.validation}", flush=True)
        val_ds = make_dataset(
            x_val, y_val, args.batch_size, training=False, augment=False, seed=args.seed
        )
    else:
        print("no validation channel: skipping validation", flush=True)
    train_ds = make_dataset(
        x_train, y_train, args.batch_size, training=True, augment=args.augment, seed=args.seed
    )

    pixels = x_train.reshape(-1, 3).astype(np.float64)
    mean, variance = pixels.mean(axis=0), pixels.var(axis=0)
    model = build_resnet(args.depth, args.weight_decay, mean, variance)
    steps_per_epoch = -(-len(y_train) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.learning_rate, decay_steps=steps_per_epoch * args.epochs
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    print(f"model: {model.name}, {model.count_params()} parameters", flush=True)

    start = time.time()
    history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=2)
    train_seconds = time.time() - start

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / MODEL_FILE)
    final = {name: float(values[-1]) for name, values in history.history.items()}
    hyperparameters = {
        key: getattr(args, key)
        for key in (
            "epochs",
            "batch_size",
            "learning_rate",
            "depth",
            "weight_decay",
            "augment",
            "seed",
        )
    }
    metadata = {
        "model_file": MODEL_FILE,
        "architecture": model.name,
        "parameters": model.count_params(),
        "input": {"shape": list(cifar.IMAGE_SHAPE), "range": "0..255 RGB, NHWC"},
        "class_names": list(cifar.CLASS_NAMES),
        "hyperparameters": hyperparameters,
        "train_examples": len(y_train),
        "validation_examples": val_examples,
        "final_metrics": final,
        "train_seconds": round(train_seconds, 2),
        "tensorflow_version": tf.__version__,
        "keras_version": _keras_version(),
        "s3_model_dir": args.s3_model_dir,
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, default=_json_default))

    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    history_rows = {name: [float(v) for v in values] for name, values in history.history.items()}
    (output_dir / "history.json").write_text(json.dumps(history_rows, indent=2))
    print(f"saved {model_dir / MODEL_FILE} after {train_seconds:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
