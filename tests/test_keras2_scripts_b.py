"""Classic Keras 2 `examples/` scripts (reuters_mlp, mnist_net2net, ...) with `keras` renamed to
`kestrel`: the Keras 2 spellings they rely on, checked against real Keras 3 (torch backend) on
the part of the API both share, and against Keras 2's documented behaviour where Keras 3
dropped the spelling (noted per test).
"""
import json
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402

RNG = np.random.default_rng(0)


def test_reuters_mlp_integer_hyperparameters_from_numpy():
    """reuters_mlp: `num_classes = np.max(y_train) + 1` is a NumPy int, and Keras 2 took it
    as `Dense(num_classes)` (Keras 3 refuses it). Kestrel takes NumPy ints where Keras takes
    ints, keeps Python ints in the config, and builds what Keras builds from the int."""
    y = np.array([3, 0, 45])
    num_classes = np.max(y) + 1
    x = RNG.random((3, 6)).astype("float32")
    got = {}
    for lib, i in ((kestrel, np.int64), (keras, int)):  # Keras 3 refuses some NumPy ints
        k = _fresh(lib)
        got[lib] = k.Sequential([
            k.Input((6,)), k.layers.Dense(i(num_classes)), k.layers.RepeatVector(i(2)),
            k.layers.Reshape((i(2), i(23), 2)), k.layers.Permute((i(2), 1, 3)),
            k.layers.Reshape((-1,))])
    for a, b in zip(got[kestrel].layers, got[keras].layers):
        assert (a.name, a.count_params()) == (b.name, b.count_params())
        assert a.get_config() == b.get_config()
    assert type(got[kestrel].layers[0].units) is int
    json.dumps(got[kestrel].get_config())
    np.testing.assert_allclose(got[kestrel].predict(x, verbose=0),
                               got[keras].predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    emb = kestrel.layers.Embedding(np.max(y) + 1, np.int64(4))
    assert (emb.input_dim, emb.output_dim) == (46, 4) and type(emb.input_dim) is int
    with pytest.raises(ValueError, match="Dense 'bad': units must be a positive integer. "
                                         "Received: units=2.0"):
        kestrel.layers.Dense(2.0, name="bad")


def test_mnist_net2net_layers_built_with_initial_weights():
    """mnist_net2net: `Conv2D(..., weights=[kernel, bias])` and `Dense(..., weights=...)` in
    `model.add`. Keras 2's base Layer took `weights` and set them once the layer was built
    (Keras 3 refuses the argument); the model then computes what Keras 3 computes after
    `set_weights`. The argument is not part of the config."""
    rng = np.random.default_rng(1)
    conv_w = [rng.normal(size=(3, 3, 1, 4)).astype("float32"), rng.normal(size=4).astype("float32")]
    bn_w = [rng.random(4).astype("float32") + 0.5 for _ in range(4)]
    dense_w = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")]
    x = rng.random((2, 5, 5, 1)).astype("float32")
    got = {}
    for lib in (kestrel, keras):
        k = _fresh(lib)
        initial = (lambda w: {"weights": w}) if lib is kestrel else (lambda w: {})
        model = k.Sequential([k.Input((5, 5, 1))])
        model.add(k.layers.Conv2D(4, 3, padding="same", **initial(conv_w)))
        model.add(k.layers.BatchNormalization(**initial(bn_w)))
        model.add(k.layers.GlobalAveragePooling2D())
        model.add(k.layers.Dense(3, **initial(dense_w)))
        if lib is keras:
            for layer, w in zip([model.layers[i] for i in (0, 1, 3)], (conv_w, bn_w, dense_w)):
                layer.set_weights(w)
        got[lib] = model
    for a, b in zip(got[kestrel].layers, got[keras].layers):
        assert a.get_config() == b.get_config()
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    np.testing.assert_allclose(got[kestrel].predict(x, verbose=0),
                               got[keras].predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    dense = kestrel.layers.Dense(3, weights=dense_w[:1], name="short")
    with pytest.raises(ValueError, match="'short' with a weight list of length 1, but the "
                                         "layer was expecting 2 weights"):
        dense(np.ones((1, 4), "float32"))


def test_imdb_cnn_embedding_input_length_warns_as_keras_3():
    """imdb_cnn, imdb_lstm, ...: `Embedding(max_features, dims, input_length=maxlen)` warns
    with Keras 3's deprecation message only (the user passed no `input_shape`), and the layer
    is built at once, as in Keras 2."""
    for lib in (kestrel, keras):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = lib.Sequential([lib.layers.Embedding(50, 4, input_length=7)])
        messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert messages == ["Argument `input_length` is deprecated. Just remove it."], lib
    assert model.built is False  # Keras 3 drops the length; Keras 2 (and Kestrel) keep it
    model = kestrel.Sequential([kestrel.layers.Embedding(50, 4, input_length=7)])
    assert model.output_shape == (None, 7, 4)


def test_keras2_convolutional_module_names_of_classic_scripts():
    """Classic scripts import pooling from `keras.layers.convolutional` (Keras 2.3 still
    re-exported it there) and use Keras 2's `Deconvolution2D` alias of `Conv2DTranspose`."""
    from kestrel.layers.convolutional import (AveragePooling1D, Deconv2D, MaxPooling2D,
                                              MaxPooling3D)
    from kestrel.layers import Deconvolution2D, Deconvolution3D

    layers = kestrel.layers
    assert (MaxPooling2D, MaxPooling3D, AveragePooling1D) == (
        layers.MaxPooling2D, layers.MaxPooling3D, layers.AveragePooling1D)
    assert Deconvolution2D is Deconv2D is layers.Conv2DTranspose
    assert Deconvolution3D is layers.Conv3DTranspose
    x = RNG.random((1, 4, 4, 2)).astype("float32")
    deconv = Deconvolution2D(3, 2, strides=2, name="up")
    assert tuple(deconv(x).shape) == (1, 8, 8, 3)
    assert kestrel.layers.serialize(deconv)["class_name"] == "Conv2DTranspose"


def test_numpy_integer_sizes_of_convolutions_recurrent_and_resizing_layers():
    """Conv filters, recurrent units and image sizes given as NumPy ints (Keras 2 takes them;
    Keras 3 refuses some): the configs hold the Python ints Keras builds from, and the models
    match."""
    x = RNG.random((2, 6, 6, 3)).astype("float32")
    got = {}
    for lib, n in ((kestrel, np.int64), (keras, int)):
        k = _fresh(lib)
        got[lib] = k.Sequential([
            k.Input((6, 6, 3)), k.layers.Resizing(n(8), n(8)), k.layers.CenterCrop(n(6), n(6)),
            k.layers.Conv2D(n(4), 3), k.layers.SeparableConv2D(n(2), 1),
            k.layers.Reshape((16, 2)), k.layers.LSTM(n(3), return_sequences=True),
            k.layers.GRU(n(2))])
    for a, b in zip(got[kestrel].layers, got[keras].layers):
        assert (a.name, a.count_params()) == (b.name, b.count_params())
        assert json.loads(json.dumps(a.get_config())) == json.loads(json.dumps(b.get_config()))
    got[kestrel].set_weights(got[keras].get_weights())
    np.testing.assert_allclose(got[kestrel].predict(x, verbose=0),
                               got[keras].predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="filters must be a positive integer"):
        kestrel.layers.Conv2D(np.float32(2), 3)


def test_cudnn_lstm_is_torchs_lstm_with_two_biases(tmp_path):
    """Keras 2's CuDNNLSTM: kernel, recurrent kernel and a bias (8 * units,) holding the input
    then the recurrent biases, as torch.nn.LSTM computes them; with the recurrent half zero it
    is real Keras' LSTM. Its config has Keras 2's keys; it trains, saves and loads."""
    import torch

    x = RNG.random((3, 5, 2)).astype("float32")
    layer = kestrel.layers.CuDNNLSTM(4, return_sequences=True, name="rnn")
    looped = kestrel.layers.CuDNNLSTM(4, return_sequences=True, use_cudnn=False)
    out = layer(x)
    kernel, recurrent, bias = layer.get_weights()
    assert (kernel.shape, recurrent.shape, bias.shape) == ((2, 16), (4, 16), (32,))
    np.testing.assert_array_equal(bias[20:24], 1.0)  # unit_forget_bias: recurrent forget gate
    bias = RNG.normal(size=32).astype("float32")
    layer.set_weights([kernel, recurrent, bias])
    looped(x)
    looped.set_weights(layer.get_weights())
    reference = torch.nn.LSTM(2, 4, batch_first=True)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", kernel.T), ("weight_hh_l0", recurrent.T),
                            ("bias_ih_l0", bias[:16]), ("bias_hh_l0", bias[16:])):
            getattr(reference, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
        expected = reference(torch.from_numpy(x))[0].numpy()
    for rnn in (layer, looped):  # torch's fused kernel and the step-by-step loop
        np.testing.assert_allclose(np.asarray(rnn(x).detach()), expected, rtol=1e-5, atol=1e-6)
    k = _fresh(keras)
    lstm = k.layers.LSTM(4, return_sequences=True)
    lstm(x)
    lstm.set_weights([kernel, recurrent, bias[:16]])
    layer.set_weights([kernel, recurrent, np.concatenate([bias[:16], np.zeros(16, "float32")])])
    np.testing.assert_allclose(np.asarray(layer(x).detach()), np.asarray(lstm(x).detach()),
                               rtol=1e-5, atol=1e-6)
    assert list(layer.get_config())[:7] == ["name", "trainable", "dtype", "return_sequences",
                                            "return_state", "go_backwards", "stateful"]
    assert "activation" not in layer.get_config() and "dropout" not in layer.get_config()
    model = kestrel.Sequential([kestrel.Input((5, 2)), kestrel.layers.CuDNNLSTM(3),
                                kestrel.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, np.ones((3, 1)), epochs=1, verbose=0)
    for path in (tmp_path / "m.keras", tmp_path / "m.h5"):
        model.save(path)
        loaded = kestrel.saving.load_model(path)
        assert type(loaded.layers[0]).__name__ == "CuDNNLSTM"
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                                   rtol=1e-6, atol=1e-6)
    assert out.shape == (3, 5, 4)


def test_cudnn_gru_is_keras_gru_reset_after_with_a_flat_bias(tmp_path):
    """Keras 2's CuDNNGRU: GRU(reset_after=True) whose (2, 3 * units) bias is one flat
    (6 * units,) vector; the same numbers as real Keras' GRU, Keras 2's config keys."""
    x = RNG.random((3, 5, 2)).astype("float32")
    layer = kestrel.layers.CuDNNGRU(4, return_sequences=True)
    looped = kestrel.layers.CuDNNGRU(4, return_sequences=True, use_cudnn=False)
    layer(x), looped(x)
    kernel, recurrent, bias = layer.get_weights()
    assert (kernel.shape, recurrent.shape, bias.shape) == ((2, 12), (4, 12), (24,))
    bias = RNG.normal(size=24).astype("float32")
    layer.set_weights([kernel, recurrent, bias])
    looped.set_weights([kernel, recurrent, bias])
    np.testing.assert_array_equal(layer.get_weights()[2], bias)
    k = _fresh(keras)
    gru = k.layers.GRU(4, return_sequences=True, reset_after=True)
    gru(x)
    gru.set_weights([kernel, recurrent, bias.reshape(2, 12)])
    for rnn in (layer, looped):  # torch's fused kernel and the step-by-step loop
        np.testing.assert_allclose(np.asarray(rnn(x).detach()), np.asarray(gru(x).detach()),
                                   rtol=1e-5, atol=1e-6)
    config = layer.get_config()
    assert "reset_after" not in config and "unit_forget_bias" not in config
    assert kestrel.layers.CuDNNGRU.from_config(config).get_config() == config
    model = kestrel.Sequential([kestrel.Input((5, 2)), kestrel.layers.CuDNNGRU(3)])
    path = tmp_path / "m.h5"
    model.save(path)
    np.testing.assert_allclose(kestrel.saving.load_model(path).predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
