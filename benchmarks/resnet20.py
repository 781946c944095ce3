"""ResNet-20 (CIFAR variant, 0.27 M parameters) and CIFAR-format synthetic data.

Self-contained so that the benchmarks do not depend on the example's training script:
He et al. (2016), section 4.2 - a 3x3 stem, three stages of three basic blocks with 16, 32
and 64 filters, global average pooling and a 10-way softmax (6n + 2 = 20 layers), with
1x1 projection shortcuts where the shape changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["build_resnet20", "synthetic_cifar"]

IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10


def synthetic_cifar(n: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random CIFAR-format images (uint8, N x 32 x 32 x 3) and int labels 0-9."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *IMAGE_SHAPE), dtype=np.uint8)
    y = rng.integers(0, NUM_CLASSES, size=(n,), dtype=np.int64)
    return x, y


def build_resnet20(seed: int = 0, keras: Any = None) -> Any:
    """A compiled ResNet-20 with deterministic initial weights for ``seed``."""
    if keras is None:
        import keras as keras_module

        keras = keras_module
    keras.utils.set_random_seed(seed)
    layers = keras.layers

    def conv(filters: int, kernel: int, strides: int = 1) -> Any:
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                             kernel_initializer="he_normal")

    def bn() -> Any:
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)

    inputs = keras.Input(IMAGE_SHAPE, dtype="uint8")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.ReLU()(bn()(conv(16, 3)(x)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = layers.ReLU()(bn()(conv(filters, 3, strides)(x)))
            y = bn()(conv(filters, 3)(y))
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = bn()(conv(filters, 1, strides)(x))
            x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="resnet20")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
