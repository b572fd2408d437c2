"""A functional model lets elementwise layers overwrite dying intermediates (models/handover.py):
same numbers and gradients as without, and never a tensor anything else can still see."""
import pytest
import torch

import kestrel as keras
from kestrel import layers
from kestrel.layers import in_place
from kestrel.models import handover


def residual_cnn():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu", name="act")(x)
    y = layers.Conv2D(4, 3, padding="same")(x)
    y = layers.BatchNormalization(name="bn2")(y)
    z = layers.Add(name="add")([x, y])
    z = layers.ReLU(max_value=6.0, name="relu6")(z)
    z = layers.GlobalAveragePooling2D()(z)
    return keras.Model(inputs, layers.Dense(2, activation="sigmoid")(z))


def run(model, x, training):
    model.zero_grad(set_to_none=True)
    out = model(x, training=training)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.fixture
def taken(monkeypatch):
    """The names of the layers that received a handed-over input, per call."""
    names, take, take_list = [], handover.take, handover.take_from_list
    monkeypatch.setattr(handover, "take", lambda v, i: (names.append(i), take(v, i))[1])
    monkeypatch.setattr(handover, "take_from_list",
                        lambda v, s, p: (names.append(s[p]), take_list(v, s, p))[1])
    return names, None


@pytest.mark.parametrize("training", [True, False])
def test_same_outputs_and_gradients_as_without_handover(monkeypatch, taken, training):
    torch.manual_seed(0)
    model = residual_cnn()
    x = torch.randn(4, 8, 8, 3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out, grads = run(model, x, training)
    assert len(taken[0]) == 3  # act, add (its bn2 input), relu6
    model.load_state_dict(state)
    monkeypatch.setattr(handover, "_ALONE", None)
    taken[0].clear()
    reference, reference_grads = run(model, x, training)
    assert taken[0] == []
    assert torch.equal(out, reference)
    assert all(torch.equal(a, b) for a, b in zip(grads, reference_grads))


def test_model_outputs_and_hooked_tensors_are_not_overwritten(taken):
    torch.manual_seed(0)
    inputs = keras.Input((5,))
    h = layers.Dense(5, name="d")(inputs)
    a = layers.ReLU()(h)                       # h is an output too: must stay negative
    b = layers.Dense(5, name="d2")(inputs)
    c = layers.Activation("relu")(b)           # b is kept by a hook below
    model = keras.Model(inputs, [h, a, c])
    kept = []
    model.get_layer("d2").register_forward_hook(lambda m, i, o: kept.append(o))
    with torch.no_grad():
        h_out, a_out, c_out = model(torch.randn(16, 5))
    assert taken[0] == []
    assert (h_out < 0).any() and (kept[0] < 0).any()
    assert torch.equal(a_out, h_out.relu()) and torch.equal(c_out, kept[0].relu())


def test_tensor_saved_for_backward_is_not_overwritten(taken):
    torch.manual_seed(0)
    inputs = keras.Input((5,))
    h = layers.Dense(5)(inputs)
    d = layers.Dense(3)(h)                     # saves h for its backward
    a = layers.Activation("relu")(h)           # last reader of h
    model = keras.Model(inputs, layers.Concatenate()([d, a]))
    x = torch.randn(4, 5)
    model(x, training=True).sum().backward()  # would raise if h had been overwritten
    assert taken[0] == []


def test_outputs_of_user_layers_and_repeated_inputs_are_not_handed_over(taken):
    class Scaled(layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((5,))
    u = Scaled()(layers.Dense(5)(inputs))
    v = layers.Activation("relu")(u)           # producer is a user layer: not fresh
    w = layers.Dense(5)(v)
    s = layers.Add()([w, w])                   # the same tensor twice: not handed over
    model = keras.Model(inputs, s)
    x = torch.randn(4, 5)
    with torch.no_grad():
        out = model(x)
    assert taken[0] == []
    assert torch.allclose(out, 2 * model.layers[-2](model.layers[-3](
        model.layers[2](model.layers[1](x)).relu())), atol=1e-6)


def test_whole_views_are_written_through_their_base():
    base = torch.randn(2, 3, 4, 5)
    nhwc = base.permute(0, 2, 3, 1)
    assert in_place.relayout(nhwc, base) is not None
    assert in_place.relayout(base[:, :2], base) is None          # part of the base
    assert in_place.relayout(base.reshape(6, 20), base) is not None
    other = torch.randn(2, 4, 5, 3)
    expected = nhwc + other
    out = in_place.apply(lambda t, o: t.add_(o), nhwc, other)
    assert torch.equal(out, expected) and out._base is base


def test_output_read_by_a_convolution_through_its_base_is_not_overwritten(taken):
    torch.manual_seed(0)
    inputs = keras.Input((6, 6, 4))
    a = layers.BatchNormalization()(layers.Conv2D(4, 1)(inputs))
    b = layers.BatchNormalization()(layers.Conv2D(4, 1)(inputs))
    x = layers.Add()([a, b])                       # a view of a fresh NCHW base
    y = layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same")(x))  # saves that base
    z = layers.Add()([x, y])                       # last reader of x: must write into y
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(z))
    model(torch.randn(2, 6, 6, 4), training=True).sum().backward()  # raises if x was overwritten
    assert len(taken[0]) == 2


def squeeze_excite():
    inputs = keras.Input((6, 6, 4))
    x = layers.Conv2D(4, 3, padding="same", activation="swish")(inputs)
    scale = layers.GlobalAveragePooling2D(keepdims=True)(x)
    scale = layers.Conv2D(4, 1, activation="sigmoid")(scale)
    x = layers.Multiply(name="excite")([x, scale])
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x))


@pytest.mark.parametrize("grad", [False, True])
def test_multiply_scales_in_place_only_without_gradients(monkeypatch, taken, grad):
    """EfficientNet's squeeze-and-excitation product overwrites its dying input in inference;
    with gradients recorded it stays out of place (mul_'s backward would copy the factor)."""
    torch.manual_seed(0)
    model = squeeze_excite()
    x = torch.randn(3, 6, 6, 4)
    calls = []
    monkeypatch.setattr(torch.Tensor, "mul_", lambda self, other: (
        calls.append(tuple(other.shape)), torch.mul(self, other, out=self))[1])
    with torch.set_grad_enabled(grad):
        out = model(x)
    assert calls == ([] if grad else [(3, 1, 1, 4)])
    monkeypatch.setattr(handover, "_ALONE", None)
    with torch.set_grad_enabled(grad):
        assert torch.equal(out, model(x))
