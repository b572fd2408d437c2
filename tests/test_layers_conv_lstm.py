import numpy as np
import pytest
import torch

import kestrel
from kestrel.layers import Dense, Flatten
from kestrel.layers.rnn.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, ConvLSTMCell
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(11)


def randomize(layer, scale=0.4):
    weights = [RNG.normal(size=w.shape).astype(np.float32) * scale for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


# ---------------------------------------------------------------- NumPy reference
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_conv2d(x, w, strides=(1, 1), padding="valid"):
    """Channels-last cross-correlation; `"same"` pads like TF (extra element at the end)."""
    kh, kw = w.shape[:2]
    if padding == "same":
        pads = []
        for n, k, s in zip(x.shape[1:3], (kh, kw), strides):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
    oh = (x.shape[1] - kh) // strides[0] + 1
    ow = (x.shape[2] - kw) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[-1]))
    for p in range(kh):
        for q in range(kw):
            patch = x[:, p:p + strides[0] * (oh - 1) + 1:strides[0],
                      q:q + strides[1] * (ow - 1) + 1:strides[1]]
            out += patch @ w[p, q]
    return out


def np_conv_lstm(x, kernel, recurrent_kernel, bias, h, c, strides=(1, 1), padding="valid",
                 go_backwards=False):
    """Returns (outputs in reading order (batch, time, ...), h, c)."""
    steps = x[:, ::-1] if go_backwards else x
    outputs = []
    for t in range(steps.shape[1]):
        z = np_conv2d(steps[:, t], kernel, strides, padding) + bias \
            + np_conv2d(h, recurrent_kernel, (1, 1), "same")
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, 1), h, c


# ---------------------------------------------------------------- harness
@pytest.mark.parametrize("cls, kwargs, in_shape, out_shape", [
    (ConvLSTM2D, {"filters": 3, "kernel_size": 3}, (2, 3, 5, 5, 2), (2, 3, 3, 3)),
    (ConvLSTM2D, {"filters": 3, "kernel_size": 3, "padding": "same", "return_sequences": True},
     (2, 3, 5, 5, 2), (2, 3, 5, 5, 3)),
    (ConvLSTM2D, {"filters": 3, "kernel_size": 3, "return_state": True}, (2, 3, 5, 5, 2),
     [(2, 3, 3, 3)] * 3),
    (ConvLSTM2D, {"filters": 3, "kernel_size": 2, "strides": 2, "dropout": 0.3,
                  "recurrent_dropout": 0.2, "seed": 1}, (2, 3, 5, 5, 2), (2, 2, 2, 3)),
    (ConvLSTM2D, {"filters": 3, "kernel_size": 3, "use_bias": False,
                  "data_format": "channels_first"}, (2, 3, 2, 5, 5), (2, 3, 3, 3)),
    (ConvLSTM1D, {"filters": 3, "kernel_size": 3, "padding": "same", "go_backwards": True},
     (2, 3, 6, 2), (2, 6, 3)),
    (ConvLSTM3D, {"filters": 2, "kernel_size": 2}, (2, 2, 3, 3, 3, 1), (2, 2, 2, 2, 2)),
])
def test_harness(cls, kwargs, in_shape, out_shape):
    count = 3 if kwargs.get("use_bias", True) else 2
    run_layer_test(cls, kwargs, input_shape=in_shape, expected_output_shape=out_shape,
                   expected_num_trainable_weights=count, expected_num_non_trainable_weights=0)


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("padding, strides, kernel_size", [
    ("same", 1, 3), ("valid", 1, 3), ("same", 2, 3), ("same", 1, 2)])  # k=2: uneven padding
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_matches_numpy_equations(padding, strides, kernel_size, return_sequences, go_backwards):
    x = RNG.normal(size=(2, 3, 5, 5, 2)).astype(np.float32)
    layer = ConvLSTM2D(3, kernel_size, strides=strides, padding=padding,
                       go_backwards=go_backwards,
                       return_sequences=return_sequences, return_state=True)
    _, state, _ = layer(torch.tensor(x))
    kernel, recurrent_kernel, bias = randomize(layer)
    h0, c0 = (RNG.normal(size=tuple(state.shape)).astype(np.float32) for _ in range(2))
    out, h, c = layer(torch.tensor(x), initial_state=[torch.tensor(h0), torch.tensor(c0)])
    seq, eh, ec = np_conv_lstm(x, kernel, recurrent_kernel, bias, h0, c0, (strides, strides),
                               padding, go_backwards)
    expected = seq if return_sequences else seq[:, -1]
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), eh, atol=1e-5)
    np.testing.assert_allclose(c.detach().numpy(), ec, atol=1e-5)


def test_channels_first_matches_channels_last():
    x = torch.randn(2, 3, 5, 5, 2)
    last = ConvLSTM2D(3, 3, padding="same", return_sequences=True)
    first = ConvLSTM2D(3, 3, padding="same", return_sequences=True,
                       data_format="channels_first")
    last(x), first(x.permute(0, 1, 4, 2, 3))
    first.set_weights(randomize(last))
    expected = last(x).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(first(x.permute(0, 1, 4, 2, 3)), expected, atol=1e-5, rtol=1e-5)


def test_conv_lstm1d_matches_2d_with_unit_width():
    x = torch.randn(2, 3, 6, 2)
    one, two = ConvLSTM1D(3, 3, padding="same"), ConvLSTM2D(3, (3, 1), padding="same")
    one(x), two(x.unsqueeze(3))
    weights = randomize(one)
    two.set_weights([weights[0][:, None], weights[1][:, None], weights[2]])
    torch.testing.assert_close(two(x.unsqueeze(3)).squeeze(2), one(x), atol=1e-5, rtol=1e-5)


def test_masked_final_step_keeps_the_previous_output_and_states():
    x = torch.randn(2, 3, 5, 5, 2)
    layer = ConvLSTM2D(3, 3, return_state=True)
    layer(x)
    randomize(layer)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    masked = layer(x, mask=mask)
    short, full = layer(x[:, :2]), layer(x)
    for got, a, b in zip(masked, short, full):
        torch.testing.assert_close(got[0], a[0])
        torch.testing.assert_close(got[1], b[1])


def test_stateful_calls_continue_the_sequence():
    x = torch.randn(2, 4, 5, 5, 2)
    whole = ConvLSTM2D(3, 3, padding="same")
    parts = ConvLSTM2D(3, 3, padding="same", stateful=True)
    whole(x), parts(x)
    parts.set_weights(randomize(whole))
    parts.reset_state()
    parts(x[:, :2])
    torch.testing.assert_close(parts(x[:, 2:]), whole(x), atol=1e-5, rtol=1e-5)
    assert [tuple(s.shape) for s in parts.get_initial_state(4)] == [(4, 5, 5, 3)] * 2


def test_dropout_only_in_training_and_seeded():
    x = torch.randn(2, 3, 5, 5, 2)
    layer = ConvLSTM2D(3, 3, dropout=0.5, recurrent_dropout=0.5, seed=3)
    clean = layer(x)
    torch.testing.assert_close(layer(x), clean)
    noisy = layer(x, training=True)
    assert not torch.allclose(noisy, clean)
    again = ConvLSTM2D(3, 3, dropout=0.5, recurrent_dropout=0.5, seed=3)
    again(x)
    again(x)  # as Keras, each inference call draws (unused) masks: two, as `layer` had
    again.set_weights(layer.get_weights())
    torch.testing.assert_close(again(x, training=True), noisy)


# ---------------------------------------------------------------- weights and config
def test_weights_keras_layout_and_unit_forget_bias():
    layer = ConvLSTM2D(3, (3, 2), kernel_initializer="ones")
    layer(torch.ones(1, 2, 5, 5, 2))
    kernel, recurrent_kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 2, 2, 12) and recurrent_kernel.shape == (3, 2, 3, 12)
    np.testing.assert_array_equal(kernel, np.ones((3, 2, 2, 12)))
    np.testing.assert_array_equal(bias, [0] * 3 + [1] * 3 + [0] * 6)
    plain = ConvLSTM2D(3, 3, unit_forget_bias=False)
    plain(torch.ones(1, 2, 5, 5, 2))
    np.testing.assert_array_equal(plain.get_weights()[2], np.zeros(12))
    assert [n for n, _ in layer.named_parameters()] == [
        "cell.kernel", "cell.recurrent_kernel", "cell.bias"]


def test_config_has_keras_keys_and_no_cell():
    config = ConvLSTM2D(4, 3, strides=(2, 1), padding="SAME", name="c").get_config()
    assert "cell" not in config and "rank" not in config
    assert config["kernel_size"] == (3, 3) and config["strides"] == (2, 1)
    assert config["padding"] == "same" and config["filters"] == 4
    assert config["recurrent_activation"] == "sigmoid" and config["unit_forget_bias"] is True
    clone = ConvLSTM2D.from_config({**config, "unroll": False})
    assert clone.filters == 4 and clone.strides == (2, 1)
    cell = ConvLSTMCell(2, 4, 3, name="cell")
    assert ConvLSTMCell.from_config(cell.get_config()).kernel_size == (3, 3)


def test_fit_reduces_loss_and_model_round_trips(tmp_path):
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 3, 5, 5, 2)).astype(np.float32)
    y = x.mean(axis=(1, 2, 3))
    model = kestrel.Sequential([kestrel.Input((3, 5, 5, 2)), ConvLSTM2D(3, 3, padding="same"),
                                Flatten(), Dense(2)])
    model.compile("adam", "mse")
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    model.save(tmp_path / "m.keras")
    loaded = kestrel.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("filters", [0, -2, 2.5, "3"])
def test_bad_filters(filters):
    with pytest.raises(ValueError, match=r"ConvLSTM2D 'c'.*filters.*Received: filters="):
        ConvLSTM2D(filters, 3, name="c")


@pytest.mark.parametrize("cls, shape", [(ConvLSTM2D, (2, 3, 5, 2)), (ConvLSTM1D, (2, 3, 5)),
                                        (ConvLSTM2D, (2, 3, 5, 5, 5, 2))])
def test_wrong_input_rank(cls, shape):
    layer = cls(3, 3, name="c")
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'c' expects inputs.*input shape="):
        layer(torch.ones(shape))


def test_bad_arguments():
    with pytest.raises(ValueError, match="ConvLSTM2D 'c'.*padding.*Received: padding='causal'"):
        ConvLSTM2D(3, 3, padding="causal", name="c")
    with pytest.raises(ValueError, match="kernel_size"):
        ConvLSTM2D(3, (3, 3, 3), name="c")
    with pytest.raises(ValueError, match="dilation_rate"):
        ConvLSTM2D(3, 3, strides=2, dilation_rate=2, name="c")
    with pytest.raises(ValueError, match="zero or negative"):
        ConvLSTM2D(3, 7)(torch.ones(1, 2, 5, 5, 1))
