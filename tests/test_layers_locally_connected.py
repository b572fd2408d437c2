"""LocallyConnected1D/2D against NumPy references written from Keras 2's documented layouts.

Each reference follows its own implementation mode's definition with plain loops: mode 1
multiplies each output position's patch by that position's kernel; mode 2 multiplies the
flattened input by the dense kernel masked to the connected pairs; mode 3 scatters its vector
into the (output, input) matrix at the sorted connected index pairs.
"""
import itertools

import numpy as np
import pytest
import torch

import kestrel
from kestrel.layers.locally_connected import LocallyConnected1D, LocallyConnected2D
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(0)


def _windows(in_spatial, kernel, strides, padding):
    """{output position: [connected input positions]} as Keras 2 connects them."""
    out_spatial = [-(-n // s) if padding == "same" else (n - k) // s + 1
                   for n, k, s in zip(in_spatial, kernel, strides)]
    result = {}
    for out in itertools.product(*map(range, out_spatial)):
        ranges = []
        for d, o in enumerate(out):
            start = o * strides[d] - (kernel[d] // 2 if padding == "same" else 0)
            ranges.append(range(max(0, start), min(in_spatial[d], start + kernel[d])))
        result[out] = list(itertools.product(*ranges))
    return result, tuple(out_spatial)


def _dims(spatial, channels, channels_last):
    return (*spatial, channels) if channels_last else (channels, *spatial)


def _at(spatial, channel, channels_last):
    return (*spatial, channel) if channels_last else (channel, *spatial)


def reference(x, kernel, bias, implementation, kernel_size, strides, padding, channels_last,
              filters):
    batch = x.shape[0]
    in_spatial = x.shape[1:-1] if channels_last else x.shape[2:]
    channels = x.shape[-1] if channels_last else x.shape[1]
    windows, out_spatial = _windows(in_spatial, kernel_size, strides, padding)
    in_dims = _dims(in_spatial, channels, channels_last)
    out_dims = _dims(out_spatial, filters, channels_last)
    n_in, n_out = int(np.prod(in_dims)), int(np.prod(out_dims))
    if implementation == 1:
        y = np.zeros((batch, *out_dims))
        for p, (out, inputs) in enumerate(windows.items()):
            lo = [o * s for o, s in zip(out, strides)]
            window = tuple(slice(a, a + k) for a, k in zip(lo, kernel_size))
            patch = x[(slice(None), *window, slice(None))] if channels_last else \
                x[(slice(None), slice(None), *window)]
            values = patch.reshape(batch, -1) @ kernel[p]
            for f in range(filters):
                y[(slice(None), *_at(out, f, channels_last))] = values[:, f]
    else:
        dense = np.zeros((n_in, n_out))
        pairs = []
        for out, inputs in windows.items():
            for pos in inputs:
                for c in range(channels):
                    for f in range(filters):
                        i = np.ravel_multi_index(_at(pos, c, channels_last), in_dims)
                        o = np.ravel_multi_index(_at(out, f, channels_last), out_dims)
                        pairs.append((o, i))
        if implementation == 2:
            full = kernel.reshape(n_in, n_out)
            for o, i in pairs:
                dense[i, o] = full[i, o]
        else:
            for value, (o, i) in zip(kernel, sorted(pairs)):
                dense[i, o] = value
        y = (x.reshape(batch, n_in) @ dense).reshape(batch, *out_dims)
    if bias is not None:  # Keras 2's bias_add: the bias reshaped to the output's layout
        y = y + bias.reshape(out_dims)
    return y


CASES = [  # (layer, input shape, kwargs)
    (LocallyConnected1D, (2, 9, 3), {"filters": 4, "kernel_size": 3}),
    (LocallyConnected1D, (2, 10, 2), {"filters": 3, "kernel_size": 4, "strides": 3}),
    (LocallyConnected1D, (2, 3, 8), {"filters": 2, "kernel_size": 2, "strides": 2,
                                     "data_format": "channels_first"}),
    (LocallyConnected1D, (2, 7, 3), {"filters": 2, "kernel_size": 3, "padding": "same"}),
    (LocallyConnected1D, (2, 8, 2), {"filters": 2, "kernel_size": 4, "strides": 3,
                                     "padding": "same", "data_format": "channels_first"}),
    (LocallyConnected2D, (2, 6, 5, 3), {"filters": 4, "kernel_size": (3, 2)}),
    (LocallyConnected2D, (2, 7, 6, 2), {"filters": 3, "kernel_size": 3, "strides": (2, 1)}),
    (LocallyConnected2D, (2, 2, 5, 6), {"filters": 3, "kernel_size": (2, 3), "strides": 2,
                                        "data_format": "channels_first"}),
    (LocallyConnected2D, (2, 5, 6, 2), {"filters": 2, "kernel_size": (2, 3), "strides": 2,
                                        "padding": "same"}),
    (LocallyConnected2D, (2, 2, 5, 4), {"filters": 3, "kernel_size": 3, "padding": "same",
                                        "data_format": "channels_first"}),
]


def _implementations(kwargs):
    return (2, 3) if kwargs.get("padding") == "same" else (1, 2, 3)


@pytest.mark.parametrize("layer_cls,shape,kwargs", CASES)
def test_matches_numpy_reference_in_every_implementation(layer_cls, shape, kwargs):
    x = RNG.normal(size=shape).astype("float32")
    for implementation in _implementations(kwargs):
        layer = layer_cls(**kwargs, implementation=implementation)
        layer.build(shape)
        kernel = RNG.normal(size=tuple(layer.kernel.shape)).astype("float32")
        bias = RNG.normal(size=tuple(layer.bias.shape)).astype("float32")
        layer.set_weights([kernel, bias])
        got = layer(torch.tensor(x)).detach().numpy()
        want = reference(x.astype("float64"), kernel, bias, implementation,
                         layer.kernel_size, layer.strides, layer.padding,
                         layer.data_format == "channels_last", kwargs["filters"])
        assert got.shape == want.shape == layer.compute_output_shape(shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_keras2_kernel_shapes():
    shapes = {}
    for implementation in (1, 2, 3):
        layer = LocallyConnected2D(5, (3, 2), strides=(2, 1), implementation=implementation)
        layer.build((None, 7, 4, 3))
        shapes[implementation] = [tuple(w.shape) for w in layer.get_weights()]
    assert shapes[1] == [(3 * 3, 3 * 2 * 3, 5), (3, 3, 5)]
    assert shapes[2] == [(7, 4, 3, 3, 3, 5), (3, 3, 5)]
    assert shapes[3] == [(9 * 6 * 3 * 5,), (3, 3, 5)]
    layer = LocallyConnected1D(4, 3, implementation=2, data_format="channels_first")
    layer.build((None, 6, 10))
    assert [tuple(w.shape) for w in layer.get_weights()] == [(6, 10, 4, 8), (8, 4)]


@pytest.mark.parametrize("implementation", [1, 2, 3])
def test_layer_harness(implementation):
    run_layer_test(LocallyConnected2D, {"filters": 3, "kernel_size": 2, "activation": "relu",
                                        "implementation": implementation},
                   input_shape=(2, 4, 5, 2), expected_output_shape=(2, 3, 4, 3),
                   expected_num_trainable_weights=2)
    run_layer_test(LocallyConnected1D, {"filters": 2, "kernel_size": 3, "use_bias": False,
                                        "implementation": implementation},
                   input_shape=(2, 6, 3), expected_output_shape=(2, 4, 2),
                   expected_num_trainable_weights=1)


def test_config_round_trip_and_model(tmp_path):
    layer = LocallyConnected1D(3, 2, strides=2, padding="same", implementation=3,
                               kernel_regularizer="l2", activation="tanh", name="lc")
    config = layer.get_config()
    assert config["kernel_size"] == [2] and config["implementation"] == 3
    clone = LocallyConnected1D.from_config(config)
    assert clone.get_config() == config
    model = kestrel.Sequential([kestrel.layers.Input((8, 2)), layer, kestrel.layers.Flatten(),
                                kestrel.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 8, 2), "float32"), np.ones((4, 1), "float32"), epochs=1, verbose=0)
    rebuilt = kestrel.models.model_from_json(model.to_json())
    rebuilt.set_weights(model.get_weights())
    x = RNG.normal(size=(3, 8, 2)).astype("float32")
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    for name in ("model.h5", "model.keras"):
        model.save(tmp_path / name)
        loaded = kestrel.models.load_model(tmp_path / name)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                                   rtol=1e-6)


def test_keras2_module_path():
    from kestrel.layers import local

    assert local.LocallyConnected2D is LocallyConnected2D


@pytest.mark.parametrize("kwargs,shape,match", [
    ({"padding": "same"}, (2, 6, 3), "implementation 2 or 3"),
    ({"implementation": 4}, (2, 6, 3), "implementation=4"),
    ({"padding": "full", "implementation": 2}, (2, 6, 3), "padding='full'"),
    ({}, (2, None, 3), "must be known"),
    ({"kernel_size": 7}, (2, 6, 3), "does not fit"),
])
def test_errors(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        layer = LocallyConnected1D(**{"filters": 2, "kernel_size": 3, **kwargs})
        layer.build(shape)
