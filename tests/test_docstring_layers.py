"""Keras' layer docstring examples, and the behaviours they exposed, agree between Kestrel and
real Keras (torch backend): integer inputs to float layers, merge dtypes, seeded augmentation.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402

_X2 = np.arange(12).reshape(3, 4)
_X3 = np.arange(24).reshape(2, 3, 4)
_X4 = np.arange(48).reshape(2, 2, 3, 4)


def _run(lib, make, inputs):
    fresh(lib)
    out = make(lib.layers)(inputs)
    return np.asarray(out.detach().numpy())


def _agree(make, inputs):
    want, got = _run(keras, make, inputs), _run(kestrel, make, inputs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make, inputs", [
    (lambda L: L.Dense(3), _X2),
    (lambda L: L.BatchNormalization(), _X2),
    (lambda L: L.GlobalAveragePooling1D(), _X3),
    (lambda L: L.GlobalAveragePooling2D(), _X4),
    (lambda L: L.GlobalAveragePooling3D(), _X4[..., None]),
    (lambda L: L.AdditiveAttention(), [_X3, _X3]),
    (lambda L: L.Dot(axes=1, normalize=True), [_X2, _X2]),
], ids=["Dense", "BatchNormalization", "GAP1D", "GAP2D", "GAP3D", "AdditiveAttention",
        "Dot-normalize"])
def test_integer_inputs_are_promoted_as_keras(make, inputs):
    """Integer NumPy data into a float layer gives Keras' float32 result, not a torch error."""
    _agree(make, inputs)


@pytest.mark.parametrize("make", [lambda L: L.LayerNormalization(),
                                  lambda L: L.GroupNormalization(2)], ids=["LN", "GN"])
def test_integer_inputs_to_normalization_compute_in_float(make):
    """Keras' float32 dtype and shape; the values are those of the float data (Keras' own
    moments run in integer arithmetic here, a truncated mean, which Kestrel does not copy)."""
    want, got = _run(keras, make, _X2), _run(kestrel, make, _X2)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, _run(kestrel, make, _X2.astype("float32")), atol=1e-6)


@pytest.mark.parametrize("make, inputs", [
    (lambda L: L.Maximum(), [_X2, _X2 + 1]),
    (lambda L: L.Minimum(), [_X2, _X2 + 1]),
    (lambda L: L.Dot(axes=1), [_X2, _X2]),
    (lambda L: L.Dot(axes=(1, 2)), [_X3[:, :, :2], np.arange(12).reshape(2, 2, 3)]),
    (lambda L: L.Dot(axes=2), [_X3, _X3.astype("float32")]),
    (lambda L: L.Add(), [_X2, _X2]),
], ids=["Maximum", "Minimum", "Dot-2d", "Dot-docstring", "Dot-mixed", "Add"])
def test_merge_dtypes_follow_keras(make, inputs):
    """Keras' maximum/minimum/matmul cast int64 pairs to its result type (int32); Add keeps it."""
    _agree(make, inputs)


@pytest.mark.parametrize("name, args", [
    ("RandomZoom", (0.5, 0.2)), ("RandomZoom", (0.5,)), ("RandomRotation", (0.2,)),
    ("RandomTranslation", (0.2, 0.2)), ("RandomFlip", ()), ("RandomContrast", (0.5,)),
    ("RandomBrightness", (0.5,)), ("RandomShear", (0.2,)), ("RandomHue", (0.3,)),
    ("RandomSaturation", (0.3,)), ("RandomGrayscale", (0.5,)), ("RandomSharpness", (0.5,)),
    ("Solarization", (0.5,)), ("RandomInvert", (0.5,)), ("RandomPerspective", ()),
    ("RandomGaussianBlur", ()), ("RandomErasing", ()), ("RandomCrop", (8, 8)),
])
def test_seeded_augmentation_draws_keras_numbers(name, args):
    """After set_random_seed, an unseeded augmentation layer in training gives Keras' images
    (its draws come from the layer's SeedGenerator, as in Keras)."""
    images = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")

    def run(lib):
        fresh(lib)
        layer = getattr(lib.layers, name)(*args)
        first = np.asarray(layer(images, training=True).detach().numpy())
        return first, np.asarray(layer(images, training=True).detach().numpy())

    for want, got in zip(run(keras), run(kestrel)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_random_zoom_docstring_example():
    """RandomZoom's docstring (smaller images): float64 data, zoom in training, Keras' values."""
    input_img = np.random.default_rng(1).random((8, 32, 32, 3))

    def run(lib):
        fresh(lib)
        layer = lib.layers.RandomZoom(.5, .2)
        return np.asarray(layer(input_img, training=True).detach().numpy())

    want, got = run(keras), run(kestrel)
    assert got.shape == want.shape == (8, 32, 32, 3) and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 8, 16, 3), (2, 9, 12, 3), (1, 5, 5, 3)])
def test_random_crop_windows_follow_keras(shape):
    """One scalar draw per axis; a side equal to the target takes Keras' centred window; a
    smaller image is resized."""
    images = np.random.default_rng(0).random(shape).astype("float32")

    def run(lib):
        fresh(lib)
        layer = lib.layers.RandomCrop(8, 8)
        return [np.asarray(layer(images, training=True).detach().numpy()) for _ in range(2)]

    for want, got in zip(run(keras), run(kestrel)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["MixUp", "CutMix"])
def test_mixing_layers_draw_keras_numbers(name):
    """MixUp / CutMix after set_random_seed: Keras' permutation, weights, images and labels."""
    images = (np.random.default_rng(0).random((4, 16, 16, 3)) * 255).astype("float32")
    labels = np.eye(4, dtype="float32")

    def run(lib):
        fresh(lib)
        out = getattr(lib.layers, name)()({"images": images, "labels": labels}, training=True)
        return [np.asarray(out[k].detach().numpy()) for k in ("images", "labels")]

    for want, got in zip(run(keras), run(kestrel)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seed", [None, 7])
def test_color_jitter_parts_share_keras_seed_generator(seed):
    """RandomColorJitter's parts draw from the jitter's SeedGenerator in Keras' order, so images
    and the next layer's initial weights equal Keras'."""
    images = (np.random.default_rng(0).random((4, 16, 16, 3)) * 255).astype("float32")

    def run(lib):
        fresh(lib)
        jitter = lib.layers.RandomColorJitter(brightness_factor=0.2, contrast_factor=0.2,
                                              saturation_factor=0.2, hue_factor=0.2, seed=seed)
        outs = [np.asarray(jitter(images, training=True).detach().numpy()) for _ in range(2)]
        dense = lib.layers.Dense(2)
        dense.build((None, 3))
        return outs + [np.asarray(dense.kernel.numpy())]

    for want, got in zip(run(keras), run(kestrel)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
