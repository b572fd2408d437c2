"""Dtype policies swept over layers, models and recurrent layers, against real Keras 3."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402

import kestrel  # noqa: E402

POLICIES = ["mixed_float16", "mixed_bfloat16", "float16", "bfloat16", "float64"]

LAYERS = {  # name -> (builder taking a library, input shape, how it is called)
    "Dense": (lambda K: K.layers.Dense(3), (5,), "one"),
    "EinsumDense": (lambda K: K.layers.EinsumDense("ab,bc->ac", 3), (5,), "one"),
    "Conv2D": (lambda K: K.layers.Conv2D(2, 3), (6, 6, 2), "one"),
    "Conv2DTranspose": (lambda K: K.layers.Conv2DTranspose(2, 3), (6, 6, 2), "one"),
    "DepthwiseConv2D": (lambda K: K.layers.DepthwiseConv2D(3), (6, 6, 2), "one"),
    "BatchNormalization": (lambda K: K.layers.BatchNormalization(), (6, 6, 2), "one"),
    "LayerNormalization": (lambda K: K.layers.LayerNormalization(), (6, 5), "one"),
    "RMSNormalization": (lambda K: K.layers.RMSNormalization(), (6, 5), "one"),
    "UnitNormalization": (lambda K: K.layers.UnitNormalization(), (6, 5), "one"),
    "PReLU": (lambda K: K.layers.PReLU(), (5,), "one"),
    "Dropout": (lambda K: K.layers.Dropout(0.5), (5,), "one"),
    "Identity": (lambda K: K.layers.Identity(), (5,), "one"),
    "Add": (lambda K: K.layers.Add(), (5,), "pair"),
    "Concatenate": (lambda K: K.layers.Concatenate(), (5,), "pair"),
    "Attention": (lambda K: K.layers.Attention(), (6, 5), "pair"),
    "AdditiveAttention": (lambda K: K.layers.AdditiveAttention(), (6, 5), "pair"),
    "GroupQueryAttention": (lambda K: K.layers.GroupQueryAttention(2, 2, 1), (6, 4), "qv"),
}
# Keras' torch matmul returns float32 for float64 operands, so these differ eagerly there
KERAS_FLOAT64_MATMUL = {"Attention", "AdditiveAttention"}


@pytest.fixture(params=POLICIES)
def policy(request):
    yield from _global_policy(request.param)


def _global_policy(name):
    keras.mixed_precision.set_global_policy(name)
    kestrel.mixed_precision.set_global_policy(name)
    yield name
    keras.mixed_precision.set_global_policy("float32")
    kestrel.mixed_precision.set_global_policy("float32")


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _policy_name(config_dtype) -> str:
    """The policy name in a layer config's `dtype` (an InputLayer's is a plain string)."""
    return config_dtype["config"]["name"] if isinstance(config_dtype, dict) else config_dtype


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _call(layer, how, x):
    if how == "one":
        return layer(x)
    return layer(x, x) if how == "qv" else layer([x, x])


def _layer_dtypes(K, name, eager=True):
    """Output dtypes (eager, symbolic) and the policy facts of layer `name` in library `K`."""
    build, shape, how = LAYERS[name]
    layer = build(K)
    x = np.random.default_rng(0).random((2, *shape)).astype("float32")
    eager_dtype = _dtype_name(_first(_call(layer, how, x)).dtype)
    symbolic = _dtype_name(_first(_call(layer, how, K.Input(shape))).dtype)
    return {
        "eager": eager_dtype if eager else None, "symbolic": symbolic,
        "weights": sorted({_dtype_name(w.dtype) for w in layer.weights}),
        "dtype": layer.dtype, "compute_dtype": layer.compute_dtype,
        "variable_dtype": layer.variable_dtype, "policy": layer.dtype_policy.name,
        "config": _policy_name(layer.get_config()["dtype"]),
    }


@pytest.mark.parametrize("name", LAYERS)
def test_layer_dtypes_as_keras(policy, name):
    eager = not (policy == "float64" and name in KERAS_FLOAT64_MATMUL)
    assert _layer_dtypes(kestrel, name, eager) == _layer_dtypes(keras, name, eager)


def test_float64_attention_stays_float64_where_keras_matmul_drops_to_float32():
    for _ in _global_policy("float64"):
        x = np.random.default_rng(0).random((2, 6, 5)).astype("float32")
        assert keras.layers.Attention()([x, x]).dtype == torch.float32
        assert kestrel.layers.Attention()([x, x]).dtype == torch.float64


def _recurrent_dtypes(K, cls):
    """Dtypes of a masked recurrent layer's outputs and states, of a Bidirectional one (eager
    and symbolic) and of the input gradient, under the current policy."""
    x = np.random.default_rng(0).random((2, 4, 5)).astype("float32")
    x[0, 2:] = 0.0
    layer = getattr(K.layers, cls)(3, return_sequences=True, return_state=True)
    outputs = layer(K.layers.Masking()(x))
    bidirectional = K.layers.Bidirectional(getattr(K.layers, cls)(3))
    inputs = torch.tensor(x, requires_grad=True)
    getattr(K.layers, cls)(3)(inputs).float().sum().backward()
    return ([_dtype_name(o.dtype) for o in outputs], _dtype_name(bidirectional(x).dtype),
            _dtype_name(bidirectional(K.Input((4, 5))).dtype), _dtype_name(inputs.grad.dtype))


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "SimpleRNN"])
def test_recurrent_layers_run_under_mixed_float16_on_cpu_as_keras(cls):
    for _ in _global_policy("mixed_float16"):
        assert _recurrent_dtypes(kestrel, cls) == _recurrent_dtypes(keras, cls)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_batch_normalization_under_half_policies_trains_and_infers_as_keras(name):
    def dtypes(K):
        layer = K.layers.BatchNormalization(center=False)
        x = np.random.default_rng(0).random((4, 5)).astype("float32")
        return (_dtype_name(layer(x, training=True).dtype), _dtype_name(layer(x).dtype),
                _dtype_name(layer.moving_mean.dtype))
    for _ in _global_policy(name):
        assert dtypes(kestrel) == dtypes(keras)


def _models(K):
    """A Sequential and a functional model (float32 softmax head, as the keras.io guide)."""
    sequential = K.Sequential([K.Input((4,)), K.layers.Dense(3, activation="relu"),
                               K.layers.BatchNormalization(), K.layers.Dense(2)])
    inputs = K.Input((4,))
    logits = K.layers.Dense(2)(K.layers.Dense(3)(inputs))
    functional = K.Model(inputs, K.layers.Activation("softmax", dtype="float32")(logits))
    return {"sequential": sequential, "functional": functional}


def _trained_facts(K, model, tmp_path):
    """What fit, predict, save and load give for `model` under the current policy."""
    data = np.random.default_rng(0).random((16, 6)).astype("float32")
    x, y = data[:, :4], data[:, 4:]
    model.compile("adam", "mse", metrics=["mae"])
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = str(tmp_path / f"{K.__name__}.keras")
    model.save(path)
    loaded = K.saving.load_model(path)
    return {
        "history": {k: [type(v) for v in values] for k, values in history.history.items()},
        "call": _dtype_name(model(x).dtype),
        "outputs": [_dtype_name(t.dtype) for t in model.outputs],
        "config": [_policy_name(layer["config"]["dtype"])
                   for layer in model.get_config()["layers"]],
        "loaded_policies": [layer.dtype_policy.name for layer in loaded.layers],
        "loaded_weights": [_dtype_name(w.dtype) for w in loaded.weights],
        "weights": [_dtype_name(w.dtype) for w in model.weights],
        "predict": [str(model.predict(x, verbose=0).dtype),
                    str(loaded.predict(x, verbose=0).dtype),
                    str(np.asarray(model.predict_on_batch(x)).dtype)],
    }


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_models_train_save_and_load_under_mixed_bfloat16_as_keras(kind, tmp_path):
    for _ in _global_policy("mixed_bfloat16"):
        ours = _trained_facts(kestrel, _models(kestrel)[kind], tmp_path)
        theirs = _trained_facts(keras, _models(keras)[kind], tmp_path)
    if kind == "sequential":  # Keras hands bfloat16 as ml_dtypes' type; Kestrel as float32
        assert theirs.pop("predict") == ["bfloat16"] * 3
        assert ours.pop("predict") == ["float32"] * 3
    assert ours == theirs


def _custom_step_dtypes(K):
    """(prediction, loss) dtypes a custom `train_step` sees, and the history's value type."""
    class StepModel(K.Model):
        def train_step(self, *args):
            x, y = args[-1]
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
            self.seen = (_dtype_name(y_pred.dtype), _dtype_name(loss.dtype))
            return {"loss": loss}

    inputs = K.Input((4,))
    model = StepModel(inputs, K.layers.Dense(2)(inputs))
    model.compile("sgd", "mse")
    data = np.random.default_rng(0).random((8, 6)).astype("float32")
    history = model.fit(data[:, :4], data[:, 4:], epochs=1, batch_size=8, verbose=0)
    return model.seen, type(history.history["loss"][0])


def test_custom_train_step_loss_dtype_as_keras():
    for _ in _global_policy("mixed_bfloat16"):
        assert _custom_step_dtypes(kestrel) == _custom_step_dtypes(keras)


def _float32_head_dtypes(K, jit_compile):
    """Output dtypes of a mixed_float16 Sequential ending in `Dense(dtype="float32")`: called,
    predicted before and after fit."""
    model = K.Sequential([K.Input((4, 5)), K.layers.LSTM(3), K.layers.Flatten(),
                          K.layers.Dense(1, dtype="float32")])
    x = np.random.default_rng(0).random((4, 4, 5)).astype("float32")
    before = [_dtype_name(model(x).dtype), str(model.predict(x, verbose=0).dtype)]
    model.compile("adam", "mse", jit_compile=jit_compile)
    model.fit(x, np.ones((4, 1), "float32"), epochs=1, verbose=0)
    return before + [str(model.predict(x, verbose=0).dtype), _dtype_name(model(x).dtype)]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_float32_dense_head_of_a_mixed_model_computes_in_float32_as_keras(jit_compile):
    for _ in _global_policy("mixed_float16"):
        assert _float32_head_dtypes(kestrel, jit_compile) == _float32_head_dtypes(keras, False)


def _preprocessing_dtypes(K):
    """(eager, symbolic) output dtypes of CategoryEncoding on ints and Resizing on floats."""
    encoding = K.layers.CategoryEncoding(5)
    resizing = K.layers.Resizing(2, 2)
    images = np.random.default_rng(0).random((1, 4, 4, 3)).astype("float32")
    return [(_dtype_name(encoding(np.array([[1, 2]])).dtype),
             _dtype_name(encoding(K.Input((2,), dtype="int32")).dtype)),
            (_dtype_name(resizing(images).dtype), _dtype_name(resizing(K.Input((4, 4, 3))).dtype))]


def test_category_encoding_and_resizing_dtypes_as_keras(policy):
    assert _preprocessing_dtypes(kestrel) == _preprocessing_dtypes(keras)
