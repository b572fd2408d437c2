"""Weights are Keras Variables: the Variable API on torch Parameters and buffers."""
import copy
import io
import os

import numpy as np
import pytest
import torch
from torch import nn

import kestrel
from kestrel import layers

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
# Keras' own conversion of its Parameter to NumPy warns about `copy` (not Kestrel's __array__)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _dense(units=4, in_dim=3, name="dense_v"):
    layer = layers.Dense(units, name=name)
    layer.build((None, in_dim))
    return layer


# ---------------------------------------------------------------- layer weights
def test_layer_weights_are_variables_and_torch_sees_parameters_and_buffers():
    dense = _dense()
    bn = layers.BatchNormalization(name="bn_v")
    bn.build((None, 3))
    assert all(isinstance(w, kestrel.Variable) for w in dense.weights + bn.weights)
    assert isinstance(dense.kernel, nn.Parameter)
    assert not isinstance(bn.moving_mean, nn.Parameter)
    assert [n for n, _ in bn.named_buffers()] == ["moving_mean", "moving_variance"]
    assert [n for n, _ in bn.named_parameters()] == ["gamma", "beta"]
    assert all(type(t) is torch.Tensor for t in bn.state_dict().values())
    assert [w.path for w in bn.weights] == [
        "bn_v/gamma", "bn_v/beta", "bn_v/moving_mean", "bn_v/moving_variance"]
    assert bn.moving_mean.trainable is False and bn.gamma.trainable is True


def test_variable_api_matches_keras_on_a_dense_layer():
    ours = _dense(name="dense_cmp")
    ref = keras.layers.Dense(4, name="dense_cmp")
    ref.build((None, 3))
    for mine, theirs in zip(ours.weights, ref.weights):
        assert (mine.name, mine.path) == (theirs.name, theirs.path)
        assert tuple(mine.shape) == theirs.shape and mine.ndim == theirs.ndim
        assert kestrel.backend.standardize_dtype(mine.dtype) == theirs.dtype
    ours.bias.assign(np.arange(4, dtype="float32"))
    ref.bias.assign(np.arange(4, dtype="float32"))
    assert repr(ours.bias) == repr(ref.bias)


def test_ops_return_plain_tensors_and_value_carries_the_gradient():
    dense = _dense()
    kernel = dense.kernel
    assert type(kernel + 1) is torch.Tensor and type(kernel * kernel) is torch.Tensor
    assert type(kernel[0]) is torch.Tensor and bool((kernel == kernel).all())
    assert kernel.value is kernel
    dense(torch.ones(2, 3)).sum().backward()
    np.testing.assert_allclose(kernel.value.grad.numpy(), np.full((3, 4), 2.0))


def test_numpy_and_array_work_with_requires_grad():
    kernel = _dense().kernel
    assert kernel.requires_grad
    array = np.asarray(kernel)
    assert array.shape == (3, 4) and array.dtype == np.float32
    np.testing.assert_array_equal(np.array(kernel), kernel.numpy())
    snapshot = kernel.numpy()
    kernel.assign(np.zeros((3, 4)))
    assert snapshot.any()  # numpy() is a copy, as Keras'
    assert np.asarray(kernel, dtype="float64").dtype == np.float64


def test_assign_updates_in_place_without_autograd_and_checks_shapes():
    kernel = _dense().kernel
    ident = id(kernel)
    assert kernel.assign(np.ones((3, 4))) is kernel and id(kernel) == ident
    kernel.assign_add(torch.ones(4))  # broadcasts to the variable's shape
    kernel.assign_sub(0.5)
    np.testing.assert_allclose(kernel.numpy(), np.full((3, 4), 1.5))
    assert kernel.grad_fn is None and kernel.is_leaf
    with pytest.raises(ValueError, match=r"variable.shape=\(3, 4\).*value.shape=\(4, 3\)"):
        kernel.assign(np.ones((4, 3)))
    with pytest.raises(ValueError, match="assign_add"):
        kernel.assign_add(np.ones((2, 3, 4)))


def test_trainable_follows_the_layer_and_the_variable():
    dense = _dense()
    dense.trainable = False
    assert dense.kernel.trainable is False and not dense.kernel.requires_grad
    assert dense.trainable_weights == [] and len(dense.non_trainable_weights) == 2
    dense.kernel.trainable = True
    assert dense.kernel.requires_grad
    counter = kestrel.Variable(0.0, trainable=False)
    with pytest.raises(ValueError, match="trainable=True"):
        counter.trainable = True


# ---------------------------------------------------------------- standalone variables
@pytest.mark.parametrize("init, kwargs", [
    (np.ones((3,)), {}),
    ([1.0, 2.0], {}),
    (2.5, {}),
    (np.arange(4, dtype="int32"), {"trainable": False}),
    ("zeros", {"shape": (2, 2)}),
    ("ones", {"shape": (3,), "dtype": "float64"}),
])
def test_standalone_variable_matches_keras(init, kwargs):
    ours = kestrel.Variable(init, name="w", **kwargs)
    ref = keras.Variable(init, name="w", **kwargs)
    assert repr(ours) == repr(ref)
    assert (ours.name, ours.path, ours.trainable) == (ref.name, ref.path, ref.trainable)
    assert isinstance(ours, nn.Parameter) == ref.trainable


def test_standalone_variable_from_initializer_object_and_errors():
    v = kestrel.Variable(kestrel.initializers.Constant(3.0), shape=(2,), name="c")
    np.testing.assert_array_equal(v.numpy(), [3.0, 3.0])
    with pytest.raises(ValueError, match="`shape` argument should be specified"):
        kestrel.Variable("zeros")
    with pytest.raises(ValueError, match="cannot contain character `/`"):
        kestrel.Variable(1.0, name="a/b")
    first, second = kestrel.Variable(1.0), kestrel.Variable(1.0)
    assert first.name != second.name


def test_standalone_trainable_variable_registers_on_a_module():
    module = nn.Module()
    module.scale = kestrel.Variable(np.ones(2, "float32"), name="scale")
    assert list(dict(module.named_parameters())) == ["scale"]


# ---------------------------------------------------------------- torch machinery
def test_to_double_keeps_variables_and_parameter_identity():
    bn = layers.BatchNormalization()
    bn.build((None, 3))
    gamma, mean = bn.gamma, bn.moving_mean
    bn.double()
    assert bn.gamma is gamma and bn.moving_mean is mean
    assert isinstance(bn.moving_mean, kestrel.Variable) and mean.dtype == torch.float64
    assert all(isinstance(w, kestrel.Variable) for w in bn.weights)
    bn.to("cpu")
    assert bn.moving_mean is mean


def test_deepcopy_and_torch_save_of_a_whole_model_keep_variables():
    model = kestrel.Sequential([kestrel.Input((3,)), layers.Dense(2), layers.BatchNormalization()])
    model.layers[1].moving_mean.assign_add(1.0)
    for clone in (copy.deepcopy(model), _saved_and_loaded(model)):
        assert [type(w) for w in clone.weights] == [type(w) for w in model.weights]
        assert [w.path for w in clone.weights] == [w.path for w in model.weights]
        for a, b in zip(clone.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert clone.weights[0] is not model.weights[0]
        assert isinstance(clone.layers[0].kernel, nn.Parameter)


def _saved_and_loaded(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_state_dict_round_trip_and_set_weights():
    src, dst = _dense(name="d_src"), _dense(name="d_dst")
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst.kernel.numpy(), src.kernel.numpy())
    dst.set_weights([np.ones((3, 4)), np.zeros(4)])
    assert isinstance(dst.kernel, kestrel.Variable) and dst.kernel.numpy().sum() == 12


# ---------------------------------------------------------------- stateful user code
class _Counter(kestrel.layers.Layer):
    """Counts the batches it sees in a non-trainable weight."""

    def build(self, input_shape):
        self.count = self.add_weight(name="count", shape=(), initializer="zeros",
                                     trainable=False)
        self.dense = layers.Dense(1)

    def call(self, x):
        self.count.assign_add(1.0)
        return self.dense(x)


@pytest.mark.parametrize("jit", [False, True])
def test_counter_layer_in_call_works_eagerly_and_under_fit(jit):
    counter = _Counter(name="counter")
    counter(torch.ones(2, 3))
    assert float(counter.count) == 1.0 and counter.count.path == "counter/count"
    model = kestrel.Sequential([kestrel.Input((3,)), counter])
    assert float(counter.count) == 1.0  # the symbolic call that infers shapes does not count
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
    x, y = np.ones((8, 3), "float32"), np.ones((8, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert float(counter.count) == 3.0
    assert counter.count in [w for w in model.non_trainable_weights]


class _SumOfSquares(kestrel.metrics.Metric):
    """A Keras 3 style metric: state through add_variable, updates through assign_add."""

    def __init__(self, name="sum_sq"):
        super().__init__(name=name)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.offset = self.add_weight(shape=(2,), initializer="ones", name="offset")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(torch.sum(torch.as_tensor(y_pred) ** 2))

    def result(self):
        return self.total + self.offset.sum()


def test_user_metric_with_add_variable_assign_add_and_reset_state():
    metric = _SumOfSquares()
    assert [v.path for v in metric.variables] == ["sum_sq/total", "sum_sq/offset"]
    assert all(isinstance(v, kestrel.Variable) and not v.trainable for v in metric.variables)
    metric.update_state(None, torch.tensor([1.0, 2.0]))
    metric.update_state(None, torch.tensor([3.0]))
    assert float(metric.result()) == 16.0
    metric.reset_state()
    assert float(metric.result()) == 2.0 and metric.total.grad_fn is None


def test_user_metric_under_fit_and_evaluate():
    model = kestrel.Sequential([kestrel.Input((2,)), layers.Dense(1, kernel_initializer="ones")])
    model.compile(optimizer="sgd", loss="mse", metrics=[_SumOfSquares()])
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    logs = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    assert logs["sum_sq"] == pytest.approx(4 * 4.0 + 2.0)
