"""The keras.io "masking and padding" guide's patterns, against real Keras 3 (torch backend)."""
import os

import numpy as np
import pytest

import kestrel

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def _temporal_split(lib):
    class TemporalSplit(lib.layers.Layer):
        def call(self, inputs):
            return lib.ops.split(inputs, 2, axis=1)

        def compute_mask(self, inputs, mask=None):
            return None if mask is None else lib.ops.split(mask, 2, axis=1)

    return TemporalSplit()


def _temporal_softmax(lib):
    class TemporalSoftmax(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            assert mask is not None
            weights = lib.ops.expand_dims(lib.ops.cast(mask, "float32"), -1)
            exp = lib.ops.exp(inputs) * weights
            return exp / lib.ops.sum(exp * weights, axis=-1, keepdims=True)

    return TemporalSoftmax()


def test_layer_with_own_compute_mask_splits_the_eager_mask_like_keras():
    tokens = np.array([[3, 4, 0, 0], [1, 0, 0, 0]])
    masks = []
    for lib in (kestrel, keras):
        embedded = lib.layers.Embedding(10, 2, mask_zero=True)(tokens)
        first, second = _temporal_split(lib)(embedded)
        masks.append([np.asarray(first._keras_mask), np.asarray(second._keras_mask)])
    for ours, theirs in zip(*masks):
        np.testing.assert_array_equal(ours, theirs)


def test_symbolic_tensors_carry_masks_like_keras():
    specs = []
    for lib in (kestrel, keras):
        inputs = lib.Input(shape=(None,), dtype="int32")
        x = lib.layers.Embedding(50, 4, mask_zero=True)(inputs)
        relu = lib.layers.Activation("relu")(x)
        pooled = lib.layers.GlobalAveragePooling1D()(relu)
        dense = lib.layers.Dense(3)(pooled)
        specs.append((tuple(relu._keras_mask.shape), relu._keras_mask.dtype,
                      getattr(pooled, "_keras_mask", None), getattr(dense, "_keras_mask", None)))
    assert specs[0] == specs[1] == ((None, None), "bool", None, None)


def test_mask_consumer_in_a_functional_model_matches_keras():
    tokens = np.array([[3, 4, 0, 0, 0], [1, 2, 5, 6, 0]], dtype="int32")
    outputs = []
    weights = None
    for lib in (kestrel, keras):
        inputs = lib.Input(shape=(None,), dtype="int32")
        x = lib.layers.Embedding(10, 8, mask_zero=True)(inputs)
        x = lib.layers.Dense(1)(x)
        model = lib.Model(inputs, _temporal_softmax(lib)(x))
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        outputs.append(np.asarray(model.predict(tokens, verbose=0)))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
