"""`weights` / `get_weights()` come layer by layer as in Keras 3 (each layer's trainable then
non-trainable weights), so weight lists move between Keras and Kestrel; Keras 2 `.h5` files
keep Keras 2's order (all trainable weights first)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import torch

import kestrel


def build(lib, frozen=False):
    inputs = lib.Input((8, 8, 3))
    x = lib.layers.Conv2D(4, 3, name="c1")(inputs)
    x = lib.layers.BatchNormalization(name="bn")(x)
    inner_in = lib.Input((6, 6, 4))
    y = lib.layers.BatchNormalization(name="bn_inner")(inner_in)
    inner = lib.Model(inner_in, lib.layers.Conv2D(2, 1, name="c_inner")(y), name="inner")
    inner.trainable = not frozen
    x = inner(x)
    outputs = lib.layers.Dense(3, name="d")(lib.layers.Flatten()(x))
    return lib.Model(inputs, outputs)


def test_get_weights_moves_between_keras_and_kestrel():
    for frozen in (False, True):
        reference, model = build(keras, frozen), build(kestrel, frozen)
        rng = np.random.default_rng(0)
        values = [rng.uniform(0.5, 1.5, w.shape).astype("float32")
                  for w in reference.get_weights()]
        reference.set_weights(values)
        assert [w.shape for w in model.get_weights()] == [v.shape for v in values]
        model.set_weights(values)
        x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
        np.testing.assert_allclose(model.predict(x, verbose=0),
                                   reference.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
        assert len(model.trainable_weights) == len(reference.trainable_weights)


def test_keras2_h5_keeps_trainable_first_within_a_nested_model(tmp_path):
    model = build(kestrel)
    path = str(tmp_path / "w.h5")
    model.save_weights(path)
    import h5py
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in f["inner"].attrs["weight_names"]]
    assert names.index("c_inner/kernel:0") < names.index("bn_inner/moving_mean:0")
    clone = build(kestrel)
    clone.load_weights(path)
    for a, b in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)
