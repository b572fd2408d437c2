"""Output dtypes under mixed policies, eager and symbolic, against real Keras 3."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402

import kestrel  # noqa: E402

LAYERS = {  # name -> (builder taking a library, inputs shape)
    "LayerNormalization": (lambda K: K.layers.LayerNormalization(), (6, 5)),
    "BatchNormalization": (lambda K: K.layers.BatchNormalization(), (6, 5)),
    "Normalization": (lambda K: K.layers.Normalization(mean=0.5, variance=2.0), (6, 5)),
    "GroupNormalization": (lambda K: K.layers.GroupNormalization(groups=5), (6, 5)),
    "Dense3D": (lambda K: K.layers.Dense(3), (6, 5)),
    "Dense2D": (lambda K: K.layers.Dense(3), (5,)),
    "Conv1D": (lambda K: K.layers.Conv1D(2, 3), (6, 5)),
    "Embedding": (lambda K: K.layers.Embedding(10, 3), (6,)),
    "MultiHeadAttention": (lambda K: K.layers.MultiHeadAttention(2, 3), (6, 5)),
}


def _dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def _dtypes(K, name):
    """(eager, symbolic) output dtype names of layer `name` built with library `K`."""
    build, shape = LAYERS[name]
    if name == "Embedding":
        x = np.random.default_rng(0).integers(0, 10, (4, *shape))
    else:
        x = np.random.default_rng(0).random((4, *shape)).astype("float32")
    layer = build(K)
    call = (lambda t: layer(t, t)) if name == "MultiHeadAttention" else layer
    eager = call(x)
    symbolic = call(K.Input(shape, dtype="int32" if name == "Embedding" else "float32"))
    return _dtype_name(eager), _dtype_name(symbolic)


@pytest.fixture(params=["mixed_bfloat16", "mixed_float16"])
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    kestrel.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")
    kestrel.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", LAYERS)
def test_layer_outputs_in_the_compute_dtype_as_keras(policy, name):
    assert _dtypes(kestrel, name) == _dtypes(keras, name) == (policy[6:],) * 2


def test_user_layer_keeps_its_explicit_float32_and_model_its_float32_head(policy):
    class Head(kestrel.layers.Layer):
        def call(self, x):
            return kestrel.ops.cast(x, "float32")

    inputs = kestrel.Input((4,))
    hidden = kestrel.layers.Dense(3)(inputs)
    model = kestrel.Model(inputs, [Head()(hidden),
                                   kestrel.layers.Activation("softmax", dtype="float32")(hidden)])
    for out in model(torch.ones(2, 4)):
        assert out.dtype == torch.float32
